"""Source- vs family-level grouped CV (``python -m studies.results grouping``), and its RESULTS.md section.

Grouping by source keeps the clips of one screensaver hack, one program or one camera file on one
side of a fold, but look-alike sources of one family (every xscreensaver hack, every program in an
xterm, the GNOME games) still straddle folds: the model is scored on a kind of video it has seen.
Grouping by family (the manifest's ``family`` column) scores every clip with models that never saw
its kind of video: the estimate of transfer to new kinds of footage.

Three arms on the same clips, each at both levels: the logistic-regression probe
(``experiments/real_probe.yaml``'s features; over several fold draws, since it takes seconds),
the recipe (``experiments/real.yaml``) and the demo's model (``experiments/demo.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.rule import Rule

from research.config import CVConfig, ExtractConfig, TrainConfig, load_config
from research.data.dataset import split_path
from research.data.splits import grouping_column
from research.engine.crossval import cross_validate, probe_cross_validate, same_cv
from research.engine.metrics import mean_pm
from research.errors import UserError
from research.features.extraction import extract
from research.features.hdf5 import summary_caption
from studies.real_footage import PROBE_CONFIG, REAL_CONFIG, ROOT

console = Console()
DEMO_CONFIG = ROOT / "experiments" / "demo.yaml"
LEVELS = {"source": "group", "family": "family"}  # level -> the annotation column (real.yaml: group is the source)
PROBE_DRAWS = (0, 1, 2)  # fold seeds of the probe's CV: the spread of one estimate over fold assignments


def grouping_study(out_dir: Path, seeds: list[int], config: Path = REAL_CONFIG, probe_only: bool = False) -> None:
    """Every arm at both levels (``probe_only``: the probe's, seconds); a trained arm's ``cv.json`` is re-used
    for the same configs and features."""
    extract_cfg = load_config(ExtractConfig, "extract", config)
    cv = dataclasses.replace(load_config(CVConfig, "cv", config), seeds=seeds)
    probe = load_config(TrainConfig, "train", PROBE_CONFIG)
    trained = {
        "recipe": load_config(TrainConfig, "train", config),
        "demo model": load_config(TrainConfig, "train", DEMO_CONFIG),
    }
    for column in LEVELS.values():  # a collection without a family column would compare source with source
        if grouping_column(dataclasses.replace(cv, group_by=column), extract_cfg) != column:
            raise UserError(f"the grouping study needs a {column!r} column in {extract_cfg.annotations}")
    extract(dataclasses.replace(extract_cfg, splits=[cv.split]))
    for level, column in LEVELS.items():
        for draw in PROBE_DRAWS:
            console.print(Rule(f"[bold]grouping by {level}: probe, fold draw {draw}"))
            folder = out_dir / level / "probe" / f"draw_{draw}"
            probe_cross_validate(
                dataclasses.replace(cv, group_by=column, fold_seed=draw, out_dir=str(folder)), extract_cfg, probe
            )
        for arm, train_cfg in {} if probe_only else trained.items():
            console.print(Rule(f"[bold]grouping by {level}: {arm}"))
            arm_cv = dataclasses.replace(cv, group_by=column, out_dir=str(out_dir / level / arm.replace(" ", "_")))
            source = split_path(extract_cfg.out_dir, cv.split, train_cfg.multi_scale)
            if not same_cv(Path(arm_cv.out_dir) / "cv.json", train_cfg, arm_cv, source, extract_cfg):
                cross_validate(arm_cv, extract_cfg, train_cfg, f"{arm} by {level}")


def _arm(level_dir: Path, arm: str) -> dict[str, Any] | None:
    """An arm's figures at one level: pooled macro-F1 (mean ± std over the probe's fold draws) and its interval."""
    if arm == "probe":
        runs = [json.loads(p.read_text()) for p in sorted((level_dir / "probe").glob("draw_*/cv.json"))]
        if not runs:
            return None
        scores = [r["rows"]["probe"]["pooled"]["macro_f1"] for r in runs]
        std = float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0
        head = runs[0]
        return {
            "score": mean_pm({"mean": float(np.mean(scores)), "std": std}) + f" ({len(runs)} draws)",
            "mean": float(np.mean(scores)),
            "ci": head["rows"]["probe"]["pooled"]["bootstrap_95"],
            "head": head,
        }
    path = level_dir / arm.replace(" ", "_") / "cv.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    row = report["rows"]["ensemble+tta" if len(report["config"]["cv"]["seeds"]) > 1 else "member+tta"]["pooled"]
    return {"score": f"{row['macro_f1']:.3f}", "mean": row["macro_f1"], "ci": row["bootstrap_95"], "head": report}


def grouping_section(out_dir: Path) -> list[str]:
    """The RESULTS.md section: each arm at both levels, side by side."""
    arms = ("probe", "recipe", "demo model")
    found = {level: {arm: _arm(out_dir / level, arm) for arm in arms} for level in LEVELS}
    if not any(found["source"].values()) or not any(found["family"].values()):
        return []
    head = next(a for a in found["family"].values() if a)["head"]
    groups = {level: next(a for a in found[level].values() if a)["head"]["groups"] for level in LEVELS}
    lines = [
        "## Transfer to unseen sources and to unseen kinds of video",
        "",
        f"`python -m studies.results grouping`: `benchmarks/real/` ({head['videos']} clips), "
        f"{summary_caption(head.get('features'))}, {head['folds']} grouped folds stratified by class, grouped "
        f"by **source** ({groups['source']} groups) or by **family** ({groups['family']} groups: every "
        "xscreensaver hack one family, every program in an xterm one, the GNOME games one, otherwise the "
        "package). Pooled macro-F1 with its bootstrap 95 % interval over clips; the probe's figure is the mean "
        "± std over three fold draws (interval: the first draw). The recipe and the demo's model are scored "
        "as their ensemble+TTA (one member+TTA where one seed was run).",
        "",
        "**Family-level CV is the estimate of how the classifier does on a kind of video it has never seen**; "
        "source-level CV lets look-alike sources of one family straddle the folds, and reads better than "
        "transfer is.",
        "",
        "| arm | by source | 95 % | by family | 95 % | family − source |",
        "|---|---|---|---|---|---|",
    ]
    for arm in arms:
        s, f = found["source"][arm], found["family"][arm]
        if not s or not f:
            continue
        lines.append(
            f"| {arm} | {s['score']} | [{s['ci']['low']:.3f}, {s['ci']['high']:.3f}] | {f['score']} | "
            f"[{f['ci']['low']:.3f}, {f['ci']['high']:.3f}] | {f['mean'] - s['mean']:+.3f} |"
        )
    return [*lines, ""]
