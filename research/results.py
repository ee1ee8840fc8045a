"""The results page, generated from what the commands wrote (never typed by hand).

    python -m research.results models [--seeds 1 2 3]   # every registered model on the demo features
    python -m research.results real [--seeds 1 2 3 4]   # real footage: models, scales, demo transfer under grouped CV
    python -m research.results transfer                 # only the make demo ensemble on the real clips (a minute)
    python -m research.results backbones                # every backbone and fusion on real footage (backbone_study)
    python -m research.results write                    # RESULTS.md from outputs/*/ JSON files

``make results`` runs models and write after ``make demo`` and ``make ablation``;
``make results-real`` runs the real-footage part (``experiments/real.yaml``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from research.backbone_study import markdown, run_study
from research.checkpoints import build_model, load_checkpoint
from research.cli import banner, console, make_parser, run_cli, setup_logging
from research.config import EvalConfig, ExtractConfig, TrainConfig, load_config
from research.crossval import CVConfig, cross_validate
from research.data.dataset import split_path
from research.data.difficulty import accuracy_by_difficulty, difficulty_bin, difficulty_of
from research.errors import StaleWorkError
from research.evaluation import evaluate, interval, results_table
from research.extraction import extract
from research.features import content_fingerprint
from research.files import write_text_atomic
from research.members import mean_std, score_member, train_members
from research.metrics import bootstrap_difference
from research.models import count_parameters, list_models

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "experiments" / "demo.yaml"
REAL_CONFIG = ROOT / "experiments" / "real.yaml"
PROBE_CONFIG = ROOT / "experiments" / "real_probe.yaml"


def compare_models(seeds: list[int], out_dir: Path, config: Path = DEMO_CONFIG) -> dict[str, Any]:
    """Train every registered model with the demo config and the same seeds; score the test split
    (and, when the data's manifest records difficulty, accuracy per difficulty bin)."""

    base = load_config(TrainConfig, "train", config)
    data_dir = ROOT / load_config(ExtractConfig, "extract", config).data_dir
    results: dict[str, Any] = {}
    for name in list_models():
        banner(f"model {name}")
        cfg = dataclasses.replace(
            base,
            model=name,
            out_dir=str(Path(base.out_dir).parent / "models" / name),
            ensemble=f"models-{name}",
            experiment="models",
        )
        start = time.perf_counter()
        checkpoints = train_members(cfg, seeds)
        scores = [score_member(c, split_path(cfg.features_dir, "test", cfg.multi_scale)) for c in checkpoints]
        difficulty = difficulty_of(scores[0]["video_ids"], data_dir)
        ckpt = load_checkpoint(checkpoints[0])
        params = count_parameters(build_model(ckpt))
        results[name] = {
            "params": params,
            "seconds": time.perf_counter() - start,
            **{
                f"{v}_{m}": mean_std([s[v][m] for s in scores])
                for v in ("plain", "tta")
                for m in ("accuracy", "macro_f1")
            },
        }
        if difficulty is not None:
            per_seed = [accuracy_by_difficulty(s["labels"], s["plain"]["pred"], difficulty) for s in scores]
            results[name]["accuracy_by_difficulty"] = {b: mean_std([p[b] for p in per_seed]) for b in per_seed[0]}
            bins = [difficulty_bin(d) for d in difficulty]
            results[name]["videos_by_difficulty"] = {b: bins.count(b) for b in sorted(set(bins))}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "models.json", json.dumps({"seeds": seeds, "models": results}, indent=2))
    return results


def real_footage(seeds: list[int], out_dir: Path, config: Path = REAL_CONFIG) -> None:
    """The linear probe and the recipe, every model (with the recipe's training settings), the recipe single-
    vs multi-scale, all under the same grouped CV; then the demo ensemble on the clips."""
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
        banner(f"real footage: {arm}")
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
        if _same_cv(folder / "cv.json", train_cfg, cv, source):  # a summary of exactly this experiment: re-use it
            continue
        cross_validate(dataclasses.replace(cv, out_dir=str(folder)), extract_cfg, train_cfg, arm)
    demo_transfer(out_dir / "demo", config)


def demo_transfer(out_dir: Path, config: Path = REAL_CONFIG, demo_config: Path = DEMO_CONFIG) -> dict[str, Any] | None:
    """The ``make demo`` ensemble on every real clip, extracted at the demo's settings: what the demo teaches
    that carries over to real footage. ``None`` when there are no demo members yet."""
    banner("real footage: the demo's ensemble")
    real = load_config(ExtractConfig, "extract", config)
    split = load_config(CVConfig, "cv", config).split
    demo = load_config(ExtractConfig, "extract", demo_config)
    at_demo_settings = dataclasses.replace(
        demo, data_dir=real.data_dir, out_dir=str(Path(real.out_dir) / "demo_settings"), splits=[split]
    )
    try:
        extract(at_demo_settings)
    except StaleWorkError:  # the demo's settings (or the clips) changed: this folder is ours to recompute
        console.print(f"{at_demo_settings.out_dir} was made differently: recomputing it at the demo's settings")
        extract(dataclasses.replace(at_demo_settings, overwrite=True))
    members = sorted(Path(load_config(TrainConfig, "train", demo_config).out_dir).glob("best_ensemble_model_*.pt"))
    if not members:
        console.print("no demo members (run make demo first): skipping the transfer row")
        return None
    features = split_path(at_demo_settings.out_dir, split, True)
    report = evaluate(EvalConfig(checkpoints=[str(m) for m in members], features=str(features), out_dir=str(out_dir)))
    console.print(results_table(report))
    return report


def _same_cv(path: Path, train_cfg: TrainConfig, cv: CVConfig, source: Path) -> bool:
    """``path`` summarises this experiment: the configs it records equal these (output folders aside),
    and it was computed from the features ``source`` holds now."""
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
    return same_configs and report.get("data") == content_fingerprint(source)


def _pm(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def render(outputs: Path = ROOT / "outputs") -> str:
    lines = [
        "# Results",
        "",
        "Generated by `make results` (`python -m research.results write`) from the JSON files the commands",
        "wrote; do not edit by hand. Each section names its data, backbone and command; CPU throughout.",
        "",
    ]
    demo = outputs / "demo" / "report.json"
    if demo.is_file():
        report = json.loads(demo.read_text())
        lines += [
            "## Demo: four members, TTA, ensemble",
            "",
            f"`make demo` (`{report['features']}`: the clips of the test sources): {report['num_videos']} videos, "
            f"TTA views {', '.join(report['tta_modes'])}.",
            "",
            "| row | accuracy | macro-F1 | macro-F1 95 % | " + " | ".join(f"F1 {c}" for c in report["classes"]) + " |",
            "|---|---|---|---|" + "---|" * len(report["classes"]),
        ]
        for name, row in report["rows"].items():
            lines.append(
                f"| {name} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} | {interval(row)} | "
                + " | ".join(f"{row['f1'][c]:.3f}" for c in report["classes"])
                + " |"
            )
        lines += ["", *worst_sources(outputs / "demo" / "predictions.csv"), ""]
    ablation = outputs / "ablation" / "ablation.json"
    if ablation.is_file():
        s = json.loads(ablation.read_text())["summary"]
        keys = ("plain_accuracy", "plain_macro_f1", "tta_accuracy", "tta_macro_f1")
        lines += [
            "## Ablation: multi-scale vs single-scale features",
            "",
            f"`make ablation` (run on the drawn demo set, before `make demo` moved to real footage): same model and "
            f"seeds {s['seeds']}, test split, mean ± std over seeds.",
            "",
            "| arm | accuracy | macro-F1 | accuracy +TTA | macro-F1 +TTA |",
            "|---|---|---|---|---|",
        ]
        for arm, stats in s["arms"].items():
            lines.append(f"| {arm} | " + " | ".join(_pm(stats[k]) for k in keys) + " |")
        d = s["difference"]
        lines.append(
            f"| Δ {s['compared']} | " + " | ".join(f"{d[k]['mean']:+.3f} ± {d[k]['std']:.3f}" for k in keys) + " |"
        )
        lines.append("| paired t-test p | " + " | ".join(f"{d[k]['paired_t_p']:.3f}" for k in keys) + " |")
        lines.append(
            "| bootstrap 95 % (videos) | | "
            + f"[{d['plain_macro_f1']['bootstrap_95']['low']:+.3f}, {d['plain_macro_f1']['bootstrap_95']['high']:+.3f}]"
            + " | | "
            + f"[{d['tta_macro_f1']['bootstrap_95']['low']:+.3f}, {d['tta_macro_f1']['bootstrap_95']['high']:+.3f}] |"
        )
        lines.append("")
    models = outputs / "models" / "models.json"
    if models.is_file():
        m = json.loads(models.read_text())
        lines += [
            "## Model comparison on the same features",
            "",
            f"`python -m research.results models` (run on the drawn demo set, mobilenet_v2): multi-scale features, "
            f"seeds {m['seeds']}, mean ± std.",
            "",
            "| model | parameters | accuracy | macro-F1 | macro-F1 +TTA | train+eval s |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in m["models"].items():
            cells = [
                f"{r['params']:,}",
                _pm(r["plain_accuracy"]),
                _pm(r["plain_macro_f1"]),
                _pm(r["tta_macro_f1"]),
                f"{r['seconds']:.0f}",
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += difficulty_section(m)
    lines += real_section(outputs / "real")
    for backbones in sorted(outputs.glob("backbones*/backbones.json")):
        lines += [*markdown(json.loads(backbones.read_text())), ""]
    lines += [
        "## Benchmarks",
        "",
        "Timings live in [benchmarks/RESULTS.md](benchmarks/RESULTS.md), with the scripts that produce them.",
        "",
    ]
    return "\n".join(lines)


def worst_sources(predictions: Path, shown: int = 6) -> list[str]:
    """The test sources the final row gets most wrong (``predictions.csv``: video ids ``all/class/source/clip``)."""
    if not predictions.is_file():
        return []
    with predictions.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["correct"] in ("0", "1") and r["video_id"].count("/") >= 3]
    by_source: dict[str, list[int]] = {}
    for r in rows:
        by_source.setdefault(r["video_id"].split("/")[2], []).append(int(r["correct"]))
    worst = sorted(by_source.items(), key=lambda kv: (np.mean(kv[1]), -len(kv[1])))[:shown]
    cells = [f"{s} ({sum(c)}/{len(c)})" for s, c in worst]
    return [f"Worst test sources (clips right / clips, `outputs/demo/predictions.csv`): {', '.join(cells)}."]


def difficulty_section(m: dict[str, Any]) -> list[str]:
    """Accuracy per model per difficulty bin: a curve over difficulty, not one number."""
    with_bins = {name: r for name, r in m["models"].items() if "accuracy_by_difficulty" in r}
    if not with_bins:
        return []
    bins = sorted({b for r in with_bins.values() for b in r["accuracy_by_difficulty"]})
    counts = next(iter(with_bins.values()))["videos_by_difficulty"]
    lines = [
        "### Accuracy by difficulty",
        "",
        "Test videos binned by the difficulty the generator drew for them (`manifest.csv`); accuracy,"
        " mean ± std over the seeds.",
        "",
        "| model | " + " | ".join(f"{b} ({counts.get(b, 0)} videos)" for b in bins) + " |",
        "|---|" + "---|" * len(bins),
    ]
    for name, r in with_bins.items():
        acc = r["accuracy_by_difficulty"]
        lines.append(f"| {name} | " + " | ".join(_pm(acc[b]) if b in acc else "" for b in bins) + " |")
    return [*lines, ""]


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


def real_section(real: Path) -> list[str]:
    """Grouped 5-fold CV on the real-footage benchmark (``python -m research.results real``)."""
    runs = sorted(real.glob("*/*/cv.json"))
    if not runs:
        return []
    first = json.loads(runs[0].read_text())
    lines = [
        "## Real footage (grouped cross-validation)",
        "",
        f"`python -m research.results real`: `benchmarks/real/` as it was then ({first['videos']} clips, "
        f"{first['groups']} sources), mobilenet_v2 features, "
        f"{first['folds']} folds grouped by source and stratified by class; validation carved from the training "
        "folds only. Pooled macro-F1 over all clips with a bootstrap 95 % interval; `member` rows are the mean "
        "over the seeds' members. `baseline/probe` is `experiments/real_probe.yaml` (the textbook linear probe), "
        "`baseline/recipe` is `experiments/real.yaml` (chosen by a study on inner validation only); the `models/` "
        "and `scales/` arms change one thing of the recipe, so an arm equal to the recipe is the same run.",
        "",
        "| arm | member | member+TTA | ensemble | ensemble+TTA | ensemble 95 % | folds (ensemble) | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in runs:
        r = json.loads(path.read_text())
        rows = r["rows"]
        ci = rows["ensemble"]["pooled"]["bootstrap_95"]
        cells = [f"{rows[k]['pooled']['macro_f1']:.3f}" for k in ("member", "member+tta", "ensemble", "ensemble+tta")]
        cells += [f"[{ci['low']:.3f}, {ci['high']:.3f}]", _pm(rows["ensemble"]["fold_macro_f1"]), f"{r['seconds']:.0f}"]
        lines.append(f"| {path.parent.relative_to(real)} | " + " | ".join(cells) + " |")
    notes = paired_difference(real, "baseline/probe", "baseline/recipe")
    notes += paired_difference(real, "scales/single", "scales/multi") + recipe_failures(real)
    lines += ["", *notes] if notes else []
    demo = real / "demo" / "report.json"
    if demo.is_file():
        report = json.loads(demo.read_text())
        ens = report["rows"].get("ensemble+tta") or report["rows"]["ensemble"]
        per_class = ", ".join(f"{c} {ens['f1'][c]:.3f}" for c in report["classes"])
        lines += [
            "",
            f"Side note, no longer a goal: the ensemble (+TTA) trained on the procedurally drawn set "
            f"(`experiments/synthetic.yaml`) scored macro-F1 {ens['macro_f1']:.3f}, 95 % {interval(ens)} on all "
            f"{report['num_videos']} clips (F1 {per_class}).",
        ]
    return [*lines, ""]


def main() -> int:
    parser = make_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="train and score every registered model on the demo features")
    models.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    real = sub.add_parser(
        "real", help="real footage under grouped CV: every model, single vs multi-scale, demo transfer"
    )
    real.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    sub.add_parser("transfer", help="only the last step of real: the make demo ensemble on the real clips")
    study = sub.add_parser("backbones", help="every backbone and fusion on real footage: probe, recipe, transfer")
    study.add_argument("--data-dir", default=None, help="the collection (default: experiments/real.yaml's)")
    study.add_argument("--frames", type=int, default=None, help="frames per clip (default: real.yaml's)")
    study.add_argument("--candidates", nargs="+", default=None, help="backbones and a+b fusions to compare")
    study.add_argument("--probe-only", action="store_true", help="leave the recipe out (minutes, not an hour)")
    study.add_argument("--out", type=Path, default=ROOT / "outputs" / "backbones", help="outputs/backbones*/")
    sub.add_parser("write", help="write RESULTS.md")
    args = parser.parse_args()
    setup_logging(args.verbose)
    if args.command == "models":
        compare_models(args.seeds, ROOT / "outputs" / "models")
    elif args.command == "real":
        real_footage(args.seeds, ROOT / "outputs" / "real")
    elif args.command == "backbones":
        run_study(
            args.data_dir,
            args.out.resolve(),
            ROOT,
            frames=args.frames,
            candidates=args.candidates,
            probe_only=args.probe_only,
        )
    elif args.command == "transfer":
        demo_transfer(ROOT / "outputs" / "real" / "demo")
    else:
        write_text_atomic(ROOT / "RESULTS.md", render())
        console.print(f"wrote {ROOT / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
