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
from research.data.dataset import split_path
from research.engine.crossval import cross_validate, same_cv
from research.engine.evaluation import evaluate
from research.engine.metrics import grouped_bootstrap_difference, grouped_bootstrap_interval, mean_pm
from research.engine.report import interval, results_table
from research.errors import ConfigError, StaleWorkError
from research.features.extraction import extract
from research.features.hdf5 import summary_caption
from research.models import list_models

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_CONFIG = ROOT / "experiments" / "synthetic.yaml"
REAL_CONFIG = ROOT / "experiments" / "real.yaml"
PROBE_CONFIG = ROOT / "experiments" / "real_probe.yaml"
console = Console()


def real_footage(seeds: list[int], out_dir: Path, config: Path = REAL_CONFIG, only: list[str] | None = None) -> None:
    """The linear probe and the recipe, every model (with the recipe's training settings), the recipe single-
    vs multi-scale, all under the same grouped CV; then the drawn set's ensemble on the clips. ``only``: these
    arms (e.g. ``scales/single``), each with ``seeds``: arms cost very differently (seconds to an hour)."""
    extract_cfg = load_config(ExtractConfig, "extract", config)
    recipe = load_config(TrainConfig, "train", config)
    cv = dataclasses.replace(load_config(CVConfig, "cv", config), seeds=seeds)
    probe = load_config(TrainConfig, "train", PROBE_CONFIG)
    arms: dict[str, tuple[TrainConfig, dict]] = {"baseline/probe": (probe, {}), "baseline/recipe": (recipe, {})}
    arms |= {f"models/{name}": (recipe, {"model": name}) for name in list_models()}
    arms |= {f"scales/{kind}": (recipe, {"multi_scale": kind == "multi"}) for kind in ("single", "multi")}
    unknown = sorted(set(only or []) - set(arms))
    if unknown:
        raise ConfigError(f"no arm {unknown[0]!r}: the arms are {sorted(arms)}")
    arms = {arm: what for arm, what in arms.items() if not only or arm in only}
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
    if not only:
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


SEED_MODEL = "models/super_enhanced"  # the seed's SuperEnhancedTemporalModel, at the demo's sizes
ROWS = ("member", "member+tta", "ensemble", "ensemble+tta")


def _load_arm(real: Path, arm: str, row: str) -> dict | None:
    """An arm's summary, if it exists and records per-video predictions for ``row``."""
    path = real / arm / "cv.json"
    report = json.loads(path.read_text()) if path.is_file() else None
    return report if report is not None and "pred" in report["rows"].get(row, {}).get("pooled", {}) else None


def paired(first: dict, row_a: str, second: dict, row_b: str) -> tuple[float, dict[str, float]]:
    """``row_b`` of ``second`` minus ``row_a`` of ``first`` on the same clips: the difference of pooled macro-F1
    and its 95 % interval, whole groups (the CV's, e.g. families) resampled, paired."""
    labels = np.asarray(second["labels"])
    pa, pb = (np.asarray(r["rows"][row]["pooled"]["pred"]) for r, row in ((first, row_a), (second, row_b)))
    ci = grouped_bootstrap_difference(labels, pa, pb, second["video_groups"], len(second["classes"]))
    return second["rows"][row_b]["pooled"]["macro_f1"] - first["rows"][row_a]["pooled"]["macro_f1"], ci


def difference_cell(delta: float, ci: dict[str, float]) -> str:
    noise = " (noise)" if ci["low"] <= 0 <= ci["high"] else ""
    return f"{delta:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]{noise}"


def paired_difference(real: Path, a: str, b: str, row: str = "ensemble+tta") -> list[str]:
    """Arm ``b`` minus arm ``a`` on the same clips, with a paired interval over whole groups."""
    first, second = _load_arm(real, a, row), _load_arm(real, b, row)
    if first is None or second is None or first["video_ids"] != second["video_ids"]:
        return []
    delta, ci = paired(first, row, second, row)
    level = second["config"]["cv"]["group_by"]
    return [f"- {b} − {a} ({row}, {level} groups resampled, paired): {difference_cell(delta, ci)} macro-F1."]


def resolution(ci: dict[str, float]) -> float:
    """What a paired interval can resolve: its half-width."""
    return (ci["high"] - ci["low"]) / 2


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
        + f"; {len(failing)} of {len(per_source)} {recipe.get('config', {}).get('cv', {}).get('group_by', 'source')} "
        "groups mostly misclassified (correct/clips): "
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
        "Move it under History, or run the command again.",
        "",
    ]


def caption(first: dict[str, Any]) -> str:
    level = first["config"]["cv"]["group_by"]
    return (
        f"`benchmarks/real/` ({first['videos']} clips, {first['groups']} {level} groups), "
        f"{summary_caption(first.get('features'))}, {first['folds']} folds grouped by **{level}** (every clip scored "
        f"by models that never saw its {level}) and stratified by class, one member per seed in each fold; "
        "validation carved from the training folds only"
    )


def seed_claims_section(real: Path) -> list[str]:
    """The seed's claims (one model ~93 %, TTA ~95 %, the 4-model ensemble + TTA 95 % F1) under family-level CV."""
    arms = {arm: _load_arm(real, arm, "member") for arm in (SEED_MODEL, "baseline/recipe")}
    arms = {arm: r for arm, r in arms.items() if r is not None}
    if not arms:
        return []
    first = next(iter(arms.values()))
    lines = [
        "## The seed's claims on real footage",
        "",
        f"`python -m studies.results real` ({caption(first)}). The seed reported one model ≈ 0.93, with TTA ≈ 0.95 "
        "and the 4-model ensemble with TTA 0.95 macro-F1, on its own test split. Here: pooled macro-F1 over every "
        "clip; `member` is the mean of the seeds' members; each difference is against `member` on the same clips, "
        "with a paired 95 % interval that resamples whole groups (clips of one family are not independent).",
        "",
        "| arm | member | member+TTA | ensemble | ensemble+TTA | TTA − member | ensemble − member | "
        "ensemble+TTA − member |",
        "|---|---|---|---|---|---|---|---|",
        "| seed's claim (its own test split) | ≈ 0.93 | ≈ 0.95 | | 0.95 | ≈ +0.02 | | ≈ +0.02 |",
    ]
    widths, holds_zero = [], []
    for arm, r in arms.items():
        cells = [f"{r['rows'][row]['pooled']['macro_f1']:.3f}" for row in ROWS]
        for row in ROWS[1:]:
            delta, ci = paired(r, "member", r, row)
            cells.append(difference_cell(delta, ci))
            widths.append(resolution(ci))
            holds_zero.append(ci["low"] <= 0 <= ci["high"])
        name = f"{arm} (the seed's model)" if arm == SEED_MODEL else f"{arm} (the demo's recipe)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    verdict = (
        "Every difference here is noise: TTA and ensembling neither add nor take away anything these intervals can see."
        if all(holds_zero)
        else "A difference whose interval excludes 0 is real at this resolution; the others are noise."
    )
    lines += [
        "",
        f"What these intervals resolve: ±{min(widths):.3f} to ±{max(widths):.3f} (half-widths). {verdict}",
        "",
    ]
    return lines


def ablation_section(real: Path) -> list[str]:
    """Multi- vs single-scale features: the recipe on each, the same folds and seeds, paired per row."""
    single, multi = (_load_arm(real, f"scales/{kind}", "member") for kind in ("single", "multi"))
    if single is None or multi is None or single["video_ids"] != multi["video_ids"]:
        return []
    lines = [
        "## Ablation: multi-scale vs single-scale features",
        "",
        f"`python -m studies.results real`, arms `scales/single` and `scales/multi` ({caption(multi)}): the recipe "
        "(`experiments/real.yaml`) on the single-scale file and on the multi-scale one (the same frames at scales "
        "1.0, 0.85, 0.7, averaged), the same folds and seeds. Pooled macro-F1; the difference is paired over the "
        "same clips, whole groups resampled.",
        "",
        "| row | single-scale | multi-scale | multi − single |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        delta, ci = paired(single, row, multi, row)
        scores = [f"{arm['rows'][row]['pooled']['macro_f1']:.3f}" for arm in (single, multi)]
        lines.append(f"| {row} | " + " | ".join(scores) + f" | {difference_cell(delta, ci)} |")
    return [*lines, ""]


def real_section(real: Path) -> list[str]:
    """Every arm under grouped CV on the real-footage benchmark (``python -m studies.results real``)."""
    runs = sorted(real.glob("*/*/cv.json"))
    if not runs:
        return []
    first = json.loads(runs[0].read_text())
    lines = [
        "## Model families on real footage",
        "",
        f"`python -m studies.results real` ({caption(first)}). Pooled macro-F1 over all clips with a 95 % interval "
        "(whole groups resampled); `member` rows are the mean over the seeds' members. `baseline/probe` is "
        "`experiments/real_probe.yaml` (the textbook linear probe), `baseline/recipe` is `experiments/real.yaml` "
        "(chosen by a study on inner validation only); the `models/` and `scales/` arms change one thing of the "
        "recipe, so an arm equal to the recipe is the same run. The last column is the arm's ensemble+TTA minus "
        "the probe's, paired.",
        "",
        *stale_note(first["videos"]),
        "| arm | seeds | member | member+TTA | ensemble | ensemble+TTA | ensemble+TTA 95 % | folds (ensemble) | "
        "− probe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    probe = _load_arm(real, "baseline/probe", "ensemble+tta")
    for path in runs:
        r = json.loads(path.read_text())
        rows = r["rows"]
        seeds = r.get("config", {}).get("cv", {}).get("seeds", [])
        cells = [str(len(seeds))] + [f"{rows[k]['pooled']['macro_f1']:.3f}" for k in ROWS]
        pooled = rows["ensemble+tta"]["pooled"]
        ci, against = pooled["bootstrap_95"], ""  # summaries without predictions: the interval over clips
        if "pred" in pooled:
            labels, groups = np.asarray(r["labels"]), r["video_groups"]
            ci = grouped_bootstrap_interval(labels, np.asarray(pooled["pred"]), groups, len(r["classes"]))
            if (
                probe is not None
                and path.parent != real / "baseline" / "probe"
                and r["video_ids"] == probe["video_ids"]
            ):
                against = difference_cell(*paired(probe, "ensemble+tta", r, "ensemble+tta"))
        cells += [f"[{ci['low']:.3f}, {ci['high']:.3f}]", mean_pm(rows["ensemble"]["fold_macro_f1"]), against]
        lines.append(f"| {path.parent.relative_to(real)} | " + " | ".join(cells) + " |")
    notes = paired_difference(real, "baseline/probe", "baseline/recipe") + recipe_failures(real)
    lines += ["", *notes] if notes else []
    return [*lines, ""]


def synthetic_note(real: Path) -> list[str]:
    """History: the drawn set's ensemble on the clips the collection held when it was run."""
    demo = real / "synthetic" / "report.json"
    if not demo.is_file():
        return []
    report = json.loads(demo.read_text())
    ens = report["rows"].get("ensemble+tta") or report["rows"]["ensemble"]
    per_class = ", ".join(f"{c} {ens['f1'][c]:.3f}" for c in report["classes"])
    return [
        f"The ensemble (+TTA) trained on the procedurally drawn set (`experiments/synthetic.yaml`) scored macro-F1 "
        f"{ens['macro_f1']:.3f}, 95 % {interval(ens)} on the {report['num_videos']} clips the collection held when "
        f"it was run (F1 {per_class}).",
        "",
    ]
