"""Extraction as a job array: independent shard tasks (real processes, the scheduler's variables set), their
join, the refusals, the recipes of docs/several-machines.md, and the lock that works without flock."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from research.distributed import Shard
from research.errors import ConfigError, FeatureFileError, StaleWorkError
from research.features.copying import merge, subset
from research.features.extraction import extract
from research.features.hdf5 import content_fingerprint, read_attrs
from research.features.shards import join_folder, join_shards, shard_groups
from research.files import read_record

from .conftest import ROOT, tiny_extract_config

DATASETS = ("features", "labels", "num_frames", "decoded_frames", "paths", "video_ids", "stamps")
ATTRS = ("settings", "settings_fingerprint", "inputs_fingerprint", "num_videos", "skipped", "skipped_ids", "partial")


def assert_same_file(reference: Path, joined: Path) -> None:
    """Bit-equal features and the same rows and attributes as one process's file."""
    with h5py.File(reference) as a, h5py.File(joined) as b:
        for key in DATASETS:
            assert np.array_equal(a[key][:], b[key][:]), f"{joined.name}: {key}"
        assert a["features"].dtype == b["features"].dtype
        for key in ATTRS:
            assert a.attrs[key] == b.attrs[key], f"{joined.name}: {key}"


def test_a_shard_made_with_other_settings_is_refused(tiny_videos: Path, tmp_path: Path) -> None:
    """Two shards extracted in this process, one at other frames: the join names the difference."""
    out = tmp_path / "out"
    cfg = tiny_extract_config(tiny_videos, out, splits=["val"], outputs=["single"], log_mlflow=False)
    extract(dataclasses.replace(cfg, shard="0/2"))
    extract(dataclasses.replace(cfg, shard="1/2", frames=4))
    with pytest.raises(FeatureFileError, match=r"frames_per_video: 8 .* vs 4 .*same settings"):
        join_folder(out)
    assert not (out / "val_features.h5").exists()
    with pytest.raises(StaleWorkError, match=r"frames_per_video: 4 \(file\) vs 8 \(this run\)"):
        extract(dataclasses.replace(cfg, shard="1/2"))  # a finished shard of other settings is never redone silently
    extract(dataclasses.replace(cfg, shard="1/2", overwrite=True))
    assert join_folder(out) == {out / "val_features.h5": 4}


@pytest.fixture(scope="module")
def val_shards(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The val split (4 real clips) extracted as shards 0/2 and 1/2 in this process, by the default runtime
    (ONNX Runtime on this CPU), single-scale: copy the folder before changing it."""
    out = tmp_path_factory.mktemp("val_shards")
    cfg = tiny_extract_config(tiny_videos, out, splits=["val"], outputs=["single"], log_mlflow=False)
    for k in range(2):
        extract(dataclasses.replace(cfg, shard=f"{k}/2"))
    return out


def joined_copy(val_shards: Path, folder: Path, copy: bool = False) -> Path:
    """A copy of the val shards' folder, joined there; returns the joined file."""
    shutil.copytree(val_shards, folder)
    join_folder(folder, copy=copy)
    return folder / "val_features.h5"


def test_copies_of_a_joined_file_hold_their_own_features_and_read_no_shard(val_shards: Path, tmp_path: Path) -> None:
    """A subset (a split's or a fold's file), a merge and a selection of parts of a virtual join store their own
    rows: they carry no record of shards, and read as they were written once the shards are gone."""
    from research.features.parts import select_parts

    joined = joined_copy(val_shards, tmp_path / "features")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    made = {
        "subset": (subset(joined, elsewhere / "sub.h5", [3, 0]), elsewhere / "sub.h5", [3, 0]),
        "merge": (merge(elsewhere / "merged.h5", [joined]), elsewhere / "merged.h5", [0, 1, 2, 3]),
        "select": (4, select_parts(joined, elsewhere / "selected.h5", "mobilenet_v2"), [0, 1, 2, 3]),
    }
    with h5py.File(joined) as f:
        rows = f["features"][:]
    shutil.rmtree(tmp_path / "features" / "shards")  # the copies read none of them
    for how, (n, path, picked) in made.items():
        attrs = read_attrs(path)
        assert n == len(picked) and "joined_from" not in attrs, how
        with h5py.File(path) as f:
            assert not f["features"].is_virtual and np.array_equal(f["features"][:], rows[picked]), how
        assert content_fingerprint(path) == read_record(path)["content_fingerprint"], how


def test_a_shard_that_holds_other_features_than_were_joined_is_refused(val_shards: Path, tmp_path: Path) -> None:
    """The virtual join records each shard's content digest and identity. A shard touched, or the folder moved
    as a whole, still holds what was joined: read. A shard edited in place, its settings and inputs fingerprints
    as they were, holds other features: refused, as is a join too old to have recorded what its shards held."""
    joined = joined_copy(val_shards, tmp_path / "features")
    shard = tmp_path / "features" / "shards" / "val_features.shard0001-of-0002.h5"
    digest = content_fingerprint(joined)
    later = time.time() + 5
    os.utime(shard, (later, later))  # another identity, the same content
    assert read_attrs(joined)["num_videos"] == 4 and content_fingerprint(joined) == digest
    moved = shutil.move(tmp_path / "features", tmp_path / "moved")
    joined = Path(moved) / "val_features.h5"
    assert read_attrs(joined)["num_videos"] == 4 and content_fingerprint(joined) == digest

    shard = Path(moved) / "shards" / shard.name
    with h5py.File(shard, "r+") as f:  # what another runtime or a GPU writes: other numbers, the same attributes
        f["features"][0] = f["features"][0] * 1.001
    for read in (read_attrs, content_fingerprint):
        with pytest.raises(FeatureFileError, match=r"shard0001-of-0002.h5, which holds other features than when"):
            read(joined)
    join_folder(moved)  # joined again: what the shards hold now
    assert read_attrs(joined)["num_videos"] == 4 and content_fingerprint(joined) != digest

    with h5py.File(joined, "r+") as f:  # as an older version recorded its shards: fingerprints alone
        sources = json.loads(f.attrs["joined_from"])
        f.attrs["joined_from"] = json.dumps(
            [{k: s[k] for k in ("file", "shard", "settings_fingerprint", "inputs_fingerprint")} for s in sources]
        )
    with pytest.raises(FeatureFileError, match=r"joined by an older version.*run the join again"):
        read_attrs(joined)


def test_shards_whose_cnn_ran_in_another_runtime_are_not_joined(
    val_shards: Path, tiny_videos: Path, tmp_path: Path
) -> None:
    """Shard 1 extracted again by torch, shard 0 by ONNX Runtime: the file joined before is refused (its shard 1
    holds other numbers), and the join refuses the mixture, naming which shard ran what."""
    joined = joined_copy(val_shards, tmp_path / "features")
    runtime = read_attrs(val_shards / "shards" / "val_features.shard0000-of-0002.h5")["runtime"]
    assert runtime.startswith("onnxruntime ")
    cfg = tiny_extract_config(tiny_videos, tmp_path / "features", splits=["val"], outputs=["single"], log_mlflow=False)
    extract(dataclasses.replace(cfg, shard="1/2", runtime="torch", overwrite=True))
    with pytest.raises(FeatureFileError, match="which holds other features than when it was joined"):
        read_attrs(joined)
    mixture = rf"shard\(s\) 0 by {re.escape(runtime)}, float32; shard\(s\) 1 by torch "
    with pytest.raises(FeatureFileError, match=mixture):
        join_folder(tmp_path / "features")
    with h5py.File(tmp_path / "features" / "shards" / "val_features.shard0001-of-0002.h5") as f:
        assert (f.attrs["precision"], f.attrs["device"]) == ("float32", "cpu")


def test_a_shard_task_stats_the_files_of_its_own_block_alone(
    tiny_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An array task's set-up (the collection as ``extract.py --shard K/N`` opens it) stats its own block's files
    and no other, for an annotation file (40 rows of fabricated paths: a missing file is stat'ed all the same)
    and a folder tree (the tiny videos' train split); it still knows the whole split's listing, which every
    task computes alike."""
    from research.config import ExtractConfig
    from research.data.inputs import listing_fingerprint, open_collection

    rows = tmp_path / "rows.csv"
    rows.write_text("path,label\n" + "".join(f"clips/c{i % 4}/v{i:03d}.mp4,class_{i % 4}\n" for i in range(40)))
    collections = {
        "all": ExtractConfig(data_dir=str(tmp_path), annotations=str(rows)),
        "train": tiny_extract_config(tiny_videos, tmp_path / "out", splits=["train"]),
    }
    whole = {split: open_collection(cfg).entries[split] for split, cfg in collections.items()}
    real_stat = os.stat
    for split, cfg in collections.items():
        stated: list[str] = []

        def counting(path, *args, _seen=stated, **kwargs):
            _seen.append(os.fspath(path))
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", counting)
        task = open_collection(cfg, Shard(1, 4).block)
        monkeypatch.setattr(os, "stat", real_stat)
        block = Shard(1, 4).block(whole[split])
        assert task.entries[split] == block and 0 < len(block) < len(whole[split])
        listed = {str(e.path) for e in whole[split]}
        assert {p for p in stated if p in listed} == {str(e.path) for e in block}, split
        assert task.listings[split].videos == len(whole[split])
        assert task.listings[split].fingerprint == listing_fingerprint(whole[split])


def test_the_metadata_benchmark_counts_a_task_s_stat_calls_and_writes_its_section(tmp_path: Path) -> None:
    """benchmarks/task_metadata.py at 200 rows: task 0 of 4 stats its 50 files and the annotation file."""
    results = tmp_path / "RESULTS.md"
    args = ["--rows", "200", "--tasks", "4", "--append-results", str(results)]
    done = subprocess.run(
        [sys.executable, "benchmarks/task_metadata.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    section = results.read_text()
    assert "## What one array task stats before its first frame" in section and str(ROOT) not in section
    assert "| 4 | 50 | 51 | ~204 |" in section


def test_shard_index_from_the_scheduler_s_variables() -> None:
    assert Shard.parse("2/4", {}) == Shard(2, 4)
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert Shard.parse("auto", slurm | {"SLURM_ARRAY_TASK_STEP": "2"}) == Shard(3, 4)  # --array=1-7:2
    assert Shard.parse("auto/3", {"JOB_COMPLETION_INDEX": "2"}) == Shard(2, 3)
    assert Shard.parse("auto/8", {"AWS_BATCH_JOB_ARRAY_INDEX": "5"}) == Shard(5, 8)
    for spec, env, message in (
        ("auto", {"JOB_COMPLETION_INDEX": "2"}, "give the count as auto/N"),
        ("auto/4", {}, "none of SLURM_ARRAY_TASK_ID"),
        ("4/4", {}, "not in 0..3"),
        ("auto/5", slurm, "has 4 tasks, not 5"),
        ("3", {}, "expected K/N"),
    ):
        with pytest.raises(ConfigError, match=message):
            Shard.parse(spec, env)
    blocks = [Shard(k, 4).block(list(range(10))) for k in range(4)]
    assert [i for b in blocks for i in b] == list(range(10)) and [len(b) for b in blocks] == [2, 3, 2, 3]


# A process that holds the extraction lock of a folder on a file system without flock (simulated: flock
# raises ENOSYS, as on a Lustre mount without -o flock), then sleeps until killed.
NO_FLOCK = """
import errno, fcntl, sys, time
def unsupported(*args):
    raise OSError(errno.ENOSYS, "Function not implemented")
fcntl.flock = unsupported
from research.files import folder_lock
with folder_lock(sys.argv[1], "extraction", ".extract.lock"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(folder: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", NO_FLOCK, str(folder), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_without_flock_a_lock_file_holds_processes_apart_and_a_dead_holder_s_lock_is_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = hold(tmp_path, 60)
    assert first.stdout.readline().strip() == "held"
    second = hold(tmp_path, 0)
    _, err = second.communicate(timeout=60)
    assert second.returncode != 0 and f"in use by another extraction: pid {first.pid} on" in " ".join(err.split())
    assert "does not support flock" in err and err.count("does not support flock") == 1  # one clear line
    first.kill()  # kill -9: nothing released the lock file
    first.wait(timeout=30)
    assert (tmp_path / ".extract.lock.held").is_file()
    third = hold(tmp_path, 0)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0 and out.strip() == "held", err
    assert f"cleared the stale lock {tmp_path / '.extract.lock.held'} of pid {first.pid}" in " ".join(err.split())
    assert not (tmp_path / ".extract.lock.held").exists()

    # a holder on another machine: its pid cannot be asked, its heartbeat can
    import errno
    import fcntl

    from research.files import FolderBusyError, folder_lock

    monkeypatch.setattr(fcntl, "flock", lambda *a: (_ for _ in ()).throw(OSError(errno.EOPNOTSUPP, "not supported")))
    held = tmp_path / ".extract.lock.held"
    held.write_text(json.dumps({"pid": 1, "host": "node-17", "since": time.time(), "token": "x"}))
    with pytest.raises(FolderBusyError, match="pid 1 on node-17"), folder_lock(tmp_path, "extraction", ".extract.lock"):
        pass
    os.utime(held, (time.time() - 600, time.time() - 600))  # no heartbeat for 10 minutes: that machine is gone
    with folder_lock(tmp_path, "extraction", ".extract.lock"):
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert not held.exists()


# A process that dies (SIGKILL) or meets a full disk between creating the lock file and writing its record.
CUT_SHORT = """
import errno, os, signal, sys
from pathlib import Path
from research import files
if sys.argv[2] == "killed":
    os.fdopen = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
else:
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    os.fsync = full
files.HeartbeatLock(Path(sys.argv[1])).acquire()
"""


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_an_empty_lock_file_is_stale_once_its_heartbeat_is_old_and_a_full_disk_leaves_none(tmp_path: Path) -> None:
    """A holder killed between O_EXCL and its record leaves an empty lock file: fresh, its holder may still be
    writing (held); an hour without a heartbeat, it is taken over. A full disk there leaves no file at all."""
    from research.files import HeartbeatLock

    lock = tmp_path / ".extract.lock"
    died = run_python(CUT_SHORT, str(lock), "killed")
    assert died.returncode == -signal.SIGKILL and (tmp_path / ".extract.lock.held").read_text() == ""
    waiter = HeartbeatLock(lock)
    assert not waiter.acquire()
    hour_ago = time.time() - 3600
    os.utime(tmp_path / ".extract.lock.held", (hour_ago, hour_ago))
    assert waiter.acquire()
    assert json.loads((tmp_path / ".extract.lock.held").read_text())["token"] == waiter.record["token"]
    waiter.release()

    full = run_python(CUT_SHORT, str(lock), "full")
    assert "No space left on device" in full.stderr and not (tmp_path / ".extract.lock.held").exists()


def test_a_live_pid_whose_heartbeat_is_old_is_stale_and_a_pid_of_another_namespace_proves_nothing(
    tmp_path: Path,
) -> None:
    """Pid reuse: the record names a live process of this host (another one, sleeping), but its heartbeat is
    10 minutes old: stale. A container sharing this hostname: its pid is not one of ours, dead or alive, so
    only its heartbeat counts (fresh: held)."""
    from research.files import HOST, PID_SCOPE, HeartbeatLock

    held = tmp_path / ".extract.lock.held"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held.write_text(json.dumps(PID_SCOPE | {"pid": sleeper.pid, "since": time.time(), "token": "reused"}))
        assert not HeartbeatLock(tmp_path / ".extract.lock").acquire()  # a fresh heartbeat: alive
        ten_minutes_ago = time.time() - 600
        os.utime(held, (ten_minutes_ago, ten_minutes_ago))
        lock = HeartbeatLock(tmp_path / ".extract.lock")
        assert lock.acquire() and sleeper.poll() is None
        lock.release()
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = sleeper.pid  # dead here; in another pid namespace, perhaps a live holder
    held.write_text(json.dumps({"pid": gone, "host": HOST, "boot": PID_SCOPE["boot"], "pidns": "pid:[1]"}))
    assert not HeartbeatLock(tmp_path / ".extract.lock").acquire() and held.is_file()


# Clears a lock judged stale on a file system without hard links (os.link fails, as there): once it has judged,
# it waits until another process has taken the lock, then acts on its judgement.
SLOW_CLEARER = """
import errno, os, sys, time
from pathlib import Path
from research import files
def no_link(*args, **kwargs):
    raise OSError(errno.EPERM, "Operation not permitted")
os.link = no_link
judge = files.HeartbeatLock._stale
def judge_then_wait(self, *args):
    stale = judge(self, *args)
    if stale and not Path(sys.argv[2]).exists():
        print("judged stale", flush=True)
        while not Path(sys.argv[2]).exists():
            time.sleep(0.01)
    return stale
files.HeartbeatLock._stale = judge_then_wait
print("took" if files.HeartbeatLock(Path(sys.argv[1])).acquire() else "refused", flush=True)
"""
HOLDER = """
import sys, time
from pathlib import Path
from research import files
lock = files.HeartbeatLock(Path(sys.argv[1]))
print("held" if lock.acquire() else "refused", lock.record["token"], flush=True)
time.sleep(60)
"""


def test_a_live_holder_s_lock_file_is_never_deleted_without_hard_links(tmp_path: Path) -> None:
    """A dead holder's lock (killed with SIGKILL) is judged stale by one process; before it acts, another
    clears it and takes the lock. The first must leave the new holder's file alone (it was not the file it
    judged), on a file system without hard links as anywhere else, and take nothing."""
    lock = tmp_path / ".extract.lock"
    dead = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert dead.stdout.readline().startswith("held")
    dead.kill()
    dead.wait()
    signal_file = tmp_path / "taken"
    clearer = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLEARER, str(lock), str(signal_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = None
    try:
        assert clearer.stdout.readline().strip() == "judged stale"
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        said, token = holder.stdout.readline().split()
        assert said == "held"
        signal_file.touch()
        out, err = clearer.communicate(timeout=60)
        assert out.strip() == "refused", err
        assert json.loads((tmp_path / ".extract.lock.held").read_text())["token"] == token  # still the holder's
        assert not (tmp_path / ".extract.lock.held.clearing").exists()
    finally:
        for process in (clearer, holder):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


# What the recipes' extraction commands get appended to run in seconds on a few real clips.
RECIPE_SIZE = ["frames=2", "image_size=64", "num_workers=0", "batch_size=8", "log_mlflow=false"]


def recipe_sandbox(root: Path, sources_per_class: int = 1) -> Path:
    """The project's layout as the recipes' tasks see it: the scripts, experiments/, 4 real clips as benchmarks/real."""
    from .test_demo import tiny_real_collection

    root.mkdir(parents=True, exist_ok=True)
    for name in ("extract.py",):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "experiments", root / "experiments")
    tiny_real_collection(root / "benchmarks" / "real", sources_per_class)
    return root


def scheduler_env(variables: dict[str, str]) -> dict[str, str]:
    """The environment of a task: this interpreter's ``python`` first on PATH, this checkout's ``research``
    first on its path (``python -m`` in a sandbox would import whichever checkout the environment installed),
    the scheduler's variables."""
    path = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return os.environ | path | variables


def check_joined_demo(root: Path) -> None:
    joined = root / "features" / "demo" / "all_features_multiscale.h5"
    attrs = read_attrs(joined)  # the virtual dataset's shards are all there
    assert attrs["num_videos"] == 4 and attrs["frames_per_video"] == 2
    with h5py.File(joined) as f:
        assert f["features"].is_virtual and np.abs(f["features"][:]).sum(axis=(1, 2)).min() > 0
    assert len(list((root / "features" / "demo" / "shards").glob("all_features.shard*-of-0004.h5"))) == 4


def four_tasks_one_killed(root: Path, script: str, out: Path) -> Callable[[int], subprocess.Popen]:
    """``bash SCRIPT`` as the 4 tasks of a Slurm array (its variables set), task 1 killed (SIGKILL, with the
    python it started) once it has committed a part, the others run to the end; returns the way to start a task
    again."""
    array = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3"}

    def array_task(k: int) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", script],
            cwd=root,
            env=scheduler_env(array | {"SLURM_ARRAY_TASK_ID": str(k)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # bash and its python: killed together
        )

    tasks = [array_task(k) for k in range(4)]
    deadline = time.time() + 180
    while not list(out.glob(".work/all-*-shard0001-of-0004/parts/part_*.npz")):
        assert time.time() < deadline and tasks[1].poll() is None, "task 1 committed nothing"
        time.sleep(0.005)
    os.killpg(tasks[1].pid, signal.SIGKILL)  # mid-shard: 1 to 3 of its 4 clips committed
    tasks[1].wait(timeout=30)
    for k in (0, 2, 3):
        log = tasks[k].communicate(timeout=240)[0]
        assert tasks[k].returncode == 0, log[-3000:]
    return array_task


def test_the_slurm_recipe_four_tasks_one_killed_join_equals_one_process(tmp_path: Path) -> None:
    """docs/several-machines.md's batch scripts as written there: the array as four local processes with
    Slurm's variables, no torchrun. Task 1 is killed mid-shard: the join then names it; run again, it resumes.
    The join script (what --dependency=afterok starts) then makes files bit-equal in their features to one
    process's, which extract.py re-uses."""
    from research.config import ExtractConfig, load_config

    from .test_readme import heredoc

    root = recipe_sandbox(tmp_path / "sandbox", sources_per_class=3)  # 15 clips: 3 or 4 per task
    size = [*RECIPE_SIZE, "flush_every=1"]  # one part per clip: the kill lands between commits
    for script in ("extract.sbatch", "join.sbatch"):
        text = heredoc(f"cat > {script} <<'END'")
        if script == "extract.sbatch":  # the tests' size, appended to the page's command
            assert "--shard auto\n" in text
            text = text.replace("--shard auto\n", f"--shard auto {' '.join(size)}\n")
        (root / script).write_text(text)
    out = root / "features" / "demo"
    array_task = four_tasks_one_killed(root, "extract.sbatch", out)
    assert not (out / "shards" / "all_features.shard0001-of-0004.h5").exists(), "task 1 finished before the kill"
    with pytest.raises(FeatureFileError, match=r"shard\(s\) 1 of 4 missing \(have 0, 2, 3\)"):
        join_folder(out)

    again = array_task(1)
    log = again.communicate(timeout=240)[0]
    assert again.returncode == 0, log[-3000:]
    assert "all: resuming" in log and "videos already committed" in log
    joined = subprocess.run(["bash", "join.sbatch"], cwd=root, env=scheduler_env({}), capture_output=True, text=True)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "videos into features/demo/all_features.h5 (virtual" in " ".join(joined.stdout.split())
    assert not (out / ".work").exists()

    # one process, the same settings, in this process
    with contextlib.chdir(root):
        cfg = load_config(ExtractConfig, "extract", Path("experiments/demo.yaml"))
        one = dataclasses.replace(  # RECIPE_SIZE's values
            cfg, frames=2, image_size=64, num_workers=0, batch_size=8, log_mlflow=False, out_dir=str(tmp_path / "one")
        )
        extract(one)
        for name in ("all_features.h5", "all_features_multiscale.h5"):
            assert_same_file(tmp_path / "one" / name, out / name)
            with h5py.File(out / name) as f:
                assert f["features"].is_virtual  # no copy: the rows are read from the shard files
        # the joined files are the files one process writes: extraction re-uses them
        result = extract(dataclasses.replace(one, out_dir=str(out)))
        assert result["splits"]["all"]["status"] == "re-used"

    # the self-contained join: the very chunks one process compresses
    shards = shard_groups(out)[out / "all_features.h5"]
    n = read_attrs(tmp_path / "one" / "all_features.h5")["num_videos"]
    assert join_shards(tmp_path / "copy.h5", shards, copy=True) == n > 12
    with h5py.File(tmp_path / "one" / "all_features.h5") as a, h5py.File(tmp_path / "copy.h5") as b:
        assert not b["features"].is_virtual and "joined_from" not in b.attrs
        chunks = [[f["features"].id.read_direct_chunk((i, 0, 0)) for i in range(n)] for f in (a, b)]
        assert chunks[0] == chunks[1]
    assert_same_file(tmp_path / "one" / "all_features.h5", tmp_path / "copy.h5")

    # a shard file gone: the joined file is refused, never read as zeros
    (out / "shards" / "all_features.shard0003-of-0004.h5").unlink()
    with pytest.raises(FeatureFileError, match=r"shard0003-of-0004.h5, which is missing"):
        read_attrs(out / "all_features.h5")


def lab_sandbox(root: Path) -> Path:
    """A lab's layout: extract.py, experiments/, and 16 real clips of benchmarks/real under my_videos/, listed in
    my_videos/labels.csv as ``path,label,group,family`` (the lab's own names, not the demo manifest's)."""
    from .test_demo import tiny_real_collection

    root.mkdir(parents=True)
    (root / "extract.py").symlink_to(ROOT / "extract.py")
    shutil.copytree(ROOT / "experiments", root / "experiments")
    tiny_real_collection(root / "my_videos", 3)
    with (root / "my_videos" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with (root / "my_videos" / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "group", "family"])
        writer.writerows([r["path"], r["class"], r["source"], r["family"]] for r in rows)
    return root


def assert_reads_only_beside(root: Path, joined_dirs: set[Path]) -> None:
    """Every feature file under ``root`` stores its own features, or is a joined file in ``joined_dirs`` whose
    shard files all lie beside it (read_attrs checks them, as every reader does)."""
    for path in sorted(root.rglob("*.h5")):
        with h5py.File(path) as f:
            if "features" not in f:
                continue
            reads = [s.file_name for s in f["features"].virtual_sources()] if f["features"].is_virtual else []
            records = [s["file"] for s in json.loads(f.attrs.get("joined_from", "[]"))]
        if reads or records:
            assert path.parent in joined_dirs and sorted(reads) == sorted(records), path
            assert all((path.parent / name).is_file() for name in reads), path
            read_attrs(path)


def test_a_lab_s_csv_as_an_array_then_the_pipeline_on_the_virtual_and_the_copied_join(
    tmp_path: Path, tracking_uri: str
) -> None:
    """docs/several-machines.md's recipe for a lab's own CSV, its scripts as the page writes them: the array's
    four tasks as local processes with Slurm's variables, task 1 killed mid-shard (SIGKILL) and run again; then
    the join and the pipeline on the joined (virtual) files, through the split, training, the choice and the
    evaluation; then the pipeline again on a --copy join of the same shards. What the command line promises:
    exit 0, no traceback, the report, the predictions and the classifier; the split's files hold their own
    features; no file reads a shard that is not beside it."""
    from .conftest import run_entry_point
    from .test_readme import heredoc

    root = lab_sandbox(tmp_path / "lab")
    size = [*RECIPE_SIZE, "flush_every=1"]  # one part per clip: the kill lands between commits
    extract_script = heredoc("cat > extract-labels.sbatch <<'END'")
    assert "--shard auto\n" in extract_script and "~columns" not in extract_script  # the same CSV, no workaround
    (root / "extract-labels.sbatch").write_text(
        extract_script.replace("--shard auto\n", f"--shard auto {' '.join(size)}\n")
    )
    pipeline_script = heredoc("cat > pipeline-labels.sbatch <<'END'")
    commands = [line for line in pipeline_script.splitlines() if line.startswith("python ")]
    assert commands == [
        "python -m research.commands.features join features/labels",
        "python -m research.commands.pipeline --annotations my_videos/labels.csv --data-root my_videos",
    ]
    out = root / "features" / "labels"
    array_task = four_tasks_one_killed(root, "extract-labels.sbatch", out)
    again = array_task(1)
    log = again.communicate(timeout=240)[0]
    assert again.returncode == 0 and "videos already committed" in log, log[-3000:]

    # the pipeline at the tests' size: the tasks' extraction settings, two epochs, one member, 3 folds
    pipeline_size = (
        "extract.frames=2 extract.image_size=64 extract.num_workers=0 train.epochs=2 "
        "train.model_args.super_enhanced.hidden_size=32 cv.folds=3 cv.seeds=[1] --seeds 1 "
        + " ".join(f"{section}.tracking_uri={tracking_uri}" for section in ("extract", "train", "evaluate"))
    )
    copied = root / "features" / "copied"
    shutil.copytree(out / "shards", copied / "shards")
    copy_join = f"{commands[0].replace('features/labels', 'features/copied')} --copy"
    for name, join in (("labels", commands[0]), ("copied", copy_join)):
        joined = run_entry_point(join.removeprefix("python "), cwd=root)
        assert joined.returncode == 0, joined.stdout + joined.stderr
        pipeline = commands[1] + ("" if name == "labels" else f" --name {name}")
        pool = [root / "features" / name / f"all_features{kind}.h5" for kind in ("", "_multiscale")]
        before = [p.stat().st_mtime_ns for p in pool]
        done = run_entry_point(f"{pipeline.removeprefix('python ')} {pipeline_size}", cwd=root)
        printed = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in printed, printed[-4000:]
        assert [p.stat().st_mtime_ns for p in pool] == before  # the joined files re-used, not extracted again
        for made in (f"outputs/{name}/report.json", f"outputs/{name}/predictions.csv", f"runs/{name}/classifier.pt"):
            assert (root / made).is_file(), made
        for split in ("train", "val", "test"):  # the split's files hold their own features
            for kind in ("", "_multiscale"):
                with h5py.File(root / "features" / name / "by_group" / f"{split}_features{kind}.h5") as f:
                    assert not f["features"].is_virtual and "joined_from" not in f.attrs
        with h5py.File(root / "features" / name / "all_features.h5") as f:
            assert f["features"].is_virtual is (name == "labels")
    assert_reads_only_beside(root, {out})


def test_the_kubernetes_recipe_runs_as_local_indexed_pods(tmp_path: Path) -> None:
    """The page's Indexed Job: its container's command in ``completions`` local processes, each with the
    JOB_COMPLETION_INDEX Kubernetes gives a pod, then the page's join command."""
    from .test_readme import heredoc, page_commands

    root = recipe_sandbox(tmp_path)
    job = yaml.safe_load(heredoc("cat > extract-job.yaml <<'END'"))
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    pods = [
        subprocess.Popen(
            [*container["command"], *RECIPE_SIZE],
            cwd=root,
            env=scheduler_env({"JOB_COMPLETION_INDEX": str(k)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(job["spec"]["completions"])
    ]
    for p in pods:
        log = p.communicate(timeout=240)[0]
        assert p.returncode == 0, log[-3000:]
    join = "python -m research.commands.features join features/demo"
    assert join in page_commands()
    joined = subprocess.run(shlex.split(join), cwd=root, env=scheduler_env({}), capture_output=True, text=True)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    check_joined_demo(root)
