"""Intervals, probe and split at 10^4-10^6 clips (issue 40): today's code beside the scalable one, one run.

    OMP_NUM_THREADS=1 python benchmarks/scale_stats.py [--sizes 10000 100000 1000000] [--resamples 2000]

Fabricated arrays (random labels, predictions right 70 % of the time, 10 classes; groups one per clip or
Zipf-sized). Each case prints wall seconds and the peak of numpy's allocations (tracemalloc). The old
(in-memory) code runs only where its n x N index matrix stays under ``--old-max`` numbers; beyond, the
table says "(out of memory)" with the bytes it would need. The old balanced split is estimated from one
timed sklearn StratifiedGroupKFold call x the calls it makes (8 fold seeds x (1 + 5 carves)). The probe's C and
fit: the old 7 cold fits on all N (up to ``--old-max-fit`` clips) against ``fit_split`` (the grid warm-started on
at most 50 000 clips, one warm-started fit on all), its fits and passes over the N rows in the case's name."""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

from research.data.splits import balanced_split
from research.engine import calibration, metrics
from research.engine.classifier import pooled_file
from research.models.probe import C_GRID, SplitFit, fit_logistic, fit_split, standardisation, work

CLASSES = 10


def measured(fn: Callable[[], object], trace: bool = True) -> tuple[float, float]:
    """(wall seconds, peak MB of traced allocations) of one call; ``trace=False``: time only (tracemalloc
    slows Python-heavy code such as sklearn's group loop several times), peak 0."""
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else 0.0
    if trace:
        tracemalloc.stop()
    return seconds, peak


def old_split_estimate(labels: np.ndarray, groups: list[str]) -> tuple[float, float]:
    """Today's balanced split at 8 fold seeds: 8 x (1 + 5 carves) = 48 sklearn StratifiedGroupKFold calls,
    estimated as 48 x one timed call (the carves run on 4/5 of the clips: a slight over-estimate)."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    seconds, _ = measured(lambda: list(splitter.split(np.zeros(len(labels)), labels, groups)), trace=False)
    return 48 * seconds, 0.0


def old_bootstrap_interval(labels: np.ndarray, preds: np.ndarray, n: int) -> None:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    f1s = []
    for c in range(CLASSES):
        lab, pre = labels[idx], preds[idx]
        tp = ((pre == c) & (lab == c)).sum(1)
        fp = ((pre == c) & (lab != c)).sum(1)
        fn = ((pre != c) & (lab == c)).sum(1)
        denom = 2 * tp + fp + fn
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    np.percentile(np.mean(f1s, axis=0), [2.5, 97.5])


def old_ece_interval(probs: np.ndarray, labels: np.ndarray, n: int) -> None:
    rng = np.random.default_rng(0)
    np.percentile([calibration.ece(probs[i], labels[i]) for i in rng.integers(0, len(labels), (n, len(labels)))], 2.5)


def old_grouped_draws(n_groups: int, n: int) -> None:  # the per-resample loop that drew the group weights
    rng = np.random.default_rng(0)
    for _ in range(n):
        np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)


def measure_size(n: int, args: argparse.Namespace, add: Callable[..., None]) -> None:
    """Every case at ``n`` clips, old beside new."""
    r = args.resamples
    rng = np.random.default_rng(n)
    labels = rng.integers(0, CLASSES, n)
    preds = np.where(rng.random(n) < 0.7, labels, rng.integers(0, CLASSES, n))
    logits = rng.normal(size=(n, CLASSES)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    fits = n * r <= args.old_max
    too_big = f"(OOM: {n * r * 8 * 3 / 2**30:.0f} GB)"
    old = measured(lambda: old_bootstrap_interval(labels, preds, r)) if fits else too_big
    add("bootstrap_interval", n, old, measured(lambda: metrics.bootstrap_interval(labels, preds, CLASSES, n=r)))
    old = measured(lambda: old_ece_interval(probs, labels, r)) if fits else too_big
    add("ece_interval", n, old, measured(lambda: calibration.ece_interval(probs, labels, n=r)))
    groups = np.arange(n)
    old = measured(lambda: old_grouped_draws(n, r)) if n <= 100_000 else "(~10x the 1e5 row)"
    add(
        "grouped_resamples, 1 group/clip (old: its draws only)",
        n,
        old,
        measured(lambda: metrics.grouped_resamples(labels, [preds], groups, CLASSES, n=r)),
    )
    names = [f"v{i}" for i in range(n)]
    old_split = old_split_estimate(labels, names) if n <= 100_000 else "(~10x the 1e5 row)"
    add(
        "balanced_split, 1 group/clip (old: 48 x 1 sklearn call)",
        n,
        old_split,
        measured(lambda: balanced_split(labels, names, 5, 0.2, 0, 8), trace=False),
    )
    sizes = np.minimum(rng.zipf(2.0, n), n // 40)
    group = np.repeat(np.arange(n), sizes)[:n]
    tailed = [f"g{k}" for k in group]
    skewed = (group * 7919 + (rng.random(n) < 0.2) * rng.integers(0, CLASSES, n)) % CLASSES
    add(
        f"balanced_split, Zipf groups ({len(set(tailed)):,})",
        n,
        old_split_estimate(skewed, tailed) if n <= 100_000 else "(~10x the 1e5 row)",
        measured(lambda: balanced_split(skewed, tailed, 5, 0.2, 0, 8), trace=False),
    )
    # the probe: pooled means streamed from a real HDF5 file, then standardisation + one logits pass
    d, length = args.dim, 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        if n * length * d * 4 <= 2**31:
            with h5py.File(path, "w") as f:
                ds = f.create_dataset("features", (n, length, d), np.float32, chunks=(min(n, 256), length, d))
                for s in range(0, n, 50_000):
                    ds[s : s + 50_000] = rng.random((min(50_000, n - s), length, d), dtype=np.float32)
                f["num_frames"] = rng.integers(1, length + 1, n)
                f["labels"] = labels

            def whole() -> None:
                from research.models.probe import pooled_mean

                with h5py.File(path) as f:
                    pooled_mean(f["features"][()], f["num_frames"][()])

            add(f"pooled_file [N,{length},{d}]", n, measured(whole), measured(lambda: pooled_file(path)))
            add(f"pooled_file [N,{length},{d}], kept (a second call)", n, None, measured(lambda: pooled_file(path)))
    x = rng.random((n, d), dtype=np.float32) + labels[:, None] * 0.01
    if n <= 10_000:
        x64 = x.astype(np.float64)
        add(
            f"fit_logistic C=1 [N,{d}] (old: in memory)",
            n,
            measured(lambda: fit_logistic(x64, labels, CLASSES, 1.0)),
            measured(lambda: fit_logistic(x, labels, CLASSES, 1.0, block_rows=8192)),
        )
    # the probe's C and fit (issue 49): old = every C of the grid fitted from zero on all N; new = ``fit_split``
    x_val = rng.random((max(n // 4, 1), d), dtype=np.float32)
    y_val = rng.integers(0, CLASSES, len(x_val))
    x_val += y_val[:, None] * 0.01
    done: list[SplitFit] = []
    new = measured(lambda: done.append(fit_split(x, labels, x_val, y_val, CLASSES)), trace=False)
    counted = work(done[0].fits, n)
    old = (
        measured(lambda: [fit_logistic(x, labels, CLASSES, c) for c in C_GRID], trace=False)
        if n <= args.old_max_fit
        else f"(7 cold fits on all {n:,})"
    )
    add(
        f"C on val + fit (new: {counted['fits']} fits, {counted['passes_over_rows']:.0f} passes over N)",
        n,
        old,
        new,
    )
    probe = fit_logistic(x[:2000], labels[:2000], CLASSES, 1.0)
    add(
        f"standardisation + logits [N,{d}] (one pass)",
        n,
        measured(lambda: (standardisation(x.astype(np.float64)), probe.logits(x.astype(np.float64)))),
        measured(lambda: (standardisation(x, block_rows=8192), probe.logits(x, block_rows=8192))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--old-max", type=float, default=2.1e8, help="numbers in the old n x N matrix at most")
    parser.add_argument("--dim", type=int, default=256, help="feature width of the fabricated probe inputs")
    parser.add_argument("--old-max-fit", type=int, default=100_000, help="clips up to which the old grid is fitted")
    args = parser.parse_args()
    console = Console(width=150)
    table = Table("case", "clips", "old s", "old peak MB", "new s", "new peak MB", "old/new s")
    rows: list[tuple] = []

    def add(case: str, n: int, old: tuple[float, float] | str | None, new: tuple[float, float]) -> None:
        if isinstance(old, tuple):
            cells = (f"{old[0]:.2f}", f"{old[1]:.0f}", f"{old[0] / max(new[0], 1e-9):.1f}x")
        else:
            cells = (old or "-", "-", "-")
        row = (case, f"{n:,}", cells[0], cells[1], f"{new[0]:.2f}", f"{new[1]:.0f}", cells[2])
        rows.append(row)
        console.print(" | ".join(row), highlight=False)

    for n in args.sizes:
        measure_size(n, args, add)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
