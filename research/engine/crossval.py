"""Grouped cross-validation: numbers that hold for videos from sources the model never saw.

The library behind ``python -m research.commands.cv --config experiments/real.yaml --folds 5 --group-by source``
(``research/commands/cv.py``) and ``python -m studies.results real``:

1. features are extracted once (the config's ``extract:`` section; a data root with one
   split, e.g. ``all``), re-used by every fold and every later run;
2. every video gets a group: a column of the dataset's ``manifest.csv`` (``--group-by
   source``), its subcategory folder (``subcategory``), or ``regex:PATTERN`` whose first
   group is read from the video id; clips of one group are never on both sides of a fold;
3. folds are stratified by class and deterministic (``StratifiedGroupKFold`` with a fixed
   seed); validation (early stopping, model selection) is carved, grouped again, from the
   training folds only: the test fold is never looked at before it is scored;
4. per fold, one member per seed is trained and scored plain and with TTA, each as one job
   (``research.engine.oof.cross_fit``: the pipeline's one CV, the same folds, jobs and launcher; each
   fold also holds out sources and clips of its training families, ``cv.held_out_sources`` and
   ``cv.held_out_clips``); the ensemble averages the members' probabilities;
5. the report gives per-fold and pooled macro-F1 / accuracy / per-class F1, mean ± std
   over folds and a bootstrap 95 % interval over videos (pooled), as ``cv.json`` and a
   table, and one MLflow parent run (experiment ``cv``) with the training runs nested.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from rich.console import Console
from rich.table import Table

from research import tracking
from research.config import CVConfig, ExtractConfig, LaunchConfig, TrainConfig
from research.data.dataset import FeatureDataset, split_path
from research.data.folds import Fold
from research.data.splits import carve_validation, make_folds, video_groups, write_fold
from research.engine.calibration import calibration_scores, with_temperature
from research.engine.classifier import pooled_file
from research.engine.evaluation import ensemble_probabilities
from research.engine.members import mean_std, run_member_jobs, score_member
from research.engine.metrics import bootstrap_interval, classification_metrics
from research.engine.oof import OutOfFold, cross_fit, member_jobs, seed_row
from research.engine.training import train
from research.engine.tta import DEFAULT_MODES
from research.features.extraction import extract
from research.features.hdf5 import content_fingerprint, feature_summary
from research.files import shown_path, write_text_atomic
from research.models.probe import fit_probe

log = logging.getLogger(__name__)
console = Console()
ROWS = ("member", "member+tta", "ensemble", "ensemble+tta")


# ----------------------------------------------------------------------- folds


def prepare(
    cfg: CVConfig, extract_cfg: ExtractConfig, train_cfg: TrainConfig
) -> tuple[Path, FeatureDataset, list[str], list[np.ndarray]]:
    """Extract once (re-used when nothing changed); returns (feature file, dataset, groups, test folds)."""
    extract(dataclasses.replace(extract_cfg, splits=[cfg.split]))
    source = split_path(extract_cfg.out_dir, cfg.split, train_cfg.multi_scale)
    ds = FeatureDataset(source)
    groups = video_groups(ds, cfg, extract_cfg)
    return source, ds, groups, make_folds(ds.labels, groups, cfg.folds, cfg.fold_seed)


def pooled_scores(labels: np.ndarray, probs: np.ndarray, classes: list[str], bootstrap: int) -> dict[str, Any]:
    """A row pooled over every video: scores, confusion, per-video predictions, bootstrap interval, and how
    calibrated its probabilities are (ECE, NLL, Brier: ``research.engine.calibration``)."""
    preds = probs.argmax(1)
    return row_scores(labels, probs, classes) | {
        "calibration": calibration_scores(probs, labels, interval=False),
        "confusion": classification_metrics(labels, preds, len(classes))["confusion"],
        "pred": preds.tolist(),  # per video (the report's video order): paired comparisons between arms
        "bootstrap_95": bootstrap_interval(labels, preds, len(classes), n=bootstrap),
    }


def row_scores(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    m = classification_metrics(labels, probs.argmax(1), len(classes))
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "f1": dict(zip(classes, m["f1"], strict=True))}


def run_fold(
    k: int,
    test: np.ndarray,
    source: Path,
    train_cfg: TrainConfig,
    cfg: CVConfig,
    ctx: dict[str, Any],
    parent: str,
    launch: LaunchConfig | None = None,
) -> dict[str, Any]:
    """Train one fold's members on every clip but ``test`` (validation carved by group) and score them on ``test``
    (one job per seed: ``research.engine.oof.run_jobs``); returns each member's probabilities, at its own
    validation temperature, plain and with TTA."""
    labels, groups = ctx["labels"], ctx["groups"]
    rest = np.setdiff1d(np.arange(len(labels)), test)
    fit, val = carve_validation(rest, labels, groups, cfg.val_fraction, cfg.fold_seed + k)
    assert not set(groups[i] for i in test) & set(groups[i] for i in rest), "a group on both sides of a fold"
    fold = Fold(np.sort(test), np.empty(0, np.int64), np.empty(0, np.int64), np.sort(fit), np.sort(val))
    (jobs,) = member_jobs(source, [fold], Path(cfg.out_dir), train_cfg, list(cfg.seeds), DEFAULT_MODES, parent, k)
    results = run_member_jobs(jobs, launch or LaunchConfig(), f"{train_cfg.ensemble}-fold{k}")
    members = {}
    for variant in ("plain", "tta"):
        members[variant] = [
            with_temperature(np.asarray(r["scores"]["test"][variant]), r["val_temperature"]) for r in results
        ]
    return {"test": sorted(test.tolist()), "members": members}


class InnerValidation:
    """A study's trial under grouped CV: trained on every outer fold's training part, scored on its
    validation carve (the same carve the final CV stops on). The test folds are never written for
    it, so no choice the study makes can have seen them. Trials train a fixed schedule (``keep=last``):
    a carve that also picked the epoch would score its own choice (on ~14 clips per fold that inflated
    the baseline's pooled score from ~0.65 to 0.91), so the carve is only ever scored.

    ``python -m research.commands.cv --search`` passes it to ``search.run_search(..., fit=...)``. The value is
    the pooled macro-F1 over all validation carves (about every training video once), reported
    after each fold so the pruner can stop a weak trial early.
    """

    def __init__(self, cfg: CVConfig, extract_cfg: ExtractConfig, train_cfg: TrainConfig) -> None:
        _, ds, groups, folds = prepare(cfg, extract_cfg, train_cfg)
        self.seed = cfg.seeds[0]  # one member per fold: what ensembling adds is measured by the final CV
        self.num_classes = ds.num_classes
        self.fold_dirs: list[Path] = []
        for k, test in enumerate(folds):
            rest = np.setdiff1d(np.arange(len(ds)), test)
            fit, val = carve_validation(rest, ds.labels, groups, cfg.val_fraction, cfg.fold_seed + k)
            fold_dir = Path(cfg.out_dir) / "inner" / f"fold_{k}"
            for multi_scale in (True, False):  # a study may choose between them
                source = split_path(extract_cfg.out_dir, cfg.split, multi_scale)
                write_fold(source, fold_dir, {"train": fit, "val": val}, multi_scale)
            self.fold_dirs.append(fold_dir)

    def __call__(
        self, cfg: TrainConfig, trial: optuna.Trial, parent_run_id: str, tags: dict[str, Any], name: str
    ) -> float:
        labels: list[int] = []
        preds: list[int] = []
        value = 0.0
        for k, fold_dir in enumerate(self.fold_dirs):
            fold_cfg = dataclasses.replace(
                cfg, features_dir=str(fold_dir), out_dir=f"{cfg.out_dir}/fold_{k}", seed=self.seed, keep="last"
            )
            result = train(
                fold_cfg, parent_run_id=parent_run_id, extra_tags=tags | {"fold": k}, run_name=f"{name}-fold{k}"
            )
            scored = score_member(Path(result["checkpoint"]), split_path(fold_dir, "val", cfg.multi_scale), ())
            labels += scored["labels"]
            preds += scored["plain"]["pred"]
            value = classification_metrics(np.asarray(labels), np.asarray(preds), self.num_classes)["macro_f1"]
            trial.report(value, k)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k} (pooled val macro-F1 {value:.4f})")
        return float(value)


def summarise(oof: OutOfFold, classes: list[str], cfg: CVConfig) -> dict[str, Any]:
    """Per fold and pooled scores of the held-out families for members, members+TTA, the ensemble and
    ensemble+TTA; each member at its own validation temperature (as studies have always read them)."""
    held = oof.kinds["family"]
    labels = oof.labels
    per_fold: dict[str, list[dict]] = {r: [] for r in ROWS}
    pooled_probs = {r: np.zeros((len(labels), len(classes))) for r in ("ensemble", "ensemble+tta")}
    member_preds = {row: np.zeros((len(oof.seeds), len(labels)), int) for row in ("member", "member+tta")}
    for k in range(len(oof.folds)):
        mine = held.fold == k
        idx, y = held.rows[mine], labels[held.rows[mine]]
        for tta, row, ens in ((False, "member", "ensemble"), (True, "member+tta", "ensemble+tta")):
            probs = [
                with_temperature(held.raw[seed_row(seed, tta)][mine], oof.val_temperatures[k][s])
                for s, seed in enumerate(oof.seeds)
            ]
            for s, p in enumerate(probs):
                member_preds[row][s, idx] = p.argmax(1)
            per_fold[row].append(
                {"macro_f1": float(np.mean([row_scores(y, p, classes)["macro_f1"] for p in probs]))}
                | {"accuracy": float(np.mean([row_scores(y, p, classes)["accuracy"] for p in probs]))}
            )
            avg = ensemble_probabilities(probs)
            per_fold[ens].append(row_scores(y, avg, classes))
            pooled_probs[ens][idx] = avg
    out: dict[str, Any] = {}
    for row in ROWS:
        if row.startswith("member"):
            preds = member_preds[row]
            pooled = [classification_metrics(labels, p, len(classes)) for p in preds]
            pooled_row = {
                "macro_f1": float(np.mean([m["macro_f1"] for m in pooled])),
                "accuracy": float(np.mean([m["accuracy"] for m in pooled])),
                "member_macro_f1": [m["macro_f1"] for m in pooled],
                "f1": dict(zip(classes, np.mean([m["f1"] for m in pooled], axis=0).tolist(), strict=True)),
                "bootstrap_95": bootstrap_interval(labels, preds, len(classes), n=cfg.bootstrap),
                "pred": preds.tolist(),  # [seed][video]: paired comparisons with the ensemble and TTA rows
            }
        else:
            pooled_row = pooled_scores(labels, pooled_probs[row], classes, cfg.bootstrap)
        out[row] = {
            "pooled": pooled_row,
            "folds": per_fold[row],
            "fold_macro_f1": mean_std([f["macro_f1"] for f in per_fold[row]]),
        }
    return out


def table(report: dict[str, Any]) -> Table:
    t = Table(title=f"{report['name']}: grouped {report['folds']}-fold CV, {report['videos']} videos (pooled)")
    for col in ("row", "macro-F1", "95 % interval", "accuracy", "folds: mean ± std", *report["classes"]):
        t.add_column(col, justify="left" if col == "row" else "right")
    for row, r in report["rows"].items():
        p, ci, fm = r["pooled"], r["pooled"]["bootstrap_95"], r["fold_macro_f1"]
        t.add_row(
            row,
            f"{p['macro_f1']:.3f}",
            f"[{ci['low']:.3f}, {ci['high']:.3f}]",
            f"{p['accuracy']:.3f}",
            f"{fm['mean']:.3f} ± {fm['std']:.3f}",
            *[f"{p['f1'][c]:.3f}" for c in report["classes"]],
            style="bold" if row.startswith("ensemble") else None,
        )
    return t


def report_head(name: str, cfg: CVConfig, ds: FeatureDataset, groups: list[str], model: str) -> dict[str, Any]:
    """What every cv.json starts with: the run's name, folds, videos, groups, classes, model and the
    features' settings (backbone, frames, size, scales: what a table of it must name)."""
    return {
        "name": name,
        "folds": cfg.folds,
        "videos": len(ds),
        "groups": len(set(groups)),
        "classes": ds.classes,
        "model": model,
        "features": feature_summary(ds.path),
    }


def probe_cross_validate(
    cfg: CVConfig, extract_cfg: ExtractConfig, train_cfg: TrainConfig, name: str = "probe"
) -> dict[str, Any]:
    """The logistic-regression probe (``research.models.probe``) on the same folds: its L2 strength chosen by an
    inner grouped CV of each fold's training videos; the masked mean of the single-scale frames."""
    start = time.perf_counter()
    source, ds, groups, folds = prepare(cfg, extract_cfg, dataclasses.replace(train_cfg, multi_scale=False))
    classes = ds.classes
    x, _ = pooled_file(source)  # each clip's mean, computed once per file content and kept beside it
    probs, per_fold, chosen = np.zeros((len(ds), len(classes))), [], []
    for k, test in enumerate(folds):
        rest = np.setdiff1d(np.arange(len(ds)), test)
        probe = fit_probe(x[rest], ds.labels[rest], [groups[i] for i in rest], len(classes), seed=cfg.fold_seed + k)
        probs[test] = probe.predict_proba(x[test])
        per_fold.append(row_scores(ds.labels[test], probs[test], classes))
        chosen.append(probe.c)
    pooled = pooled_scores(ds.labels, probs, classes, cfg.bootstrap)
    row = {"pooled": pooled, "folds": per_fold, "fold_macro_f1": mean_std([f["macro_f1"] for f in per_fold])}
    report = {
        **report_head(name, cfg, ds, groups, "logistic_probe"),
        "c_per_fold": chosen,
        "video_ids": list(ds.video_ids),  # as cross_validate's: paired comparisons with the trained arms
        "video_groups": groups,
        "labels": ds.labels.tolist(),
        "rows": {"probe": row},
        "seconds": time.perf_counter() - start,
    }
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(cfg.out_dir) / "cv.json", json.dumps(report, indent=2))
    return report


def same_cv(path: Path, train_cfg: TrainConfig, cv: CVConfig, source: Path, extract_cfg: ExtractConfig) -> bool:
    """``path`` summarises this experiment: the configs it records equal these (output folders aside),
    it was computed from the features ``source`` holds now and with the groups (sources) the manifest
    gives them now."""
    if not path.is_file():
        return False
    report = json.loads(path.read_text())
    recorded = report.get("config", {})
    current = json.loads(json.dumps({"train": dataclasses.asdict(train_cfg), "cv": dataclasses.asdict(cv)}))
    same_configs = all(
        {k: v for k, v in recorded.get(part, {}).items() if k != "out_dir"}
        == {k: v for k, v in current[part].items() if k != "out_dir"}
        for part in ("train", "cv")
    )
    fresh = report.get("calibrated") and "features" in report  # summaries older than either are not re-used
    if not (same_configs and fresh and report.get("data") == content_fingerprint(source)):
        return False
    return report.get("video_groups") == video_groups(FeatureDataset(source, in_memory="no"), cv, extract_cfg)


def cross_validate(
    cfg: CVConfig,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    name: str = "cv",
    launch: LaunchConfig | None = None,
) -> dict[str, Any]:
    """Extract once, run the one CV (``research.engine.oof.cross_fit``), pool; returns (and writes) the report."""
    start = time.perf_counter()
    extract(dataclasses.replace(extract_cfg, splits=[cfg.split]))
    source = split_path(extract_cfg.out_dir, cfg.split, train_cfg.multi_scale)
    oof = cross_fit(cfg, extract_cfg, train_cfg, DEFAULT_MODES, launch or LaunchConfig(), name, probe=False)
    ds = FeatureDataset(source, in_memory="no")
    report = {
        **report_head(name, cfg, ds, oof.groups, train_cfg.model),
        "fold_groups": oof.record["fold_groups"],
        "held_out": oof.record["held_out"],
        "video_ids": oof.video_ids,
        "video_groups": oof.groups,
        "labels": oof.labels.tolist(),
        "rows": summarise(oof, oof.classes, cfg),
        "seconds": time.perf_counter() - start,
        # what determined these numbers: studies.results re-uses a summary only for the same configs
        "config": {
            "train": dataclasses.asdict(train_cfg),
            "cv": dataclasses.asdict(cfg) | {"out_dir": shown_path(cfg.out_dir)},  # no checkout's path
        },
        "data": content_fingerprint(source),  # ... and the same features
        "calibrated": True,  # members scored at their temperature: a summary from before is not re-used
    }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "cv.json", json.dumps(report, indent=2))
    if oof.mlflow_run_id:
        for row, r in report["rows"].items():
            key = row.replace("+", "_")
            metrics = {f"{key}_macro_f1": r["pooled"]["macro_f1"], f"{key}_accuracy": r["pooled"]["accuracy"]}
            tracking.log_to_run(oof.mlflow_run_id, metrics, uri=train_cfg.tracking_uri)
    return report
