"""Which backbone: every candidate (and the fusions worth trying) measured on real footage.

    python -m studies.results backbones      # outputs/backbones/backbones.json, then `results write`

One fused extraction (``--backbone mobilenet_v2+efficientnet_lite0+efficientnet_lite1+efficientnet_lite2``,
the settings of ``experiments/real.yaml`` at each backbone's own resolution) serves every
candidate: ``feature_parts.select_parts`` cuts each candidate's columns out as the file its own
extraction writes (a test shows the two equal). Per candidate, on the same videos and groups:

- **probe**: the logistic regression of ``research.models.probe`` (masked mean of the single-scale
  frames, standardised, L2 strength by inner grouped CV on the training folds) under grouped
  5-fold CV, repeated over ``draws`` fold assignments: pooled macro-F1 per draw, mean ± std,
  and the bootstrap 95 % interval of the first draw;
- **recipe**: ``experiments/real.yaml``'s training recipe under the same grouped CV (first draw,
  one member per fold, validation carved from the training folds);
- **transfer**: train on the sources of a random half (per class), test on the other half's
  sources, over ``halves`` draws (mean ± std), for the probe and the recipe;
- **frames/s** of each CNN alone on this machine (batch of 32, channels_last, native size).

Differences smaller than the spread over draws are noise, and the report says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from rich.console import Console
from rich.rule import Rule

from research import tracking
from research.backbones.loading import create_backbone
from research.backbones.table import backbone_parts, get_spec
from research.config import CVConfig, ExtractConfig, TrainConfig, load_config
from research.data.dataset import FeatureDataset, split_path
from research.data.splits import make_folds, video_groups
from research.engine.crossval import cross_validate, run_fold
from research.engine.members import mean_std
from research.engine.metrics import bootstrap_interval, classification_metrics, mean_pm
from research.features.extraction import extract
from research.features.parts import select_parts
from research.files import write_text_atomic
from research.models.probe import fit_probe, pooled_mean

log = logging.getLogger(__name__)
console = Console(width=150)

CANDIDATES = (
    "mobilenet_v2",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2+efficientnet_lite0",
    "mobilenet_v2+efficientnet_lite2",
)


@dataclasses.dataclass
class Pool:
    """One candidate's videos: pooled single-scale means for the probe, labels and source groups."""

    x: np.ndarray
    labels: np.ndarray
    groups: list[str]
    classes: list[str]


def load_pool(folder: Path, cv: CVConfig, extract_cfg: ExtractConfig) -> Pool:
    path = split_path(folder, cv.split, multi_scale=False)
    with h5py.File(path, "r") as f:
        x = pooled_mean(f["features"][()], f["num_frames"][()])
    ds = FeatureDataset(path)
    return Pool(x, ds.labels, video_groups(ds, cv, extract_cfg), ds.classes)


def macro_f1(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> float:
    return float(classification_metrics(labels, preds, num_classes)["macro_f1"])


def probe_predictions(pool: Pool, train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    groups = [pool.groups[i] for i in train]
    probe = fit_probe(pool.x[train], pool.labels[train], groups, len(pool.classes), seed=seed)
    return probe.predict(pool.x[test])


def probe_cv(pool: Pool, folds: int, draws: int, bootstrap: int) -> dict[str, Any]:
    """Grouped k-fold CV of the probe over ``draws`` fold assignments."""
    scores, first = [], None
    for draw in range(draws):
        preds = np.empty_like(pool.labels)
        for k, test in enumerate(make_folds(pool.labels, pool.groups, folds, draw)):
            train = np.setdiff1d(np.arange(len(pool.labels)), test)
            preds[test] = probe_predictions(pool, train, test, seed=draw * 100 + k)
        scores.append(macro_f1(pool.labels, preds, len(pool.classes)))
        first = preds if first is None else first
    return {
        "draws": scores,
        "macro_f1": mean_std(scores),
        "bootstrap_95": bootstrap_interval(pool.labels, first, len(pool.classes), n=bootstrap),
        "pred": first.tolist(),
    }


def source_halves(pool: Pool, halves: int) -> list[np.ndarray]:
    """Test indices of ``halves`` draws: per class, a random half of its sources is held out."""
    by_class: dict[int, list[str]] = {}
    for g, y in zip(pool.groups, pool.labels.tolist(), strict=True):
        by_class.setdefault(y, [])
        if g not in by_class[y]:
            by_class[y].append(g)
    out = []
    for h in range(halves):
        rng = np.random.default_rng(1000 + h)
        held = {g for srcs in by_class.values() for g in rng.permutation(sorted(srcs))[: len(srcs) // 2]}
        out.append(np.array([i for i, g in enumerate(pool.groups) if g in held]))
    return out


def probe_transfer(pool: Pool, tests: list[np.ndarray]) -> dict[str, Any]:
    scores = []
    for h, test in enumerate(tests):
        train = np.setdiff1d(np.arange(len(pool.labels)), test)
        scores.append(macro_f1(pool.labels[test], probe_predictions(pool, train, test, seed=h), len(pool.classes)))
    return {"halves": scores, "macro_f1": mean_std(scores)}


def recipe_transfer(
    folder: Path, pool: Pool, tests: list[np.ndarray], train_cfg: TrainConfig, cv: CVConfig, parent: str
) -> dict[str, Any]:
    source = split_path(folder, cv.split, train_cfg.multi_scale)
    ctx = {"labels": pool.labels, "groups": pool.groups}
    scores = []
    for h, test in enumerate(tests):
        fold = run_fold(h, test, source, train_cfg, cv, ctx, parent)
        preds = np.asarray(fold["members"]["plain"][0]).argmax(1)
        scores.append(macro_f1(pool.labels[np.asarray(fold["test"])], preds, len(pool.classes)))
    return {"halves": scores, "macro_f1": mean_std(scores)}


def cnn_frames_per_s(name: str, batch: int = 32, repeats: int = 3) -> float:
    """Frames/s of one CNN alone at its native size (no decoding): the cost side of the choice."""
    spec = get_spec(name)
    model = create_backbone(name)
    x = torch.randn(batch, 3, spec.image_size, spec.image_size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return batch * repeats / (time.perf_counter() - start)


def compare_backbones(
    fused_dir: Path,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    out_dir: Path,
    candidates: tuple[str, ...] = CANDIDATES,
    draws: int = 3,
    halves: int = 10,
    probe_only: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Every candidate: probe and recipe under grouped CV and over source halves; CNN frames/s.

    ``probe_only`` leaves the recipe out (minutes instead of an hour on a larger collection)."""
    start = time.perf_counter()
    cv = CVConfig(folds=5, seeds=[train_cfg.seed], out_dir=str(out_dir), bootstrap=2000)
    rows: dict[str, Any] = {}
    fps = {name: cnn_frames_per_s(name) for name in {p for c in candidates for p in backbone_parts(c)}}
    for cand in candidates:
        folder = out_dir / "features" / cand.replace("+", "__")
        for multi in (False, True):
            target = split_path(folder, cv.split, multi)
            if not target.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                select_parts(split_path(fused_dir, cv.split, multi), target, cand)
        pool = load_pool(folder, cv, extract_cfg)
        tests = source_halves(pool, halves)
        probe = probe_cv(pool, cv.folds, draws, cv.bootstrap)
        transfer = probe_transfer(pool, tests)
        rows[cand] = {
            "feature_dim": int(pool.x.shape[1]),
            "probe": probe,
            "probe_transfer": transfer,
            "cnn_frames_per_s": 1 / sum(1 / fps[p] for p in backbone_parts(cand)),
        }
        log.info("%s: %s", cand, rows[cand]["probe"]["macro_f1"])
        if probe_only:
            continue
        runs = out_dir / "runs" / cand.replace("+", "__")
        cand_cv = dataclasses.replace(cv, out_dir=str(runs / "cv"))
        cand_extract = dataclasses.replace(extract_cfg, backbone=cand, out_dir=str(folder))
        cand_train = dataclasses.replace(train_cfg, features_dir=str(folder))
        recipe = cross_validate(cand_cv, cand_extract, cand_train, name=f"backbones-{cand}")
        with tracking.start_run("backbones", run_name=f"transfer-{cand}", uri=train_cfg.tracking_uri) as parent:
            halves_cv = dataclasses.replace(cv, out_dir=str(runs / "halves"))
            recipe_halves = recipe_transfer(folder, pool, tests, cand_train, halves_cv, parent.info.run_id)
        rows[cand]["recipe"] = {
            "macro_f1": recipe["rows"]["member"]["pooled"]["macro_f1"],
            "bootstrap_95": recipe["rows"]["member"]["pooled"]["bootstrap_95"],
        }
        rows[cand]["recipe_transfer"] = recipe_halves
    report = {
        "videos": len(pool.labels),
        "sources": len(set(pool.groups)),
        "classes": pool.classes,
        "draws": draws,
        "halves": halves,
        "frames": extract_cfg.frames,
        "rows": rows,
        "seconds": time.perf_counter() - start,
        "date": time.strftime("%Y-%m-%d"),
        **({"command": f" {command}"} if command else {}),  # the flags beyond the default run, for RESULTS.md
    }
    write_text_atomic(out_dir / "backbones.json", json.dumps(report, indent=2))
    return report


def run_study(
    data_dir: str | None,
    out_dir: Path,
    root: Path,
    config: Path | None = None,
    frames: int | None = None,
    candidates: list[str] | None = None,
    probe_only: bool = False,
) -> dict[str, Any]:
    """One fused extraction of every backbone the candidates use, at each one's own size; then the study."""
    config = config or root / "experiments" / "real.yaml"
    overrides = {"image_size": None, **({"data_dir": data_dir} if data_dir else {})}
    extract_cfg = load_config(ExtractConfig, "extract", config, overrides | ({"frames": frames} if frames else {}))
    chosen = tuple(candidates or CANDIDATES)
    every = "+".join(dict.fromkeys(p for c in chosen for p in c.split("+")))
    fused_dir = out_dir / "features" / "fused"
    console.print(Rule(f"[bold]extract {every} once"))
    extract(dataclasses.replace(extract_cfg, backbone=every, out_dir=str(fused_dir), splits=["all"]))
    train_cfg = load_config(TrainConfig, "train", config, {"experiment": "backbones"})
    flags = [*(["--probe-only"] if probe_only else []), *([f"--frames {frames}"] if frames else [])]
    flags += [f"--candidates {' '.join(candidates)}"] if candidates else []
    if flags and out_dir.is_relative_to(root):
        flags.append(f"--out {out_dir.relative_to(root)}")
    report = compare_backbones(
        fused_dir, extract_cfg, train_cfg, out_dir, chosen, probe_only=probe_only, command=" ".join(flags)
    )
    console.print("\n".join(markdown(report)))
    return report


def markdown(report: dict[str, Any]) -> list[str]:
    """The RESULTS.md section: one row per candidate."""
    lines = [
        f"## Backbones on real footage: {report['videos']} clips",
        "",
        f"`python -m studies.results backbones{report.get('command', '')}` ({report['date']}): "
        f"{report['videos']} clips of "
        f"{report['sources']} sources, {report['frames']} frames per clip at each backbone's own resolution, "
        f"grouped 5-fold CV by source. Probe: logistic regression (L-BFGS, L2 by inner grouped CV) on the "
        f"standardised mean of the frame features, pooled macro-F1 as mean ± std over {report['draws']} fold "
        f"draws, with the bootstrap 95 % interval of the first draw. Recipe: `experiments/real.yaml`'s training "
        f"(first draw, one member per fold). Transfer: trained on a random half of each class's sources, "
        f"scored on the other half, {report['halves']} halves (mean ± std). CNN frames/s: the CNNs alone "
        "on this machine's 2 cores (batch 32, channels_last), fused ones summed.",
        "",
        "| backbone | D | probe, grouped CV | 95 % interval | probe, transfer | recipe, grouped CV | 95 % interval "
        "| recipe, transfer | CNN frames/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["rows"].items():
        pci = r["probe"]["bootstrap_95"]
        recipe = ["not run"] * 3
        if "recipe" in r:
            rci = r["recipe"]["bootstrap_95"]
            recipe = [
                f"{r['recipe']['macro_f1']:.3f}",
                f"[{rci['low']:.2f}, {rci['high']:.2f}]",
                mean_pm(r["recipe_transfer"]["macro_f1"]),
            ]
        lines.append(
            f"| {name} | {r['feature_dim']} | {mean_pm(r['probe']['macro_f1'])} "
            f"| [{pci['low']:.2f}, {pci['high']:.2f}] "
            f"| {mean_pm(r['probe_transfer']['macro_f1'])} | {' | '.join(recipe)} | {r['cnn_frames_per_s']:.1f} |"
        )
    rows = report["rows"].values()
    spread = [r["probe"]["macro_f1"]["std"] for r in rows] + [r["probe_transfer"]["macro_f1"]["std"] for r in rows]
    width = [r["probe"]["bootstrap_95"]["high"] - r["probe"]["bootstrap_95"]["low"] for r in rows]
    best = max(report["rows"], key=lambda n: report["rows"][n]["probe"]["macro_f1"]["mean"])
    lines += [
        "",
        f"Noise: the std over fold draws and halves is {min(spread):.2f}-{max(spread):.2f}, and a bootstrap interval "
        f"is {min(width):.2f}-{max(width):.2f} wide; a difference smaller than these is noise. Best probe under "
        f"grouped CV: {best}.",
    ]
    return lines


__all__ = ["CANDIDATES", "compare_backbones", "markdown", "probe_cv", "run_study", "source_halves"]
