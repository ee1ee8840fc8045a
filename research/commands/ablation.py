"""An ablation as one command: arms (YAML deltas over a baseline) x seeds, compared with statistics.

    python -m research.commands.ablation experiments/ablation_{single,multi}_scale.yaml --seeds 1 2 3  # make ablation

Each arm is a config file (its ``train:`` section is what differs); every arm trains
the same seeds with the same model. Each member is scored on the test split with
and without TTA; the table gives mean ± std over seeds per arm, the difference of
the last arm minus the first, a paired t-test over seeds, and a 95 % bootstrap
interval over test videos. Everything is one MLflow parent run (experiment
``ablation``) with the training runs nested under it, so the UI shows the
comparison; ``outputs/ablation/ablation.json`` holds the numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from scipy.stats import ttest_rel

from research import tracking
from research.cli import banner, console, make_parser, run_cli, setup_logging
from research.config import TrainConfig, load_config
from research.data.dataset import split_path
from research.engine.members import mean_std, score_member, train_members
from research.engine.metrics import bootstrap_difference
from research.engine.tta import DEFAULT_MODES
from research.features.hdf5 import feature_summary
from research.files import write_text_atomic

log = logging.getLogger(__name__)
METRICS = ("accuracy", "macro_f1")


def arm_name(path: Path) -> str:
    return path.stem.removeprefix("ablation_")


def summarise(arms: dict[str, dict[int, dict]], num_classes: int) -> dict[str, Any]:
    summary: dict[str, Any] = {"arms": {}, "difference": {}}
    for arm, members in arms.items():
        summary["arms"][arm] = {
            f"{variant}_{metric}": mean_std([members[s][variant][metric] for s in sorted(members)])
            for variant in ("plain", "tta")
            for metric in METRICS
        }
    items = list(arms.items())
    (a, members_a), (b, members_b) = items[0], items[-1]
    seeds = sorted(set(members_a) & set(members_b))
    labels = np.asarray(members_a[seeds[0]]["labels"])
    for variant in ("plain", "tta"):
        for metric in METRICS:
            xa = [members_a[s][variant][metric] for s in seeds]
            xb = [members_b[s][variant][metric] for s in seeds]
            diff = np.subtract(xb, xa)
            p = float(ttest_rel(xb, xa).pvalue) if len(seeds) > 1 and np.std(diff) > 0 else float("nan")
            entry = {
                "mean": float(diff.mean()),
                "std": float(diff.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "paired_t_p": p,
            }
            if metric == "macro_f1":
                pa = np.asarray([members_a[s][variant]["pred"] for s in seeds])
                pb = np.asarray([members_b[s][variant]["pred"] for s in seeds])
                entry["bootstrap_95"] = bootstrap_difference(labels, pa, pb, num_classes)
            summary["difference"][f"{variant}_{metric}"] = entry
    summary["compared"] = f"{b} - {a}"
    summary["seeds"] = seeds
    return summary


def table(summary: dict[str, Any]) -> Any:
    t = Table(title=f"ablation over seeds {summary['seeds']} (test split; mean ± std)")
    t.add_column("arm", no_wrap=True)
    for col in ("accuracy", "macro-F1", "accuracy +TTA", "macro-F1 +TTA"):
        t.add_column(col, justify="right")
    keys = ("plain_accuracy", "plain_macro_f1", "tta_accuracy", "tta_macro_f1")
    for arm, stats in summary["arms"].items():
        t.add_row(arm, *[f"{stats[k]['mean']:.3f} ± {stats[k]['std']:.3f}" for k in keys])
    diff = summary["difference"]
    t.add_row(
        f"Δ {summary['compared']}", *[f"{diff[k]['mean']:+.3f} ± {diff[k]['std']:.3f}" for k in keys], style="bold"
    )
    t.add_row("paired t-test p", *[f"{diff[k]['paired_t_p']:.3f}" for k in keys])
    ci = {k: diff[k].get("bootstrap_95") for k in keys}
    t.add_row("bootstrap 95% (videos)", *[f"[{c['low']:+.3f}, {c['high']:+.3f}]" if c else "" for c in ci.values()])
    return t


def run_ablation(
    arm_files: list[Path],
    seeds: list[int],
    out_dir: Path,
    tta_modes: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tta_modes = tta_modes or list(DEFAULT_MODES)
    configs = {
        arm_name(p): dataclasses.replace(load_config(TrainConfig, "train", p, overrides), experiment="ablation")
        for p in arm_files
    }
    arms: dict[str, dict[int, dict]] = {}
    names = " vs ".join(configs)
    first = next(iter(configs.values()))
    with tracking.start_run(
        "ablation", run_name=names, uri=first.tracking_uri, tags={"arms": names, "seeds": seeds}
    ) as parent:
        for arm, cfg in configs.items():
            banner(f"arm {arm}")
            cfg = dataclasses.replace(
                cfg, out_dir=str(Path(cfg.out_dir).parent / "ablation" / arm), ensemble=f"ablation-{arm}"
            )
            checkpoints = train_members(cfg, seeds, parent_run_id=parent.info.run_id)
            arms[arm] = {
                s: score_member(c, split_path(cfg.features_dir, "test", cfg.multi_scale), tta_modes)
                for s, c in zip(seeds, checkpoints, strict=True)
            }
        num_classes = 1 + max(max(m["labels"]) for members in arms.values() for m in members.values())
        summary = summarise(arms, num_classes)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "ablation.json"
        write_text_atomic(
            path,
            json.dumps(
                {
                    "summary": summary,
                    "configs": {a: dataclasses.asdict(c) for a, c in configs.items()},
                    "features": feature_summary(split_path(first.features_dir, "test", first.multi_scale)),
                },
                indent=2,
            ),
        )
        for arm, stats in summary["arms"].items():
            tracking.log_metrics(
                {f"{arm}_{k}_mean": v["mean"] for k, v in stats.items()}
                | {f"{arm}_{k}_std": v["std"] for k, v in stats.items()}
            )
        tracking.log_metrics({f"diff_{k}": v["mean"] for k, v in summary["difference"].items()})
        tracking.log_artifact(path)
        summary["mlflow_run_id"] = parent.info.run_id
    return summary


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("arms", nargs="+", type=Path, help="one YAML per arm; the difference is last minus first")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/ablation"))
    args = parser.parse_args()
    setup_logging(args.verbose)
    summary = run_ablation(args.arms, args.seeds, args.out_dir)
    console.print(table(summary))
    console.print(
        f"numbers: {args.out_dir}/ablation.json; MLflow: experiment 'ablation', parent run {summary['mlflow_run_id']}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
