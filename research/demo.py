"""``make demo``: the whole system on the demo dataset, from its videos to the seed's table.

``make demo`` first draws the dataset (``python -m videogen --demo --out data/demo``: the
generator is a tool beside this package, which never imports it); then this

1. extracts single- and multi-scale mobilenet_v2 features from one CNN pass (``features/demo``);
2. trains the four ensemble members, ``train.py --seed 1..4`` with ``experiments/demo.yaml``;
3. evaluates single / TTA / ensemble / ensemble+TTA and prints the table.

Every step re-uses finished work (dataset, feature files, checkpoints trained with the
same config) and says so, so a second run takes seconds. Everything is tracked in
``mlruns/``.

    python -m research.demo [--config experiments/demo.yaml] [--seeds 1 2 3 4]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from research import tracking
from research.cli import banner, console, make_parser, run_cli, setup_logging
from research.config import EvalConfig, ExtractConfig, TrainConfig, load_config
from research.errors import UserError
from research.evaluation import evaluate, results_table
from research.extraction import extract
from research.members import train_members

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"


def run_demo(config: Path = DEMO_CONFIG, seeds: list[int] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """The three stages on the config's ``data_dir``; ``overwrite`` recomputes feature files made differently
    (e.g. by an older version)."""
    seeds = seeds or [1, 2, 3, 4]
    extract_cfg = load_config(ExtractConfig, "extract", config, {"overwrite": True} if overwrite else None)
    train_cfg = load_config(TrainConfig, "train", config)
    eval_cfg = load_config(EvalConfig, "evaluate", config)

    if not Path(extract_cfg.data_dir).is_dir():
        raise UserError(
            f"no videos in {extract_cfg.data_dir}: draw the demo's first "
            f"(python -m videogen --demo --out {extract_cfg.data_dir}; make demo does)"
        )
    banner("1/3 features: one mobilenet_v2 pass, single- and multi-scale files")
    extract(extract_cfg)
    banner(f"2/3 ensemble members: seeds {seeds}")
    checkpoints = train_members(train_cfg, seeds)
    banner("3/3 evaluation: members, TTA, ensemble")
    report = evaluate(dataclasses.replace(eval_cfg, checkpoints=[str(p) for p in checkpoints]))
    console.print(results_table(report))
    console.print(
        "\n[bold]Where to look next[/bold]\n"
        f"  report        {eval_cfg.out_dir}/report.json, {eval_cfg.out_dir}/confusion_matrix.png\n"
        f"  checkpoints   {train_cfg.out_dir}/best_ensemble_model_{{{','.join(map(str, seeds))}}}.pt\n"
        f"  features      {extract_cfg.out_dir}/ (python -m research.commands.features inspect FILE.h5)\n"
        f"  MLflow UI     mlflow ui --backend-store-uri {tracking.resolve_tracking_uri(train_cfg.tracking_uri)}  (http://127.0.0.1:5000)\n"
        "  ablation      make ablation      results page: make results"
    )
    return report


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--overwrite", action="store_true", help="recompute features made with other settings")
    args = parser.parse_args()
    setup_logging(args.verbose)
    start = time.perf_counter()
    run_demo(args.config, args.seeds, args.overwrite)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
