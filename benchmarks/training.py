"""Training throughput of the baseline-size ``super_enhanced`` (64 M parameters): in-memory vs lazy HDF5.

    python benchmarks/training.py [--videos 96] [--steps 6] [--batch-size 32]

Writes a seed-shaped multi-scale feature file (N x 73 x 1280, gzip 4, one chunk per
video), then times the same training steps reading it (a) from memory and (b) lazily,
one chunk per video, through a DataLoader with workers, interleaved, best of N.
Rates are training samples per second. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from research.data.dataset import FeatureDataset
from research.features.writing import write_features
from research.models import count_parameters, create_model


def random_features(path: Path, n: int, t: int = 73, d: int = 1280) -> None:
    """A feature file of the project's layout with random features: training speed does not depend on values."""
    rng = np.random.default_rng(0)
    write_features(
        path,
        rng.standard_normal((n, t, d), np.float32),
        rng.integers(0, 4, n),
        {"multi_scale": True, "category_mapping": json.dumps({"a": 0, "b": 1, "c": 2, "d": 3})},
    )


def samples_per_second(ds: FeatureDataset, steps: int, batch_size: int, workers: int) -> float:
    torch.manual_seed(0)
    model = create_model("super_enhanced", feature_dim=1280, num_classes=4)  # the seed's table, all defaults
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    seen, start = 0, None
    for step, (x, n, y) in enumerate(loader):
        if step == 1:  # the first step pays for allocation and worker start-up
            start, seen = time.perf_counter(), 0
        optimizer.zero_grad()
        loss_fn(model(x, n), y).backward()
        optimizer.step()
        seen += len(y)
        if step == steps:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="bench_train_")) / "train_features_multiscale.h5"
    random_features(path, args.videos)
    params = count_parameters(create_model("super_enhanced", feature_dim=1280, num_classes=4))
    eager, lazy = FeatureDataset(path, in_memory="yes"), FeatureDataset(path, in_memory="no")
    rates: dict[str, list[float]] = {"in-memory": [], "lazy HDF5": []}
    for _ in range(args.repeats):
        rates["in-memory"].append(samples_per_second(eager, args.steps, args.batch_size, 0))
        rates["lazy HDF5"].append(samples_per_second(lazy, args.steps, args.batch_size, args.workers))
    best = {k: max(v) for k, v in rates.items()}
    table = Table(
        title=f"super_enhanced baseline ({params / 1e6:.1f} M params), batch {args.batch_size}, 73 x 1280 features, "
        f"CPU threads {torch.get_num_threads()}"
    )
    for col in ("reading", "samples/s (best)", "all runs", "vs in-memory"):
        table.add_column(col)
    for k, v in best.items():
        table.add_row(k, f"{v:.2f}", ", ".join(f"{r:.2f}" for r in rates[k]), f"{v / best['in-memory'] - 1:+.1%}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
