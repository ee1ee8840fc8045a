"""The launcher (research.launcher) on real jobs in real processes: tiny trainings give the same checkpoints
serially, in a pool of processes and as a submitit array (the local executor, with docs/several-machines.md's own
launch: block); a job killed mid-run runs again alone; a failed job is named in one line; a stop stops the
workers; a re-run waits for the array a killed launcher submitted; extraction as an array equals one process."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from research.config import LaunchConfig, load_config
from research.errors import ConfigError, UserError
from research.features.array import extract_array
from research.features.hdf5 import content_fingerprint
from research.launcher import Job, JobsFailedError, Where, job_key, plan, result_of, run_jobs

from .conftest import ROOT, tiny_extract_config
from .launched import failing_job, own_result_job, quick_job, train_job, waiting_jobs
from .test_training import tiny_train_config

PAGE = ROOT / "docs" / "several-machines.md"
THIS_MACHINE = {
    "slurm_cluster": "local",
    "slurm_gpus_per_job": 0,
    "slurm_cpus_per_job": 1,
}  # what the page's differs in
POOL = LaunchConfig(launcher="processes", workers=2, threads=1)


def page_launch_config(tmp_path: Path) -> LaunchConfig:
    """The ``launch:`` block of docs/several-machines.md, as a config file of its own, run on this machine."""
    blocks, inside = [], False
    for line in PAGE.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```yaml" and not inside
            blocks += [""] if inside else []
        elif inside:
            blocks[-1] += line + "\n"
    (block,) = [b for b in blocks if "launch" in (yaml.safe_load(b) or {})]
    path = tmp_path / "cluster.yaml"
    path.write_text(block.replace("base: demo.yaml", f"base: {ROOT / 'experiments' / 'demo.yaml'}"))
    cfg = load_config(LaunchConfig, "launch", path)
    assert cfg.launcher == "slurm" and cfg.slurm_cluster == "slurm", "the page shows a cluster's config"
    return dataclasses.replace(cfg, **THIS_MACHINE)


def training_jobs(features: Path, out: Path) -> list[Job]:
    """Two members (seeds 1 and 2) of a tiny GRU, each keyed on its whole config."""
    jobs = []
    for seed in (1, 2):
        cfg = tiny_train_config(features, out / "runs", seed=seed, model="gru", epochs=2, log_mlflow=False)
        jobs.append(Job(f"seed{seed}", job_key(dataclasses.asdict(cfg)), train_job, cfg, out / f"seed{seed}.json"))
    return jobs


def weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_training_jobs_give_the_same_checkpoints_serially_in_processes_and_as_the_slurm_page_s_array(
    tiny_features: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One thread per job everywhere, so the same arithmetic: the same weights bit for bit and the same metrics.
    (Serial with torch's default threads, every core, would round differently: not compared.)"""
    launchers = {
        "serial": LaunchConfig(launcher="serial", threads=1),
        "processes": POOL,
        "slurm": page_launch_config(tmp_path),
    }
    results = {}
    for name, cfg in launchers.items():
        jobs = training_jobs(tiny_features, tmp_path / name)
        run_jobs(jobs, cfg)
        results[name] = {job.name: result_of(job) for job in jobs}
    assert "seed1: pid" in (tmp_path / "processes" / "jobs" / "seed1.log").read_text()  # its output, in its log
    assert len(list((tmp_path / "slurm" / "jobs" / "local").glob("*_submitted.pkl"))) == 2
    reference = results["serial"]
    for name, by_job in results.items():
        for job, result in by_job.items():
            metrics = {k: v for k, v in result.items() if k != "checkpoint"}
            assert metrics == {k: v for k, v in reference[job].items() if k != "checkpoint"}, (name, job)
            mine, theirs = weights(result["checkpoint"]), weights(reference[job]["checkpoint"])
            assert all(torch.equal(mine[k], theirs[k]) for k in theirs), (name, job)
    assert results["serial"]["seed1"]["best_val_loss"] != results["serial"]["seed2"]["best_val_loss"]

    # finished jobs are re-used, whichever launcher is asked: nothing trains again
    jobs = training_jobs(tiny_features, tmp_path / "serial")
    stamps = [Path(result_of(job)["checkpoint"]).stat().st_mtime_ns for job in jobs]
    with caplog.at_level(logging.INFO, logger="research.launcher"):
        run_jobs(jobs, POOL)
    assert [r.getMessage().split(":")[0] for r in caplog.records if "re-used" in r.getMessage()] == ["seed1", "seed2"]
    assert [Path(result_of(job)["checkpoint"]).stat().st_mtime_ns for job in jobs] == stamps
    assert not (tmp_path / "serial" / "jobs" / "seed1.task.pkl").exists()  # no worker was started


def test_a_job_killed_mid_run_runs_again_alone(tmp_path: Path) -> None:
    """SIGKILL of one worker fails that job alone, named with its log; the re-run runs it and re-uses the other."""
    jobs = waiting_jobs(tmp_path, ("a", "b"))
    failed: list[BaseException] = []

    def launch() -> None:
        try:
            run_jobs(jobs, POOL)
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=launch)
    thread.start()
    started = tmp_path / "b.started"
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = int(started.read_text())
    os.kill(killed, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    (err,) = failed
    assert isinstance(err, JobsFailedError) and isinstance(err, UserError) and "\n" not in str(err)
    assert "1 of 2 job(s) failed" in str(err) and "b: killed by SIGKILL (log: " in str(err)
    assert (tmp_path / "jobs" / "b.log").is_file() and result_of(jobs[0]) == {"value": 0}

    (tmp_path / "go").touch()
    run_jobs(jobs, POOL)
    assert (tmp_path / "runs.txt").read_text().count("\n") == 1  # a ran once
    assert result_of(jobs[1])["value"] == 1 and result_of(jobs[1])["pid"] != killed  # b, in a new worker


def test_a_failed_job_is_one_line_naming_it_and_its_log_and_the_others_are_kept(tmp_path: Path) -> None:
    for name, cfg in {"serial": LaunchConfig(launcher="serial"), "processes": POOL}.items():
        root = tmp_path / name
        quick = Job("quick", job_key("quick"), quick_job, {"runs": str(root / "runs.txt"), "value": 1}, root / "q.json")
        bad = Job("broken", job_key("broken"), failing_job, {"features": "features/none"}, root / "broken.json")
        own = {"result": str(root / "own.json"), "key": job_key("own")}
        writer = Job("own", own["key"], own_result_job, own, root / "own.json")  # its own file, kept as written
        with pytest.raises(JobsFailedError) as caught:
            run_jobs([bad, quick, writer], cfg)
        message = str(caught.value)
        assert "\n" not in message and "1 of 3 job(s) failed, 2 finished and kept" in message
        assert "broken: the features in features/none do not exist (second line of the message)" in message
        log = root / "jobs" / "broken.log"
        assert f"(log: {log})" in message and "UserError" in log.read_text()  # the traceback is in the log
        assert result_of(quick) == {"value": 1}
        assert result_of(writer) == {"key": own["key"], "answer": 42, "device": "auto" if name == "serial" else "cpu"}
        with pytest.raises(JobsFailedError):
            run_jobs([bad, quick, writer], cfg)
        assert (root / "runs.txt").read_text().count("\n") == 1, name  # only the failed job ran again


DRIVER = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from research.cli import run_cli, setup_logging\n"
    "from research.config import LaunchConfig\n"
    "from research.launcher import run_jobs\n"
    "from tests.launched import waiting_jobs\n"
    "setup_logging()\n"
    "run_cli(lambda: run_jobs(waiting_jobs(Path(sys.argv[1])), LaunchConfig(**json.loads(sys.argv[2]))))\n"
)


def driver(root: Path, cfg: LaunchConfig) -> tuple[subprocess.Popen, Path]:
    """A launcher in a process of its own (run_cli: SIGTERM stops it as a user's kill would), and the file its
    output goes to (a file, not a pipe: a local array's processes outlive a killed launcher and hold its output)."""
    args = [sys.executable, "-c", DRIVER, str(root), json.dumps(dataclasses.asdict(cfg))]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    output = root / f"launcher-{time.monotonic_ns()}.out"
    with output.open("w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), output


def wait_for(*paths: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"never appeared: {[str(p) for p in paths if not p.exists()]}"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def gone(pids: list[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(pid) for pid in pids)


def test_sigterm_or_sigkill_of_the_launcher_stops_its_workers_and_a_rerun_keeps_what_finished(tmp_path: Path) -> None:
    started = [tmp_path / "b.started", tmp_path / "c.started"]
    proc, output = driver(tmp_path, POOL)
    wait_for(tmp_path / "a.json", *started)
    workers = [int(p.read_text()) for p in started]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143, output.read_text()
    assert "stopped 2 running job(s): b, c" in output.read_text() and "finished work is kept" in output.read_text()
    assert gone(workers), "a worker outlived its launcher's SIGTERM"

    for path in started:
        path.unlink()
    proc, output = driver(tmp_path, POOL)  # a re-used, b and c start again; then the launcher dies without a word
    wait_for(*started)
    workers = [int(p.read_text()) for p in started]
    proc.kill()
    proc.wait(60)
    assert gone(workers), "a worker outlived its launcher's SIGKILL"

    (tmp_path / "go").touch()
    proc, output = driver(tmp_path, POOL)
    assert proc.wait(180) == 0, output.read_text()
    assert "a: re-used" in output.read_text() and (tmp_path / "runs.txt").read_text().count("\n") == 1


def test_a_rerun_waits_for_the_array_a_killed_launcher_submitted_instead_of_submitting_it_again(
    tmp_path: Path,
) -> None:
    """Slurm jobs outlive the login node's process: killed, its re-run finds them queued or running (here: the
    local executor's processes) by the ids it recorded, and waits for them."""
    cfg = LaunchConfig(launcher="slurm", **THIS_MACHINE)
    started = [tmp_path / "b.started", tmp_path / "c.started"]
    proc, _ = driver(tmp_path, cfg)
    wait_for(tmp_path / "a.json", *started)
    proc.kill()
    proc.wait(60)
    ids = {name: r["job_id"] for name, r in json.loads((tmp_path / "jobs" / "submitted.json").read_text()).items()}
    assert all(alive(int(ids[name])) for name in ("b", "c")), "the array died with its launcher"
    pids = [int(p.read_text()) for p in started]

    proc, output = driver(tmp_path, cfg)
    deadline = time.monotonic() + 120
    while "job(s)" not in output.read_text():  # the jobs go on only once the re-run said what it does with them
        assert proc.poll() is None and time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
    assert "waiting for 2 job(s) submitted earlier and still queued or running" in output.read_text()
    (tmp_path / "go").touch()
    assert proc.wait(180) == 0, output.read_text()
    assert "submitted" not in output.read_text().replace("submitted earlier", "")
    assert len(list((tmp_path / "jobs" / "local").glob("*_submitted.pkl"))) == 3  # a, b, c: each submitted once
    assert [result_of(job)["pid"] for job in waiting_jobs(tmp_path)[1:]] == pids  # the first run's processes


def test_slurm_without_sbatch_is_one_line_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    job = Job("quick", job_key("quick"), quick_job, {"runs": str(tmp_path / "runs.txt"), "value": 1}, tmp_path / "q")
    with pytest.raises(
        UserError, match=r"^launcher: slurm submits with sbatch, and this machine has no sbatch or srun"
    ):
        run_jobs([job], LaunchConfig(launcher="slurm"))
    assert not (tmp_path / "runs.txt").exists()


def test_auto_is_a_pool_of_one_thread_workers_on_several_cores_and_serial_on_one() -> None:
    mine = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, set(sorted(mine)[:2]))
        if len(os.sched_getaffinity(0)) == 2:
            pool = plan(LaunchConfig())
            assert pool.launcher == "processes" and [w.describe() for w in pool.slots] == ["cpu, 1 thread"] * 2
            assert plan(LaunchConfig(threads=2)).launcher == "serial"  # one worker of 2 threads: nothing to overlap
        os.sched_setaffinity(0, set(sorted(mine)[:1]))
        assert plan(LaunchConfig()).launcher == "serial"
        assert plan(LaunchConfig(launcher="processes")).slots[0].describe() == "cpu, 1 thread"
    finally:
        os.sched_setaffinity(0, mine)


def test_the_launch_config_refuses_what_cannot_run_in_one_line() -> None:
    for bad, match in [
        ({"launcher": "cluster"}, "launcher must be one of auto, serial, processes, slurm"),
        ({"workers": 0}, r"launch.workers must be 1 or more"),
        ({"devices": [0, 0]}, "distinct GPU indices"),
        ({"slurm_time_min": 0}, "slurm_time_min >= 1"),
        ({"slurm_extra": {"constraint": ["a100"]}}, "one value each"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config(LaunchConfig, "launch", overrides=bad)


def test_extraction_as_an_array_equals_one_process(tiny_videos: Path, tiny_features: Path, tmp_path: Path) -> None:
    """Shard tasks in a pool of processes and as a local submitit array, joined: every file holds what one
    process's extraction holds (content digests); a second call starts nothing."""
    for name, launch in {
        "processes": POOL,
        "slurm": LaunchConfig(launcher="slurm", extract_tasks=2, **THIS_MACHINE),
    }.items():
        out = tmp_path / name
        cfg = tiny_extract_config(tiny_videos, out, log_mlflow=False)
        joined = extract_array(cfg, launch)
        assert sorted(Path(p).name for p in joined) == sorted(p.name for p in tiny_features.glob("*_features*.h5"))
        assert set(joined.values()) == {"joined"}
        for path in joined:
            assert content_fingerprint(path) == content_fingerprint(tiny_features / Path(path).name), (name, path)
        assert len(list((out / "shards").glob("*.shard*-of-0002.h5"))) == 2 * len(joined)  # 2 tasks
        assert set(extract_array(cfg, launch).values()) == {"re-used"}


FAKE_SLURM = {  # a cluster's commands as far as submitting goes: sbatch keeps its script, sacct says FAILED
    "sbatch": 'cp "$1" "$(dirname "$0")/submitted.sbatch"; echo "Submitted batch job 4242"',
    "srun": 'echo "srun is the cluster\'s own" >&2; exit 1',
    "sacct": 'printf "JobID|State|NodeList\\n4242_[0-1]|FAILED|node7\\n"',
    "scancel": "exit 0",
}


def test_the_array_sbatch_receives_carries_the_page_s_settings_and_its_failures_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script submitit hands to sbatch for the page's launch: block (commands that stand in for a cluster's
    record what they are given): the partition, GPUs, cores, memory, time, the array and its parallelism, the
    extra options and the setup; jobs the cluster reports FAILED without a result are named in one line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("research.launcher.RESULT_GRACE_S", 0.0)  # no shared file system to wait for here
    cfg = dataclasses.replace(page_launch_config(tmp_path), slurm_cluster="slurm", slurm_gpus_per_job=1)
    cfg = dataclasses.replace(cfg, slurm_cpus_per_job=8)
    jobs = [
        Job(name, job_key(name), quick_job, {"runs": str(tmp_path / "runs.txt"), "value": 0}, tmp_path / f"{name}.json")
        for name in ("first", "second")
    ]
    with pytest.raises(JobsFailedError) as caught:
        run_jobs(jobs, cfg, name="members")
    script = (bin_dir / "submitted.sbatch").read_text()
    for line in (
        "#SBATCH --array=0-1%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=240",
        "#SBATCH --account=mylab",
        "#SBATCH --job-name=members",
        "source .venv/bin/activate",
        "export OMP_NUM_THREADS=8",
    ):
        assert line in script.splitlines(), f"{line!r} not in\n{script}"
    message = str(caught.value)
    assert "2 of 2 job(s) failed" in message and "\n" not in message
    assert "first: ended without a result (FAILED) (log: " in message and "4242_1_0_log.out" in message
    recorded = json.loads((tmp_path / "jobs" / "submitted.json").read_text())
    assert {name: r["job_id"] for name, r in recorded.items()} == {"first": "4242_0", "second": "4242_1"}


def test_a_serial_job_runs_on_the_device_its_config_asks_for_and_a_worker_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serially the launcher leaves the device to the job (``train.device=cpu`` on a GPU machine stays on the
    CPU); a pool's or an array's worker puts its work on the device the launcher gave it."""
    from research.engine import members

    assert Where("auto", None).device_for("cpu") == "cpu" and Where("auto", None).device_for("auto") == "auto"
    assert Where("cuda:0", 4, gpu="3").device_for("cpu") == "cuda:0" and Where("cpu", 1).device_for("auto") == "cpu"
    ran = []
    monkeypatch.setattr(members, "run_member_job", lambda job, device: ran.append(device))
    job = members.MemberJob(members.TrainConfig(device="cpu"), {}, (), "result.json")
    members.member_job(job, Where("auto", None))
    members.member_job(job, Where("cuda:0", 1, gpu="1"))
    assert ran == ["cpu", "cuda:0"]
