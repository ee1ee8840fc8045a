"""Ensemble members as a library: train one per seed (re-using matching checkpoints), score one.

The demo, the ablation runner, the model comparison and cross-validation all do
these two things; they live here so that no entry point imports another.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.rule import Rule

from research.config import TrainConfig
from research.data.dataset import READING_ONLY, FeatureDataset, split_path
from research.data.splits import write_fold
from research.engine.calibration import with_temperature
from research.engine.checkpoints import (
    build_model,
    checkpoint_features,
    checkpoint_name,
    checkpoint_temperature,
    load_checkpoint,
)
from research.engine.metrics import classification_metrics
from research.engine.training import train
from research.engine.tta import DEFAULT_MODES, get_views, predict
from research.features.compat import check_compatible
from research.features.hdf5 import content_fingerprint

log = logging.getLogger(__name__)
console = Console(stderr=True)


def train_members(
    base: TrainConfig, seeds: list[int], parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None
) -> list[Path]:
    """One checkpoint per seed; a checkpoint on disk is re-used only if its whole config and its training
    data (a digest of the train and val files, read once, and only when there is a checkpoint) match."""
    data: dict[str, str] | None = None
    paths = []
    for seed in seeds:
        cfg = dataclasses.replace(base, seed=seed, overwrite=True)  # this folder's members follow the config
        path = Path(cfg.out_dir) / checkpoint_name(seed)
        if path.is_file():
            data = data or {
                s: content_fingerprint(split_path(base.features_dir, s, base.multi_scale)) for s in ("train", "val")
            }
        if path.is_file() and _same_run(load_checkpoint(path), cfg, data or {}):
            log.info("member %d: re-using %s", seed, path)
        else:
            console.print(Rule(f"[bold]train {cfg.model} seed {seed}"))
            result = train(cfg, parent_run_id=parent_run_id, extra_tags=extra_tags)
            log.info(
                "member %d: val macro-F1 %.3f, test macro-F1 %.3f",
                seed,
                result["best_val_macro_f1"],
                result.get("test_macro_f1", float("nan")),
            )
        paths.append(path)
    return paths


def fold_members(
    source: Path,
    fold_dir: Path,
    parts: dict[str, np.ndarray],
    train_cfg: TrainConfig,
    seeds: list[int],
    ensemble: str,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[list[Path], Path]:
    """One cross-validation fold's members: the rows of ``parts`` (train, val, test) of ``source`` written as
    feature files under ``fold_dir/features``, one member per seed trained (or re-used) under ``fold_dir/runs``
    in experiment ``cv``; returns their checkpoints and the fold's test file."""
    write_fold(source, fold_dir / "features", parts, train_cfg.multi_scale)
    fold_cfg = dataclasses.replace(
        train_cfg,
        features_dir=str(fold_dir / "features"),
        out_dir=str(fold_dir / "runs"),
        experiment="cv",
        ensemble=ensemble,
    )
    checkpoints = train_members(fold_cfg, seeds, parent_run_id=parent_run_id, extra_tags=tags)
    return checkpoints, split_path(fold_dir / "features", "test", train_cfg.multi_scale)


def _same_run(checkpoint: dict[str, Any], cfg: TrainConfig, data: dict[str, str]) -> bool:
    """The checkpoint was trained with ``cfg`` (``overwrite`` aside) on ``data`` (train/val file digests)."""

    def what_decides(config: dict[str, Any]) -> dict[str, Any]:  # how rows are read changes no number
        return {k: v for k, v in config.items() if k not in READING_ONLY}

    recorded = checkpoint["config"]
    return (
        what_decides({**recorded, "overwrite": cfg.overwrite}) == what_decides(dataclasses.asdict(cfg))
        and checkpoint.get("data") == data
        and "calibration" in checkpoint  # one written before calibration existed is trained again
    )


def score_member(
    checkpoint: Path,
    features: Path,
    tta_modes: list[str] | tuple[str, ...] = DEFAULT_MODES,
    device: torch.device | None = None,
    batch_size: int = 64,
    calibrated: bool = True,
) -> dict[str, Any]:
    """Probabilities, predictions and metrics of one member on one feature file, plain and with TTA
    (``tta_modes=()``: plain only); ``calibrated``: scaled by the member's temperature (``temperature``)."""
    ckpt = load_checkpoint(checkpoint)
    ds = FeatureDataset(features)
    check_compatible(checkpoint_features(ckpt), ds.attrs, str(checkpoint), str(features))
    model = build_model(ckpt)
    device = device or torch.device("cpu")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size)
    out: dict[str, Any] = {"labels": ds.labels.tolist(), "video_ids": ds.video_ids}
    out["temperature"] = checkpoint_temperature(ckpt)
    variants = [("plain", None)] + ([("tta", get_views(tta_modes))] if tta_modes else [])
    temperature = out["temperature"] if calibrated else 1.0  # as everywhere a member's probabilities are used
    for variant, views in variants:
        probs = with_temperature(predict(model, loader, device, views)[0], temperature)
        pred = probs.argmax(1)
        m = classification_metrics(ds.labels, pred, ds.num_classes)
        out[variant] = {
            "probs": probs.tolist(),
            "pred": pred.tolist(),
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
        }
    return out


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
