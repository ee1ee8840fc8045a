"""Grouped cross-validation: no group on both sides of a fold, the same folds twice, every video scored once."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest

from research.config import CVConfig, SearchConfig
from research.data.dataset import FeatureDataset
from research.data.splits import carve_validation, make_folds, video_groups
from research.engine.checkpoints import build_model, load_checkpoint
from research.engine.crossval import ROWS, InnerValidation, cross_validate, probe_cross_validate, same_cv
from research.features.copying import subset
from research.features.hdf5 import summary_caption
from research.models.probe import C_GRID
from research.tuning.search import run_search
from research.tuning.storage import storage_for
from studies.real_footage import ablation_section, real_section, seed_claims_section

from .conftest import tiny_extract_config
from .test_training import tiny_sizes, tiny_train_config


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
    groups = video_groups(ds, cfg, extract_cfg)
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["rows"].keys() == report["rows"].keys()
    assert report["videos"] == len(ds) == 20 and report["groups"] == len(set(groups))
    assert report["features"] == {  # what RESULTS.md's table names as the features it was measured on
        "file": str(tmp_path / "features" / "all_features_multiscale.h5"),
        "videos": 20,
        "backbone": "mobilenet_v2",
        "image_size": 64,
        "frames_per_video": 4,
        "clip_seconds": -1.0,  # each clip whole
        "multi_scale": True,
        "scales": list(extract_cfg.scales),
    }
    assert summary_caption(report["features"]) == "mobilenet_v2 features (4 frames per clip, 64 px)"
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
    # studies.results re-uses this summary only for the same configs and the same features.
    source = tmp_path / "features" / "all_features_multiscale.h5"
    summary = tmp_path / "cv" / "cv.json"
    assert same_cv(summary, train_cfg, cfg, source, extract_cfg)
    assert not same_cv(summary, dataclasses.replace(train_cfg, lr=0.5), cfg, source, extract_cfg)
    fewer = tmp_path / "fewer.h5"
    subset(source, fewer, list(range(len(ds) - 1)))
    assert not same_cv(summary, train_cfg, cfg, fewer, extract_cfg)
    regrouped = json.loads(summary.read_text())  # the groups it was folded by are not the ones given now
    regrouped["video_groups"] = [*regrouped["video_groups"][1:], regrouped["video_groups"][0]]
    summary.write_text(json.dumps(regrouped))
    assert not same_cv(summary, train_cfg, cfg, source, extract_cfg)


def test_recipe_study_scores_training_folds_only(pooled_videos: Path, tmp_path: Path, tracking_uri: str) -> None:
    """``python -m research.commands.cv --search``: trials (model, nested pooling) are trained and scored per outer fold
    on data that excludes that fold's test videos; no test file is ever written for the study."""
    extract_cfg = tiny_extract_config(pooled_videos, tmp_path / "features", splits=["all"], frames=4, image_size=64)
    base = tiny_train_config(tmp_path / "features", tmp_path / "runs", model="linear", epochs=2, keep="last")
    base.tracking_uri = tracking_uri
    base.model_args = {"linear": {**tiny_sizes("linear"), "pooling": "mean"}, "mean_pool": tiny_sizes("mean_pool")}
    cfg = CVConfig(folds=2, group_by="subcategory", seeds=[1], out_dir=str(tmp_path / "cv"))
    fit = InnerValidation(cfg, extract_cfg, base)
    space = {
        "model": {"type": "categorical", "choices": ["linear", "mean_pool"]},
        "model_args.linear.pooling": {"type": "categorical", "choices": ["mean", "mean+std"]},
    }
    study_cfg = SearchConfig(study="recipe", trials=3, storage=str(tmp_path / "s.journal"), space=space, pruner="none")
    summary = run_search(study_cfg, base, fit=fit)
    assert summary["states"] == {"COMPLETE": 3} and 0.0 <= summary["best_value"] <= 1.0
    assert not list((tmp_path / "cv").rglob("test_*.h5"))  # the study never had a test file to look at
    ds = FeatureDataset(tmp_path / "features" / "all_features_multiscale.h5")
    folds = make_folds(ds.labels, video_groups(ds, cfg, extract_cfg), 2, cfg.fold_seed)
    for k, fold_dir in enumerate(fit.fold_dirs):
        seen = set()
        for name in (
            "train_features.h5",
            "val_features.h5",
            "train_features_multiscale.h5",
            "val_features_multiscale.h5",
        ):
            seen |= set(FeatureDataset(fold_dir / name).video_ids)
        assert not seen & {ds.video_ids[i] for i in folds[k]}
    # Every trial's parameters reached the model it built, nested pooling included; all on a fixed schedule.
    study = optuna.load_study(study_name="recipe", storage=storage_for(study_cfg, tracking_uri)[0])
    for trial in study.trials:
        for k in range(2):
            ckpt = load_checkpoint(
                next((tmp_path / "search" / "recipe" / f"trial_{trial.number:04d}" / f"fold_{k}").glob("*.pt"))
            )
            assert ckpt["config"]["keep"] == "last" and ckpt["model"]["name"] == trial.params["model"]
            if trial.params["model"] == "linear":
                assert build_model(ckpt).pooling == trial.params["model_args.linear.pooling"].split("+")


def _cv_report(preds: list[int], labels: list[int], groups: list[str]) -> dict:
    from research.engine.metrics import classification_metrics

    m = classification_metrics(np.asarray(labels), np.asarray(preds), 2)
    pooled = {"macro_f1": m["macro_f1"], "bootstrap_95": {"low": 0.0, "high": 1.0}, "confusion": m["confusion"]}
    rows = {r: {"pooled": pooled | {"pred": preds}, "fold_macro_f1": {"mean": 0.5, "std": 0.1}} for r in ROWS}
    ids = [f"all/{c}/{g}/{g}_{i:02d}" for i, (c, g) in enumerate(zip(labels, groups, strict=True))]
    rows["member"]["pooled"] = pooled | {"pred": [preds, preds]}  # [seed][video], as cross_validate writes
    rows["member+tta"]["pooled"] = pooled | {"pred": [preds, preds]}
    summary = {"videos": 4, "groups": 3, "folds": 2, "classes": ["a", "b"], "rows": rows, "seconds": 1.0}
    config = {"cv": {"group_by": "family", "seeds": [1, 2]}}
    return summary | {"video_ids": ids, "video_groups": groups, "labels": labels, "config": config}


def test_real_section_compares_recipe_and_probe_on_the_same_clips(tmp_path: Path) -> None:
    """RESULTS.md's real-footage section: a paired difference, the confusions and the sources that fail."""
    labels, groups = [0, 0, 1, 1], ["s1", "s1", "s2", "s3"]
    for arm, preds in (("probe", [0, 1, 0, 1]), ("recipe", [0, 0, 1, 0])):
        (tmp_path / "baseline" / arm).mkdir(parents=True)
        (tmp_path / "baseline" / arm / "cv.json").write_text(json.dumps(_cv_report(preds, labels, groups)))
    text = "\n".join(real_section(tmp_path))
    assert "| baseline/probe | 2 | 0.500 |" in text and "| baseline/recipe | 2 | 0.733 |" in text
    assert "grouped by **family**" in text and "(4 clips, 3 family groups)" in text
    assert "baseline/recipe − baseline/probe (ensemble+tta, family groups resampled, paired): +0.233 [" in text
    assert "b → a 1" in text and "1 of 3 family groups mostly misclassified (correct/clips): s3 (b) 0/1." in text
    # the ablation's table pairs the two scales row by row; the seed's claims pair each row with `member`
    for arm, preds in (("scales/single", [0, 1, 0, 1]), ("scales/multi", [0, 0, 1, 1])):
        (tmp_path / arm).mkdir(parents=True)
        (tmp_path / arm / "cv.json").write_text(json.dumps(_cv_report(preds, labels, groups)))
    ablation = "\n".join(ablation_section(tmp_path))
    assert "| member | 0.500 | 1.000 | +0.500 [" in ablation and "| ensemble+tta | 0.500 | 1.000 | +0.500 [" in ablation
    (tmp_path / "models" / "super_enhanced").mkdir(parents=True)
    (tmp_path / "models" / "super_enhanced" / "cv.json").write_text(
        json.dumps(_cv_report([0, 0, 1, 0], labels, groups))
    )
    claims = "\n".join(seed_claims_section(tmp_path))
    assert (
        "| models/super_enhanced (the seed's model) | 0.733 | 0.733 | 0.733 | 0.733 | +0.000 [+0.000, +0.000]" in claims
    )
    assert "Every difference here is noise" in claims and "seed's claim" in claims


def test_probe_cross_validation_scores_every_video_once_with_the_same_folds(
    pooled_videos: Path, tmp_path: Path
) -> None:
    """``python -m research.commands.cv --probe``: the logistic-regression probe on the CV's own folds, C per fold."""
    extract_cfg = tiny_extract_config(pooled_videos, tmp_path / "features", splits=["all"], frames=4, image_size=64)
    train_cfg = tiny_train_config(tmp_path / "features", tmp_path / "unused", model="linear")
    cfg = CVConfig(folds=2, group_by="subcategory", out_dir=str(tmp_path / "cv"), bootstrap=200)
    report = probe_cross_validate(cfg, extract_cfg, train_cfg)
    pooled = report["rows"]["probe"]["pooled"]
    assert report["videos"] == 20 and len(pooled["pred"]) == 20 and len(report["rows"]["probe"]["folds"]) == 2
    assert sum(map(sum, pooled["confusion"])) == 20 and set(report["c_per_fold"]) <= set(C_GRID)
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["rows"]["probe"]["pooled"]["pred"] == pooled["pred"]
