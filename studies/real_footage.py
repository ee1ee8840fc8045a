"""Real footage under grouped cross-validation (``python -m studies.results real``), and its RESULTS.md section.

Every arm is one experiment on the same clips and folds (``experiments/real.yaml``'s CV): the textbook
probe (``real_probe.yaml``), the recipe (``real.yaml``), every registered model with the recipe's
training settings, and the recipe on single- vs multi-scale features. A ``cv.json`` is re-used only
for the same configs and the same features; each names the features it was measured on.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.rule import Rule

from research.config import CVConfig, EvalConfig, ExtractConfig, TrainConfig, load_config
from research.data.dataset import FeatureDataset, split_path
from research.data.splits import video_groups
from research.engine.crossval import cross_validate
from research.engine.evaluation import evaluate, interval, results_table
from research.engine.metrics import bootstrap_difference, mean_pm
from research.errors import ConfigError, StaleWorkError
from research.features.extraction import extract
from research.features.hdf5 import content_fingerprint, summary_caption
from research.models import list_models

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_CONFIG = ROOT / "experiments" / "synthetic.yaml"
REAL_CONFIG = ROOT / "experiments" / "real.yaml"
PROBE_CONFIG = ROOT / "experiments" / "real_probe.yaml"
console = Console()


def real_footage(seeds: list[int], out_dir: Path, config: Path = REAL_CONFIG) -> None:
    """The linear probe and the recipe, every model (with the recipe's training settings), the recipe single-
    vs multi-scale, all under the same grouped CV; then the drawn set's ensemble on the clips."""
    extract_cfg = load_config(ExtractConfig, "extract", config)
    recipe = load_config(TrainConfig, "train", config)
    cv = dataclasses.replace(load_config(CVConfig, "cv", config), seeds=seeds)
    probe = load_config(TrainConfig, "train", PROBE_CONFIG)
    arms: dict[str, tuple[TrainConfig, dict]] = {"baseline/probe": (probe, {}), "baseline/recipe": (recipe, {})}
    arms |= {f"models/{name}": (recipe, {"model": name}) for name in list_models()}
    arms |= {f"scales/{kind}": (recipe, {"multi_scale": kind == "multi"}) for kind in ("single", "multi")}
    # Extract (or re-use, or refuse changed inputs) first: a summary is re-used only for the same features.
    extract(dataclasses.replace(extract_cfg, splits=[cv.split]))
    done: dict[str, Path] = {}
    for arm, (base, change) in arms.items():
        console.print(Rule(f"[bold]real footage: {arm}"))
        folder = out_dir / arm
        train_cfg = dataclasses.replace(base, experiment="real", **change)
        key = json.dumps(dataclasses.asdict(train_cfg), sort_keys=True)
        if key in done:  # e.g. models/linear when the recipe is the linear model: one experiment, run once
            console.print(f"{arm} is the same experiment as {done[key].parent.relative_to(out_dir)}")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(done[key], folder / "cv.json")
            continue
        done[key] = folder / "cv.json"
        source = split_path(extract_cfg.out_dir, cv.split, train_cfg.multi_scale)
        # a summary of exactly this experiment (configs, features, sources): re-use it
        if same_cv(folder / "cv.json", train_cfg, cv, source, extract_cfg):
            continue
        cross_validate(dataclasses.replace(cv, out_dir=str(folder)), extract_cfg, train_cfg, arm)
    synthetic_transfer(out_dir / "synthetic", config)


def synthetic_transfer(
    out_dir: Path, config: Path = REAL_CONFIG, synthetic_config: Path = SYNTHETIC_CONFIG
) -> dict[str, Any] | None:
    """The ensemble trained on the drawn set (``experiments/synthetic.yaml``) on every real clip, extracted at
    its settings: what the drawn videos teach that carries over to footage. ``None`` without its members.
    Members trained on the clips themselves (``make demo``'s) would score their own training data: refused."""
    console.print(Rule("[bold]real footage: the drawn set's ensemble"))
    real = load_config(ExtractConfig, "extract", config)
    split = load_config(CVConfig, "cv", config).split
    synthetic = load_config(ExtractConfig, "extract", synthetic_config)
    if Path(synthetic.data_dir).resolve() == Path(real.data_dir).resolve():
        raise ConfigError(
            f"{synthetic_config} trains on {synthetic.data_dir}, the clips the transfer scores: that is not a transfer"
        )
    members_dir = Path(load_config(TrainConfig, "train", synthetic_config).out_dir)
    members = sorted(members_dir.glob("best_ensemble_model_*.pt"))
    if not members:  # before extracting: minutes of work for nothing to score
        console.print(
            f"no members in {members_dir} (python -m research.commands.pipeline --config {synthetic_config}): skipped"
        )
        return None
    at_its_settings = dataclasses.replace(
        synthetic, data_dir=real.data_dir, out_dir=str(Path(real.out_dir) / "synthetic_settings"), splits=[split]
    )
    try:
        extract(at_its_settings)
    except StaleWorkError:  # its settings (or the clips) changed: this folder is ours to recompute
        console.print(f"{at_its_settings.out_dir} was made differently: recomputing it at {synthetic_config.name}'s")
        extract(dataclasses.replace(at_its_settings, overwrite=True))
    features = split_path(at_its_settings.out_dir, split, True)
    report = evaluate(EvalConfig(checkpoints=[str(m) for m in members], features=str(features), out_dir=str(out_dir)))
    console.print(results_table(report))
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


def _load_arm(real: Path, arm: str, row: str) -> dict | None:
    """An arm's summary, if it exists and records per-video predictions for ``row``."""
    path = real / arm / "cv.json"
    report = json.loads(path.read_text()) if path.is_file() else None
    return report if report is not None and "pred" in report["rows"][row]["pooled"] else None


def _load_pair(real: Path, a: str, b: str, row: str) -> tuple[dict, dict] | None:
    first, second = _load_arm(real, a, row), _load_arm(real, b, row)
    if first is None or second is None or first["video_ids"] != second["video_ids"]:
        return None
    return first, second


def paired_difference(real: Path, a: str, b: str, row: str = "ensemble+tta") -> list[str]:
    """Arm ``b`` minus arm ``a`` on the same clips, with a paired bootstrap interval over clips."""
    pair = _load_pair(real, a, b, row)
    if pair is None:
        return []
    first, second = pair
    labels = np.asarray(second["labels"])
    pa, pb = (np.asarray(r["rows"][row]["pooled"]["pred"])[None] for r in pair)
    ci = bootstrap_difference(labels, pa, pb, len(second["classes"]), n=4000)
    delta = second["rows"][row]["pooled"]["macro_f1"] - first["rows"][row]["pooled"]["macro_f1"]
    return [
        f"- {b} − {a} ({row}, paired bootstrap over the same clips): {delta:+.3f} macro-F1, "
        f"95 % interval [{ci['low']:+.3f}, {ci['high']:+.3f}]."
    ]


def recipe_failures(real: Path, row: str = "ensemble+tta") -> list[str]:
    """Where the recipe still fails: its largest confusions and the sources it gets mostly wrong."""
    recipe = _load_arm(real, "baseline/recipe", row)
    if recipe is None:
        return []
    classes, labels = recipe["classes"], np.asarray(recipe["labels"])
    preds = np.asarray(recipe["rows"][row]["pooled"]["pred"])
    confusion = np.asarray(recipe["rows"][row]["pooled"]["confusion"])
    pairs = sorted(
        (
            (int(confusion[i, j]), classes[i], classes[j])
            for i in range(len(classes))
            for j in range(len(classes))
            if i != j
        ),
        reverse=True,
    )
    per_source: dict[str, list] = {}
    for group, y, p in zip(recipe["video_groups"], labels, preds, strict=True):
        per_source.setdefault(group, [classes[y], 0, 0])
        per_source[group][1] += int(y == p)
        per_source[group][2] += 1
    failing = sorted((c / n, g, cls, c, n) for g, (cls, c, n) in per_source.items() if c / n < 0.5)
    return [
        "- where the recipe still fails: largest confusions (true → predicted, clips) "
        + ", ".join(f"{t} → {p} {c}" for c, t, p in pairs[:4] if c)
        + f"; {len(failing)} of {len(per_source)} sources mostly misclassified (correct/clips): "
        + ", ".join(f"{g} ({cls}) {c}/{n}" for _, g, cls, c, n in failing)
        + "."
    ]


def stale_note(measured: int, manifest: Path = ROOT / "benchmarks" / "real" / "manifest.csv") -> list[str]:
    """A line saying so when a section was measured on another version of the collection than today's."""
    with manifest.open(newline="") as fh:
        now = sum(1 for _ in csv.DictReader(fh))
    if now == measured:
        return []
    return [
        f"Measured on the collection as it was ({measured} clips, before it grew to {now}); not re-run since. "
        "The section on source- and family-level grouping above is measured on today's collection.",
        "",
    ]


def real_section(real: Path) -> list[str]:
    """Grouped 5-fold CV on the real-footage benchmark (``python -m studies.results real``)."""
    runs = sorted(real.glob("*/*/cv.json"))
    if not runs:
        return []
    first = json.loads(runs[0].read_text())
    lines = [
        "## Real footage (grouped cross-validation)",
        "",
        f"`python -m studies.results real`: `benchmarks/real/` ({first['videos']} clips, "
        f"{first['groups']} sources), {summary_caption(first.get('features'))}, "
        f"{first['folds']} folds grouped by source and stratified by class; validation carved from the training "
        "folds only. Pooled macro-F1 over all clips with a bootstrap 95 % interval; `member` rows are the mean "
        "over the seeds' members. `baseline/probe` is `experiments/real_probe.yaml` (the textbook linear probe), "
        "`baseline/recipe` is `experiments/real.yaml` (chosen by a study on inner validation only); the `models/` "
        "and `scales/` arms change one thing of the recipe, so an arm equal to the recipe is the same run.",
        "",
        *stale_note(first["videos"]),
        "| arm | member | member+TTA | ensemble | ensemble+TTA | ensemble 95 % | folds (ensemble) | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in runs:
        r = json.loads(path.read_text())
        rows = r["rows"]
        ci = rows["ensemble"]["pooled"]["bootstrap_95"]
        cells = [f"{rows[k]['pooled']['macro_f1']:.3f}" for k in ("member", "member+tta", "ensemble", "ensemble+tta")]
        cells += [
            f"[{ci['low']:.3f}, {ci['high']:.3f}]",
            mean_pm(rows["ensemble"]["fold_macro_f1"]),
            f"{r['seconds']:.0f}",
        ]
        lines.append(f"| {path.parent.relative_to(real)} | " + " | ".join(cells) + " |")
    notes = paired_difference(real, "baseline/probe", "baseline/recipe")
    notes += paired_difference(real, "scales/single", "scales/multi") + recipe_failures(real)
    lines += ["", *notes] if notes else []
    demo = real / "synthetic" / "report.json"
    if demo.is_file():
        report = json.loads(demo.read_text())
        ens = report["rows"].get("ensemble+tta") or report["rows"]["ensemble"]
        per_class = ", ".join(f"{c} {ens['f1'][c]:.3f}" for c in report["classes"])
        lines += [
            "",
            f"Side note, no longer a goal: the ensemble (+TTA) trained on the procedurally drawn set "
            f"(`experiments/synthetic.yaml`) scored macro-F1 {ens['macro_f1']:.3f}, 95 % {interval(ens)} on the "
            f"{report['num_videos']} clips the collection held when it was run (F1 {per_class}).",
        ]
    return [*lines, ""]
