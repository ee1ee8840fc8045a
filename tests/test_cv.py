"""Grouped cross-validation: no group on both sides of a fold, the same folds twice, every video scored once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from research.crossval import CVConfig, carve_validation, cross_validate, make_folds, video_groups
from research.data.dataset import FeatureDataset

from .conftest import tiny_extract_config
from .test_training import tiny_train_config


@pytest.fixture(scope="module")
def pooled_videos(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny set's videos in one split folder, ``all/{class}/{subcategory}/``: subcategories are the groups."""
    root = tmp_path_factory.mktemp("pooled")
    for video in tiny_videos.rglob("*.mp4"):
        split, category, sub = video.relative_to(tiny_videos).parts[:3]
        target = root / "all" / category / sub / f"{split}_{video.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(video, target)
    return root


def test_folds_are_grouped_stratified_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    groups = [f"g{i}" for i in range(24) for _ in range(int(rng.integers(1, 4)))]
    labels = np.array([int(g[1:]) % 4 for g in groups])
    folds = make_folds(labels, groups, 4, seed=0)
    again = make_folds(labels, groups, 4, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))  # every video tested once
    for test in folds:
        rest = np.setdiff1d(np.arange(len(groups)), test)
        assert not {groups[i] for i in test} & {groups[i] for i in rest}
        assert set(labels[test]) == {0, 1, 2, 3}  # stratified: every class in every fold
        fit, val = carve_validation(rest, labels, groups, 0.25, seed=1)
        assert not {groups[i] for i in fit} & {groups[i] for i in val}
        assert not set(val) & set(test) and sorted([*fit, *val]) == sorted(rest)


def test_cross_validation_end_to_end(pooled_videos: Path, tmp_path: Path, tracking_uri: str) -> None:
    extract_cfg = tiny_extract_config(pooled_videos, tmp_path / "features", splits=["all"], frames=4, image_size=64)
    train_cfg = tiny_train_config(tmp_path / "features", tmp_path / "unused", model="linear", epochs=3)
    train_cfg.tracking_uri = tracking_uri
    cfg = CVConfig(folds=2, group_by="subcategory", seeds=[1, 2], out_dir=str(tmp_path / "cv"), bootstrap=200)
    report = cross_validate(cfg, extract_cfg, train_cfg, "tiny")
    ds = FeatureDataset(tmp_path / "features" / "all_features_multiscale.h5")
    groups = video_groups(ds, cfg, pooled_videos)
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["rows"].keys() == report["rows"].keys()
    assert report["videos"] == len(ds) == 20 and report["groups"] == len(set(groups))
    fold_groups = report["fold_groups"]
    assert not set(fold_groups[0]) & set(fold_groups[1]) and len(set(fold_groups[0]) | set(fold_groups[1])) == len(
        set(groups)
    )
    for row in ("member", "member+tta", "ensemble", "ensemble+tta"):
        pooled = report["rows"][row]["pooled"]
        assert 0.0 <= pooled["macro_f1"] <= 1.0
        assert pooled["bootstrap_95"]["low"] <= pooled["bootstrap_95"]["high"]
        assert len(report["rows"][row]["folds"]) == 2
    assert sum(report["rows"]["ensemble"]["pooled"]["confusion"][i][j] for i in range(4) for j in range(4)) == 20
    # The validation of each fold came from its training folds only: the fold's test file holds its test groups.
    for k in range(2):
        test = FeatureDataset(tmp_path / "cv" / f"fold_{k}" / "features" / "test_features_multiscale.h5")
        val = FeatureDataset(tmp_path / "cv" / f"fold_{k}" / "features" / "val_features_multiscale.h5")
        assert not set(test.video_ids) & set(val.video_ids)
