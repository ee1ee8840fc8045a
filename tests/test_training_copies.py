"""Uncompressed training copies (``lazy_reading: copy``) keyed on what the file holds and kept under a bound: a
joined file whose shard changed gets a new copy (never the old rows); copies past ``copy_budget_gb`` are removed
least recently used first, never one a process reads; ``features clean`` lists them and removes them. Small real
files; the readers that hold copies are real processes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
import torch

from research.config import TrainConfig
from research.data.copies import GB, training_copy_path
from research.data.dataset import FeatureDataset, split_path
from research.errors import ConfigError, FeatureFileError
from research.features.shards import join_shards

from .conftest import ROOT, run_entry_point
from .test_file_once import shard
from .test_lazy_reads import D, N, T, feature_file

COPY_BYTES = N * T * D * 4  # one test file's features, uncompressed


def joined_file(folder: Path) -> tuple[Path, list[Path]]:
    """A virtual join of two shard files (6 and 4 clips), as ``features join`` writes it."""
    ids = [f"class_{i % 3}/clip_{s}_{i:03d}" for s, n in ((0, 6), (1, 4)) for i in range(n)]
    collection = dict.fromkeys(ids, "")
    shards = [shard(folder / f"s{k}.h5", k, 2, n, collection) for k, n in ((0, 6), (1, 4))]
    joined = folder / "joined.h5"
    join_shards(joined, shards)
    return joined, shards


def test_a_joined_file_whose_shard_changed_gets_a_new_copy(tmp_path: Path) -> None:
    """A shard extracted again with the same settings (other numbers, its attributes as they were): the joined
    file is refused until it is joined again (never read through a stale copy), and the join's new content
    gets a new copy: training reads the new rows."""
    joined, shards = joined_file(tmp_path)
    before = FeatureDataset(joined, in_memory="no", lazy_reading="copy")
    assert before.copy_path == training_copy_path(joined)
    old_row = before[8][0].clone()  # row 2 of shard 1
    with h5py.File(shards[1], "r+") as f:
        f["features"][2] = f["features"][2] * 2 + 1
    with pytest.raises(FeatureFileError, match="holds other features than when it was joined"):
        FeatureDataset(joined, in_memory="no", lazy_reading="copy")  # the old copy is not read either
    join_shards(joined, shards)  # joined again: the same file name, new content
    after = FeatureDataset(joined, in_memory="no", lazy_reading="copy")
    new_row = FeatureDataset(joined, in_memory="yes")[8][0]
    assert not torch.equal(new_row, old_row)
    assert after.copy_path == before.copy_path and torch.equal(after[8][0], new_row)
    assert torch.equal(after[3][0], before[3][0])  # shard 0's rows as they were


@contextlib.contextmanager
def reader(path: Path) -> Iterator[subprocess.Popen]:
    """Another process training from ``path``'s copy (it holds it until killed)."""
    code = (
        "import sys, time\nfrom research.data.dataset import FeatureDataset\n"
        "ds = FeatureDataset(sys.argv[1], in_memory='no', lazy_reading='copy')\n"
        "assert ds.copy_path is not None and ds[0][0].shape\nprint('reading', flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading", proc.communicate()[1][-3000:]
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_copies_past_the_budget_go_least_recently_used_first_never_one_a_process_reads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c, d = (feature_file(tmp_path / f"{name}.h5", all_finite=True, seed=i) for i, name in enumerate("abcd"))
    budget = 2.5 * COPY_BYTES / GB  # two copies fit, three do not
    with reader(a):  # a: made first (the least recently used), and read by another process throughout
        copy_b = FeatureDataset(b, in_memory="no", lazy_reading="copy", copy_budget_gb=budget).copy_path
        assert copy_b is not None and training_copy_path(a).is_file()  # b is no longer read by anyone
        reading_c = FeatureDataset(c, in_memory="no", lazy_reading="copy", copy_budget_gb=budget)
        assert reading_c.copy_path is not None
        assert training_copy_path(a).is_file() and not copy_b.exists()  # a is older, but read: b made the room
        with caplog.at_level(logging.WARNING):  # a and c both read: d does not fit, and is read directly
            direct = FeatureDataset(d, in_memory="no", lazy_reading="copy", copy_budget_gb=budget)
        assert direct.copy_path is None and not training_copy_path(d).exists()
        assert "do not fit train.copy_budget_gb" in caplog.text
        assert torch.equal(direct[5][0], FeatureDataset(d, in_memory="yes")[5][0])
    # the reader ended: a, now the least recently used unread copy, makes the room for d
    assert FeatureDataset(d, in_memory="no", lazy_reading="copy", copy_budget_gb=budget).copy_path is not None
    assert not training_copy_path(a).exists() and training_copy_path(c).is_file()
    with pytest.raises(ConfigError, match=r"copy_budget_gb must be 0 or more GB"):
        TrainConfig(copy_budget_gb=-1).validate()


def test_features_clean_lists_the_copies_and_removes_those_no_process_reads(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    files = {name: feature_file(folder / f"{name}.h5", all_finite=True, seed=i) for i, name in enumerate("abcd")}
    for path in files.values():
        FeatureDataset(path, in_memory="no", lazy_reading="copy")
    feature_file(files["c"], all_finite=True, seed=9)  # extracted again: c's copy is stale
    files["d"].unlink()  # d's file is gone
    copy = {name: training_copy_path(path) for name, path in files.items()}
    command = ["-m", "research.commands.features", "clean", str(tmp_path)]
    with reader(files["a"]):
        listed = run_entry_point(command)
        assert listed.returncode == 0, listed.stderr
        lines = {name: [line for line in listed.stdout.splitlines() if str(copy[name]) in line] for name in copy}
        assert all(len(found) == 1 for found in lines.values()), listed.stdout
        assert "a.h5: matches its file" in lines["a"][0] and "a process reads it" in lines["a"][0]
        assert "b.h5: matches its file" in lines["b"][0] and "reads it" not in lines["b"][0]
        assert "stale: c.h5 changed since" in lines["c"][0] and "stale: d.h5 is gone" in lines["d"][0]
        assert f"{training_copy_path(files['b']).stat().st_size / 1e3:.0f} kB" in lines["b"][0]
        assert "4 training copies" in listed.stdout and "(2 stale" in listed.stdout
        assert all(path.is_file() for path in copy.values())  # listing removes nothing

        stale = run_entry_point([*command, "--remove", "--stale"])
        assert stale.returncode == 0 and "removed 2 copies" in stale.stdout, stale.stdout + stale.stderr
        assert [name for name, path in copy.items() if path.exists()] == ["a", "b"]
        everything = run_entry_point([*command, "--remove"])
        assert everything.returncode == 0 and "removed 1 copies" in everything.stdout, everything.stdout
        assert f"kept {copy['a']}: a process reads it" in everything.stdout
        assert [name for name, path in copy.items() if path.exists()] == ["a"]
    missing = run_entry_point(["-m", "research.commands.features", "clean", str(tmp_path / "nowhere")])
    assert missing.returncode == 2 and "no such folder" in missing.stdout + missing.stderr


def test_a_member_trained_from_a_copy_is_re_used_whatever_the_copy_settings(
    tiny_features: Path, tmp_path: Path
) -> None:
    """How rows are read, and how much disk their copies may take, changes no number: ``READING_ONLY``."""
    from research.engine.members import train_members

    from .test_training import tiny_train_config

    features = tmp_path / "features"
    shutil.copytree(tiny_features, features)
    cfg = tiny_train_config(features, tmp_path / "runs", epochs=1, log_mlflow=False, in_memory="no")
    (checkpoint,) = train_members(dataclasses.replace(cfg, copy_budget_gb=1.0), [1])
    assert training_copy_path(split_path(features, "train", cfg.multi_scale)).is_file()
    trained = checkpoint.stat().st_mtime_ns
    train_members(dataclasses.replace(cfg, copy_budget_gb=None, lazy_reading="direct"), [1])
    assert checkpoint.stat().st_mtime_ns == trained
