"""An ablation as one command: arms (YAML deltas over a baseline) x seeds, compared with statistics.

    python -m research.ablation experiments/ablation_{single,multi}_scale.yaml --seeds 1 2 3   # = make ablation

Each arm is a config file (its ``train:`` section is what differs); every arm trains
the same seeds with the same model. Each member is scored on the test split with
and without TTA; the table gives mean ± std over seeds per arm, the difference of
the last arm minus the first, a paired t-test over seeds, and a 95 % bootstrap
interval over test videos. Everything is one MLflow parent run (experiment
``ablation``) with the training runs nested under it, so the UI shows the
comparison; ``outputs/ablation/ablation.json`` holds the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from research import tracking
from research.cli import banner, console, run_cli, setup_logging
from research.config import TrainConfig, load_config
from research.data.dataset import FeatureDataset, split_path
from research.metrics import classification_metrics
from research.training import build_model, load_checkpoint

log = logging.getLogger(__name__)
METRICS = ("accuracy", "macro_f1")


def arm_name(path: Path) -> str:
    return path.stem.removeprefix("ablation_")


def score_member(checkpoint: Path, features_dir: str, multi_scale: bool, tta_modes: list[str]) -> dict[str, Any]:
    """Test predictions and metrics of one member, plain and with TTA."""
    from research.evaluation import member_probabilities
    from research.tta import get_views

    ds = FeatureDataset(split_path(features_dir, "test", multi_scale))
    model = build_model(load_checkpoint(checkpoint))
    out: dict[str, Any] = {"labels": ds.labels.tolist()}
    for variant, views in (("plain", None), ("tta", get_views(tta_modes))):
        pred = member_probabilities(model, ds, torch.device("cpu"), 64, views).argmax(1)
        m = classification_metrics(ds.labels, pred, ds.num_classes)
        out[variant] = {"pred": pred.tolist(), **{k: m[k] for k in METRICS}}
    return out


def _macro_f1_batch(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """macro-F1 for many resamples at once: ``labels``/``preds`` are ``[R, N]``."""
    f1s = []
    for c in range(num_classes):
        tp = ((preds == c) & (labels == c)).sum(1)
        fp = ((preds == c) & (labels != c)).sum(1)
        fn = ((preds != c) & (labels == c)).sum(1)
        denom = 2 * tp + fp + fn
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.mean(f1s, axis=0)


def bootstrap_difference(
    labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, num_classes: int, n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """95 % interval of mean-over-seeds macro-F1(b) - macro-F1(a), resampling test videos (paired)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    diffs = np.zeros(n)
    for pa, pb in zip(preds_a, preds_b, strict=True):  # seeds
        diffs += _macro_f1_batch(labels[idx], pb[idx], num_classes) - _macro_f1_batch(labels[idx], pa[idx], num_classes)
    diffs /= len(preds_a)
    return {"low": float(np.percentile(diffs, 2.5)), "high": float(np.percentile(diffs, 97.5))}


def summarise(arms: dict[str, dict[int, dict]], num_classes: int) -> dict[str, Any]:
    from scipy.stats import ttest_rel

    summary: dict[str, Any] = {"arms": {}, "difference": {}}
    for arm, members in arms.items():
        summary["arms"][arm] = {
            f"{variant}_{metric}": {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
            for variant in ("plain", "tta")
            for metric in METRICS
            for v in [[members[s][variant][metric] for s in sorted(members)]]
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
    from rich.table import Table

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
    from research.demo import train_members

    tta_modes = tta_modes or ["identity", "reverse", "stride2", "center"]
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
                s: score_member(c, cfg.features_dir, cfg.multi_scale, tta_modes)
                for s, c in zip(seeds, checkpoints, strict=True)
            }
        num_classes = 1 + max(max(m["labels"]) for members in arms.values() for m in members.values())
        summary = summarise(arms, num_classes)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "ablation.json"
        path.write_text(
            json.dumps(
                {"summary": summary, "configs": {a: dataclasses.asdict(c) for a, c in configs.items()}}, indent=2
            )
        )
        for arm, stats in summary["arms"].items():
            tracking.log_metrics(
                {f"{arm}_{k}_mean": v["mean"] for k, v in stats.items()}
                | {f"{arm}_{k}_std": v["std"] for k, v in stats.items()}
            )
        tracking.log_metrics({f"diff_{k}": v["mean"] for k, v in summary["difference"].items()})
        import mlflow

        mlflow.log_artifact(str(path))
        summary["mlflow_run_id"] = parent.info.run_id
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arms", nargs="+", type=Path, help="one YAML per arm; the difference is last minus first")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/ablation"))
    args = parser.parse_args()
    setup_logging()
    summary = run_ablation(args.arms, args.seeds, args.out_dir)
    console.print(table(summary))
    console.print(
        f"numbers: {args.out_dir}/ablation.json; MLflow: experiment 'ablation', parent run {summary['mlflow_run_id']}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
