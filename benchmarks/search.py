"""Wall time of a 12-trial Optuna study with pruning vs without, on the demo features.

    python benchmarks/search.py [--trials 12] [--epochs 15]

Both studies use the same space (experiments/search_demo.yaml), sampler seed and
trial budget; early stopping is off (patience = epochs) so that only the pruner
ends trials early, which is the situation a pruner is for. Needs the demo
features (`make demo` first, or this script extracts them). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.cli import setup_logging
from research.config import ExtractConfig, SearchConfig, TrainConfig, load_config
from research.tuning.search import run_search

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--config", type=Path, default=ROOT / "experiments" / "search_demo.yaml")
    args = parser.parse_args()
    setup_logging()
    extract_cfg = load_config(ExtractConfig, "extract", args.config)
    if not (ROOT / extract_cfg.out_dir / "train_features_multiscale.h5").is_file():
        from research.features.extraction import extract
        from videogen.demo import ensure_dataset

        ensure_dataset(ROOT / extract_cfg.data_dir)
        extract(
            dataclasses.replace(
                extract_cfg, data_dir=str(ROOT / extract_cfg.data_dir), out_dir=str(ROOT / extract_cfg.out_dir)
            )
        )
    tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
    base = load_config(TrainConfig, "train", args.config)
    base = dataclasses.replace(
        base,
        features_dir=str(ROOT / base.features_dir),
        out_dir=str(tmp / "runs" / "x"),
        epochs=args.epochs,
        patience=args.epochs,
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
    )
    search = load_config(SearchConfig, "search", args.config)
    results = {}
    for pruner in ("none", "median"):
        cfg = dataclasses.replace(
            search, study=f"bench-{pruner}", trials=args.trials, pruner=pruner, storage=str(tmp / f"{pruner}.journal")
        )
        start = time.perf_counter()
        summary = run_search(cfg, base)
        results[pruner] = (time.perf_counter() - start, summary)
    table = Table(title=f"{args.trials}-trial study, {base.model} on demo features, {args.epochs} epochs max per trial")
    for col in ("pruner", "wall s", "complete", "pruned", "best val macro-F1", "baseline", "time saved"):
        table.add_column(col, justify="right")
    t_none = results["none"][0]
    for pruner, (seconds, s) in results.items():
        table.add_row(
            pruner,
            f"{seconds:.0f}",
            str(s["states"].get("COMPLETE", 0)),
            str(s["states"].get("PRUNED", 0)),
            f"{s.get('best_value', float('nan')):.4f}",
            f"{s.get('baseline_value', float('nan')):.4f}",
            f"{1 - seconds / t_none:.0%}",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
