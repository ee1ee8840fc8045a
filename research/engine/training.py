"""``train(cfg) -> metrics``: one temporal model on HDF5 features, one MLflow run.

The recipe: seed everything; open the train/val/test feature files; build the
model from the registry; AdamW with linear warm-up then cosine decay; label-smoothed
cross-entropy with gradient clipping; per epoch, train then validate, log, keep the
best checkpoint by validation macro-F1 and stop after ``patience`` epochs without
improvement; finally reload the best weights, fit their temperature on the validation
split (calibrated probabilities, ``research.engine.calibration``) and score the test split.

Checkpoints (``best_ensemble_model_{seed}.pt``) hold only tensors and plain data,
so ``torch.load(..., weights_only=True)`` reads them and they cannot run code;
they carry everything needed to rebuild the model and to know which features it
expects. ``last_{seed}.pt`` lets an interrupted run resume where it stopped.
Under ``torchrun`` the model trains with DistributedDataParallel; rank 0 alone
logs and saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from research import distributed, tracking
from research.config import TrainConfig, to_flat_dict, to_yaml
from research.data.dataset import READING_ONLY, open_splits, split_loader
from research.distributed import unwrap_model
from research.engine.calibration import calibration_scores, fit_temperature, with_temperature
from research.engine.checkpoints import (
    checkpoint_name,
    load_checkpoint,
    make_checkpoint,
    nonfinite_tensors,
    save_checkpoint,
)
from research.engine.metrics import classification_metrics
from research.engine.tta import predict
from research.errors import TrainingDivergedError, UserError, ensure_dir
from research.features.hdf5 import content_fingerprint
from research.files import folder_lock
from research.models import check_model_args, count_parameters, create_model

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism on CUDA
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# ----------------------------------------------------------------- schedule


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1, then cosine down to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; no decay on biases and normalisation weights (decaying them only hurts)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )


# --------------------------------------------------------------------- loops


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn: nn.Module,
    device: torch.device,
    cfg: TrainConfig,
    epoch: int = 0,
) -> dict[str, float]:
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    amp = cfg.amp and device.type == "cuda"
    for step, (features, num_frames, labels) in enumerate(loader):
        features = features.to(device, non_blocking=True)
        num_frames, labels = num_frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(features, num_frames)
            loss = loss_fn(logits.float(), labels)
        value = loss.item()
        if not math.isfinite(value):  # stop before NaNs reach the weights
            raise _diverged(f"the loss is {value}", epoch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += value * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
    elapsed = time.perf_counter() - start
    bad = nonfinite_tensors(unwrap_model(model).state_dict())
    if bad:  # a finite loss, infinite gradients: the last step broke the weights
        raise _diverged(f"the weights hold NaN or infinity ({', '.join(bad[:3])})", epoch, len(loader) - 1)
    return {
        "train_loss": total_loss / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "samples_per_s": seen / elapsed if elapsed else 0.0,
    }


def _diverged(what: str, epoch: int, step: int) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged at epoch {epoch}, step {step}: {what}; nothing was saved from these weights "
        "(earlier checkpoints are kept). Lower lr, or check the features for huge values"
    )


def score(
    model: nn.Module, loader: DataLoader, device: torch.device, loss_fn: nn.Module, prefix: str, amp: bool
) -> dict[str, float]:
    probs, labels = predict(model, loader, device, amp=amp)
    metrics = classification_metrics(labels, probs.argmax(1), probs.shape[1])
    loss = (
        loss_fn(torch.log(torch.from_numpy(probs).clamp_min(1e-12)), torch.from_numpy(labels)).item()
        if len(labels)
        else 0.0
    )
    return {
        f"{prefix}_loss": loss,
        f"{prefix}_accuracy": metrics["accuracy"],
        f"{prefix}_macro_f1": metrics["macro_f1"],
    }


# ---------------------------------------------------------------------- train


def train(
    cfg: TrainConfig,
    epoch_callback: EpochCallback | None = None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Train one model; returns the best validation and final test metrics.

    ``epoch_callback(epoch, metrics)`` runs after each validation (Optuna reports
    and prunes through it; an exception it raises ends training, and the run is
    marked accordingly).
    """
    check_model_args(cfg.model, cfg.model_args)  # a bad name or argument, or a model that cannot build: before any work
    ctx = distributed.init(distributed.device_for(cfg.device).type)
    out_dir = ensure_dir(cfg.out_dir)
    # One writer per checkpoint: a second run of this seed into out_dir is refused, naming the holder;
    # other seeds (an ensemble's members, trained side by side) share the folder.
    lock = folder_lock(out_dir, f"training of seed {cfg.seed}", f".train_{cfg.seed}.lock")
    with lock if ctx.is_main else contextlib.nullcontext():
        return _train(cfg, ctx, out_dir, epoch_callback, parent_run_id, extra_tags, run_name)


def _train(
    cfg: TrainConfig,
    ctx: distributed.Context,
    out_dir: Path,
    epoch_callback: EpochCallback | None,
    parent_run_id: str | None,
    extra_tags: dict[str, str] | None,
    run_name: str | None,
) -> dict[str, Any]:
    device = distributed.device_for(cfg.device, ctx)
    seed_everything(cfg.seed, cfg.deterministic)
    splits = open_splits(cfg)
    train_ds = splits["train"]
    trained_on = {split: content_fingerprint(ds.path) for split, ds in splits.items() if split != "test"}
    model = create_model(
        cfg.model,
        feature_dim=train_ds.feature_dim,
        num_classes=train_ds.num_classes,
        **cfg.model_args.get(cfg.model, {}),
    )
    # the family's own arguments as built (defaults filled in): one column per argument across runs
    model_params = to_flat_dict(
        {k: v for k, v in model.config["kwargs"].items() if k not in ("feature_dim", "num_classes")}, prefix="model."
    )
    if hasattr(model, "fit_standardizer"):  # e.g. the linear probe: input statistics of the training set
        model.fit_standardizer(train_ds.plain_batches(cfg.batch_size))
    model = model.to(device)
    n_params = count_parameters(model)
    if ctx.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    train_loader = split_loader(train_ds, cfg, True, ctx, device, cfg.seed)
    eval_loaders = {
        name: split_loader(ds, cfg, False, ctx, device, cfg.seed) for name, ds in splits.items() if name != "train"
    }
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    steps_per_epoch = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lr_lambda(cfg.epochs * steps_per_epoch, max(1, int(cfg.warmup_epochs * steps_per_epoch)), cfg.min_lr_ratio),
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    eval_loss = nn.NLLLoss()

    best_path, last_path = out_dir / checkpoint_name(cfg.seed), out_dir / f"last_{cfg.seed}.pt"
    if ctx.is_main and not cfg.overwrite:
        check_replaceable(best_path, cfg)
    start_epoch, best, best_epoch, stale, run_id = 0, -1.0, -1, 0, None
    resume_state = _resume_state(last_path, cfg) if cfg.resume else None
    if resume_state is not None:
        unwrap_model(model).load_state_dict(resume_state["model_state"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        torch.set_rng_state(resume_state["rng_torch"])
        start_epoch, best, best_epoch, stale, run_id = (
            resume_state[k] for k in ("epoch", "best", "best_epoch", "stale", "mlflow_run_id")
        )
        log.info(
            "resuming %s from epoch %d (best val macro-F1 %.4f at epoch %d)", last_path, start_epoch, best, best_epoch
        )

    tags = {
        "model": cfg.model,
        "seed": cfg.seed,
        "feature_file": str(train_ds.path),
        "backbone": train_ds.attrs.get("backbone"),
        "multi_scale": bool(train_ds.attrs.get("multi_scale")),
        "ensemble": cfg.ensemble,
        **(extra_tags or {}),
    }
    history: list[dict[str, float]] = []
    with tracking.start_run(
        cfg.experiment,
        run_name=run_name or f"{cfg.model}-seed{cfg.seed}",
        uri=cfg.tracking_uri,
        tags=tags,
        parent_run_id=parent_run_id,
        enabled=cfg.log_mlflow and ctx.is_main,
        run_id=run_id,
    ) as run:
        run_id = run.info.run_id if run is not None else None
        if run is not None and resume_state is None:
            tracking.log_params(
                to_flat_dict(cfg)
                | {
                    "amp": cfg.amp and device.type == "cuda",  # what ran, not what was asked for
                    "param_count": n_params,
                    "feature_dim": train_ds.feature_dim,
                    "train_videos": len(train_ds),
                }
                | model_params
            )
            tracking.log_text(to_yaml(cfg, "train"), "config.yaml")
        for epoch in range(start_epoch, cfg.epochs):
            # The shuffle depends on (seed, epoch) only, so a resumed run sees the same batches.
            train_loader.generator.manual_seed(cfg.seed * 100_003 + epoch)
            if ctx.distributed:
                train_loader.sampler.set_epoch(epoch)
            metrics = train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn, device, cfg, epoch)
            metrics |= score(model, eval_loaders["val"], device, eval_loss, "val", cfg.amp)
            metrics["lr"] = optimizer.param_groups[0]["lr"]
            history.append(metrics)
            # keep=last: a fixed schedule, the final epoch is the model; val is reported, never chooses
            improved = metrics["val_macro_f1"] > best or cfg.keep == "last"
            if improved:
                best, best_epoch, stale = metrics["val_macro_f1"], epoch, 0
            else:
                stale += 1
            if ctx.is_main:
                if run is not None:
                    tracking.log_metrics(metrics, step=epoch)
                if improved:
                    checkpoint = make_checkpoint(model, cfg, train_ds.attrs, train_ds.path, metrics, epoch, run_id)
                    checkpoint["data"] = trained_on  # what train_members compares before re-using it
                    save_checkpoint(checkpoint, best_path)
                save_checkpoint(
                    {
                        "model_state": unwrap_model(model).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng_torch": torch.get_rng_state(),
                        "epoch": epoch + 1,
                        "best": best,
                        "best_epoch": best_epoch,
                        "stale": stale,
                        "mlflow_run_id": run_id,
                        "config": dataclasses.asdict(cfg),
                    },
                    last_path,
                )
            log.info(
                "epoch %3d  train loss %.4f acc %.3f | val loss %.4f acc %.3f macro-F1 %.3f%s",
                epoch,
                metrics["train_loss"],
                metrics["train_accuracy"],
                metrics["val_loss"],
                metrics["val_accuracy"],
                metrics["val_macro_f1"],
                "  *" if improved else "",
            )
            if epoch_callback is not None:
                epoch_callback(epoch, metrics)
            if stale >= cfg.patience:
                log.info("early stop: no better val macro-F1 for %d epochs", cfg.patience)
                break
        distributed.barrier()
        result = _final_scores(cfg, model, best_path, eval_loaders, device, eval_loss, ctx)
        result |= {
            "best_epoch": best_epoch,
            "epochs_run": len(history) + (start_epoch or 0),
            "param_count": n_params,
            "samples_per_s": float(np.mean([h["samples_per_s"] for h in history])) if history else 0.0,
            "checkpoint": str(best_path),
            "mlflow_run_id": run_id,
        }
        if run is not None:
            tracking.log_metrics(
                {
                    k: v
                    for k, v in result.items()
                    if k.startswith(("test_", "best_val_")) or k in ("best_epoch", "temperature")
                }
            )
            tracking.log_artifact(best_path, "checkpoints")
    if ctx.is_main and last_path.exists():
        last_path.unlink()  # finished: nothing to resume
    return result


def _final_scores(
    cfg: TrainConfig,
    model: nn.Module,
    best_path: Path,
    loaders: dict[str, DataLoader],
    device: torch.device,
    loss_fn: nn.Module,
    ctx: distributed.Context,
) -> dict[str, float]:
    """Reload the best weights, fit their temperature on val (written into the checkpoint), score val and test."""
    best = load_checkpoint(best_path)
    unwrap_model(model).load_state_dict(best["model_state"])
    out = {f"best_{k}": v for k, v in score(model, loaders["val"], device, loss_fn, "val", cfg.amp).items()}
    calibration = calibrate(model, loaders["val"], device, cfg.amp)
    if ctx.is_main:
        save_checkpoint(best | {"calibration": calibration}, best_path)
    out |= {"temperature": calibration["temperature"]}
    out |= {f"best_val_{k}": v for k, v in calibration["before"].items()}
    out |= {f"best_val_{k}_calibrated": v for k, v in calibration["after"].items()}
    if "test" in loaders:
        out |= score(model, loaders["test"], device, loss_fn, "test", cfg.amp)
    return out


def calibrate(model: nn.Module, loader: DataLoader, device: torch.device, amp: bool) -> dict[str, Any]:
    """The model's temperature fitted on the validation videos (``research.engine.calibration``), with
    their ECE, NLL and Brier score before and after: what a checkpoint's ``calibration`` holds."""
    probs, labels = predict(model, loader, device, amp=amp)
    temperature = fit_temperature(probs, labels)
    return {
        "temperature": temperature,
        "fitted_on": "val",
        "videos": len(labels),
        "before": calibration_scores(probs, labels, interval=False),
        "after": calibration_scores(with_temperature(probs, temperature), labels, interval=False),
    }


def check_replaceable(path: Path, cfg: TrainConfig) -> None:
    """Refuse to replace a checkpoint trained with another config (an ensemble member would silently change)."""
    if not path.is_file():
        return
    before = load_checkpoint(path).get("config", {})
    ignored = {"overwrite", "resume", "tracking_uri", "log_mlflow", "experiment", "device"} | READING_ONLY
    changed = {
        k: (before.get(k), v) for k, v in dataclasses.asdict(cfg).items() if k not in ignored and before.get(k) != v
    }
    if changed:
        shown = "; ".join(f"{k}: {a!r} (checkpoint) vs {b!r} (this run)" for k, (a, b) in list(changed.items())[:4])
        raise UserError(
            f"{path} holds a model trained with another config ({shown}). "
            "Pass --overwrite to replace it, or choose another --out-dir."
        )


def _resume_state(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or foreign last.pt: the epochs it held are lost, not the run
        log.warning("%s cannot be read (%s: %s); starting afresh", path, type(err).__name__, err)
        return None
    if not isinstance(state, dict) or state.get("config") != dataclasses.asdict(cfg):
        log.warning("%s was written by a different config; starting afresh", path)
        return None
    return state
