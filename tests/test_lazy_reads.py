"""Lazy training reads: the uncompressed training copy gives in-memory training's rows in its order, is made
again when the file changes, and gives way to direct reading when it cannot be written; the finiteness a
file records (``all_finite``) is trusted, and a file without it is scanned as before. Small real files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research import distributed
from research.config import TrainConfig
from research.data.dataset import Augment, FeatureDataset, split_loader, training_copy_path
from research.errors import ConfigError, FeatureFileError
from research.features.writing import write_features

N, T, D = 70, 6, 16  # 70 clips: batches of 8 leave a short last batch
ROOT = Path(__file__).resolve().parents[1]


def feature_file(path: Path, all_finite: bool | None, nan_row: int | None = None, seed: int = 0) -> Path:
    """A feature file whose column 0 holds each clip's row number; ``all_finite`` set (or removed) by hand."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, N)
    rows = []
    for i in range(N):
        clip = rng.standard_normal((lengths[i], D)).astype(np.float32)
        clip[:, 0] = i
        rows.append(clip)
    if nan_row is not None:
        rows[nan_row][1, 3] = np.nan
    attrs = {"category_mapping": json.dumps({"a": 0, "b": 1, "c": 2, "d": 3}), "multi_scale": True}
    write_features(path, rows, [i % 4 for i in range(N)], attrs, max_frames=T)
    with h5py.File(path, "a") as f:  # whatever the writer records, the test decides
        if "all_finite" in f.attrs:
            del f.attrs["all_finite"]
        if all_finite is not None:
            f.attrs["all_finite"] = all_finite
    return path


def epoch(ds: FeatureDataset, seed: int, epoch_number: int = 0, workers: int = 0) -> list[tuple]:
    """One training epoch's batches as ``train`` draws them: split_loader, the generator seeded per epoch."""
    loader = split_loader(
        ds, TrainConfig(batch_size=8, num_workers=workers), True, distributed.Context(), torch.device("cpu"), seed
    )
    loader.generator.manual_seed(seed * 100_003 + epoch_number)
    torch.manual_seed(seed)  # the augmentation's draws
    return list(loader)


def same_batches(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) for ba, bb in zip(a, b, strict=True) for x, y in zip(ba, bb, strict=True)
    )


def test_the_training_copy_gives_every_row_once_in_the_in_memory_order(tmp_path: Path) -> None:
    path = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=None)
    augment = Augment(crop=0.8, frame_dropout=0.1)
    eager = FeatureDataset(path, in_memory="yes", augment=augment)
    lazy = FeatureDataset(path, in_memory="no", augment=augment, lazy_reading="copy")
    assert eager.in_memory and not lazy.in_memory
    assert lazy.copy_path == training_copy_path(path) and lazy.copy_path.is_file()
    assert FeatureDataset(path, in_memory="no").copy_path is None  # direct reading is the default elsewhere

    for seed in (0, 7):
        batches = epoch(lazy, seed)
        assert same_batches(batches, epoch(eager, seed))  # features, frame counts and labels, batch by batch
    plain = FeatureDataset(path, in_memory="no", lazy_reading="copy")
    rows = torch.cat([features[:, 0, 0] for features, _, _ in epoch(plain, 3)]).long()
    labels = torch.cat([labels for _, _, labels in epoch(plain, 3)])
    assert sorted(rows.tolist()) == list(range(N))  # every row exactly once
    assert torch.equal(labels, rows % 4)  # each with its own label
    assert rows.tolist() != list(range(N))  # and shuffled
    with h5py.File(path) as f:
        for i in (0, 33, N - 1):
            assert torch.equal(plain[i][0], torch.from_numpy(f["features"][i]))
            assert plain[i][1] == f["num_frames"][i]


def test_the_same_seed_gives_the_same_order_and_workers_read_the_copy(tmp_path: Path) -> None:
    path = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=True)
    lazy = FeatureDataset(path, in_memory="no", lazy_reading="copy")
    first = epoch(lazy, 5)
    assert same_batches(first, epoch(lazy, 5))
    assert not same_batches(first, epoch(lazy, 6)) and not same_batches(first, epoch(lazy, 5, epoch_number=1))
    # worker processes map the copy themselves: the same batches as reading it here
    assert same_batches(epoch(lazy, 5, workers=2), first)


def test_a_changed_file_gets_a_new_copy(tmp_path: Path) -> None:
    path = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=True)
    before = FeatureDataset(path, in_memory="no", lazy_reading="copy")[4][0]
    feature_file(path, all_finite=True, seed=1)  # extracted again: other numbers, same shape
    after = FeatureDataset(path, in_memory="no", lazy_reading="copy")
    assert torch.equal(after[4][0], FeatureDataset(path, in_memory="yes")[4][0])
    assert not torch.equal(after[4][0], before)


def test_a_copy_that_cannot_be_written_leaves_the_file_read_directly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=None)
    training_copy_path(path).mkdir()  # the copy's name is taken by a folder: the rename fails
    with caplog.at_level(logging.WARNING):
        lazy = FeatureDataset(path, in_memory="no", lazy_reading="copy")
    assert lazy.copy_path is None and "no training copy" in caplog.text
    assert same_batches(epoch(lazy, 2), epoch(FeatureDataset(path, in_memory="yes"), 2))
    assert training_copy_path(path).is_dir() and not list(tmp_path.glob("*.tmp"))  # no half-written copy left


@pytest.mark.parametrize(
    "reading", [{"in_memory": "yes"}, {"in_memory": "no"}, {"in_memory": "no", "lazy_reading": "copy"}]
)
def test_a_file_without_the_attribute_is_scanned_and_refused_naming_the_video(tmp_path: Path, reading: dict) -> None:
    path = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=None, nan_row=66)
    with pytest.raises(FeatureFileError, match=r"non-finite features .* first in video 'video_00066' \(row 66\)"):
        FeatureDataset(path, **reading)
    assert not training_copy_path(path).exists() and not list(tmp_path.glob("*.tmp"))  # no copy of refused features


@pytest.mark.parametrize(
    "reading", [{"in_memory": "yes"}, {"in_memory": "no"}, {"in_memory": "no", "lazy_reading": "copy"}]
)
def test_recorded_finiteness_is_trusted_without_a_scan(tmp_path: Path, reading: dict) -> None:
    # the attribute says all rows are finite: believed (a scan would have refused row 66)
    lying = feature_file(tmp_path / "train_features_multiscale.h5", all_finite=True, nan_row=66)
    assert len(FeatureDataset(lying, **reading)) == N
    clean = feature_file(tmp_path / "clean.h5", all_finite=None)
    assert len(FeatureDataset(clean, **reading)) == N  # no attribute, nothing bad: scanned and accepted


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_recorded_non_finite_features_are_refused_naming_the_first_bad_video(tmp_path: Path, in_memory: str) -> None:
    bad = feature_file(tmp_path / "bad.h5", all_finite=False, nan_row=12)
    with pytest.raises(FeatureFileError, match=r"first in video 'video_00012' \(row 12\)"):
        FeatureDataset(bad, in_memory=in_memory, lazy_reading="copy")
    inconsistent = feature_file(tmp_path / "inconsistent.h5", all_finite=False)
    with pytest.raises(FeatureFileError, match=r"records non-finite features \(all_finite=False\)"):
        FeatureDataset(inconsistent, in_memory=in_memory)
    assert not training_copy_path(bad).exists()


def test_an_unknown_lazy_reading_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lazy_reading must be copy\|direct"):
        TrainConfig(lazy_reading="fast").validate()
    run = subprocess.run(
        [sys.executable, "train.py", "--lazy-reading", "fast", "--features-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "--lazy-reading: invalid choice" in run.stderr and "Traceback" not in run.stderr
