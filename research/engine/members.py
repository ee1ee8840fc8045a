"""Ensemble members as a library: train one per seed (re-using matching checkpoints), score one.

The demo, the ablation runner, the model comparison and cross-validation all do
these two things; they live here so that no entry point imports another.

``MemberJob`` is the unit the pipeline hands to a launcher (``research.launcher``): train one member on
one fold's files and score it, in the same process and on the same device, on the files the fold holds
out (``run_member_job``). Its result file records a key of everything that determined it (the training
config, the digests of the files it trained on and scored, the TTA views), so a finished job is
re-used and a lost one is run again alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.rule import Rule

from research.config import LaunchConfig, TrainConfig
from research.data.dataset import READING_ONLY, FeatureDataset, split_path
from research.distributed import device_for
from research.engine.calibration import with_temperature
from research.engine.checkpoints import (
    build_model,
    checkpoint_features,
    checkpoint_name,
    checkpoint_temperature,
    load_checkpoint,
)
from research.engine.classifier import file_digest
from research.engine.metrics import classification_metrics
from research.engine.training import train
from research.engine.tta import DEFAULT_MODES, get_views, predict
from research.errors import UserError
from research.features.compat import check_compatible
from research.features.hdf5 import content_fingerprint
from research.files import write_text_atomic
from research.launcher import Job, Where, run_jobs

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


# ------------------------------------------------------------------ a member as a job


@dataclasses.dataclass(frozen=True)
class MemberJob:
    """Train one member (``cfg``: its features_dir holds the fold's train and val files, its seed) and score
    it on ``score`` (name -> feature file), plain and with ``tta_modes``, uncalibrated; ``result`` is the
    JSON the job writes last."""

    cfg: TrainConfig
    score: dict[str, str]
    tta_modes: tuple[str, ...]
    result: str
    parent_run_id: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.cfg.ensemble}-seed{self.cfg.seed}"

    def key(self) -> str:
        """A digest of everything that determines the result: the training config (how rows are read, the
        device and where things are written aside), the content of every file trained on and scored, the views."""
        ignored = READING_ONLY | {"out_dir", "features_dir", "device", "tracking_uri", "log_mlflow", "overwrite"}
        config = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in ignored}
        data = {
            s: content_fingerprint(split_path(self.cfg.features_dir, s, self.cfg.multi_scale)) for s in ("train", "val")
        }
        scored = {name: content_fingerprint(path) for name, path in sorted(self.score.items())}
        what = {"config": config, "data": data, "scored": scored, "tta": list(self.tta_modes)}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_member_job(job: MemberJob, key: str | None = None) -> dict[str, Any] | None:
    """The job's result where it holds ``key`` (default: the job's key now) and its checkpoint is still the
    file it scored; else None."""
    path = Path(job.result)
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    checkpoint = Path(result.get("checkpoint", ""))
    if (
        result.get("key") != (key or job.key())
        or not checkpoint.is_file()
        or file_digest(checkpoint) != result.get("checkpoint_digest")
    ):
        return None
    return result


def run_member_job(job: MemberJob, device: str = "auto") -> Path:
    """Train (or re-use) the member, score it on ``job.score`` on ``device``, write ``job.result`` last."""
    cfg = dataclasses.replace(job.cfg, device=device)
    (checkpoint,) = train_members(cfg, [cfg.seed], parent_run_id=job.parent_run_id, extra_tags=job.tags)
    scores = {}
    where = device_for(device)
    for name, path in job.score.items():
        scored = score_member(checkpoint, Path(path), job.tta_modes, where, calibrated=False)
        scores[name] = {"video_ids": scored["video_ids"], "plain": scored["plain"]["probs"]}
        if job.tta_modes:
            scores[name]["tta"] = scored["tta"]["probs"]
    trained = load_checkpoint(checkpoint)
    result = {
        "key": job.key(),
        "checkpoint": str(checkpoint),
        "checkpoint_digest": file_digest(checkpoint),
        "run_id": trained.get("mlflow_run_id"),
        "val_temperature": checkpoint_temperature(trained),
        "scores": scores,
    }
    write_text_atomic(job.result, json.dumps(result))
    return Path(job.result)


def member_job(job: MemberJob, where: Where) -> None:
    """``run_member_job`` on the device the launcher gives it (in this process: the one ``train.device`` asks for):
    the function of a member's ``research.launcher.Job``."""
    run_member_job(job, where.device_for(job.cfg.device))


def run_member_jobs(jobs: list[MemberJob], launch: LaunchConfig, name: str) -> list[dict[str, Any]]:
    """Every job's result, those not finished run through the launcher (``launch``: in this process, a local pool
    or a Slurm array). A result whose checkpoint has changed since is removed first: that member runs again."""
    keys = [job.key() for job in jobs]  # each fingerprints the files the job reads: once per job
    for job, key in zip(jobs, keys, strict=True):
        if Path(job.result).is_file() and finished_member_job(job, key) is None:
            Path(job.result).unlink()
    listed = [
        Job(_file_name(job.name), key, member_job, job, Path(job.result)) for job, key in zip(jobs, keys, strict=True)
    ]
    run_jobs(listed, launch, _file_name(name))
    results = [finished_member_job(job, key) for job, key in zip(jobs, keys, strict=True)]
    lost = [job.name for job, result in zip(jobs, results, strict=True) if result is None]
    if lost:  # a job's checkpoint replaced while it ran: never a silent mixture
        raise UserError(f"{', '.join(lost)}: the checkpoint changed after the job scored it; run the command again")
    return results  # type: ignore[return-value]


def _file_name(name: str) -> str:
    """A job's name as a launcher takes it (a file name in its log folder)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
