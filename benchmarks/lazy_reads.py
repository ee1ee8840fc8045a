"""Lazy training reads against in-memory: clips/s of one shuffled epoch through the project's loader.

    python benchmarks/lazy_reads.py [--clips 30000] [--workers 2] [--repeats 2] [--dir DIR [--reuse]] [--lz4-site DIR]

Fabricates a feature file as extraction writes it (``create_layout`` under ``writing``: N clips of
18 x 1280 float32, gzip 4, one chunk per clip) from real rows of the demo's multi-scale features
(features/demo/all_features_multiscale.h5, the nonzero values scaled by noise in [0.95, 1.05], so
the zeros of the ReLU features, and gzip's ratio, stay those of real features). Then iterates one
shuffled epoch (batch 32, ``split_loader`` as training builds it) for each way of reading:

- in-memory (``in_memory="yes"``): the reference;
- lazy, the gzip file read directly (today), with 0 and ``--workers`` DataLoader workers;
- block-shuffled sampling with contiguous block reads: blocks of ``--block`` consecutive rows in
  shuffled order, rows shuffled within a window of ``--window`` blocks, each block read in one
  ``features[a:b]`` call (one window per worker);
- float16 storage (gzip 4): reading speed only (training would see float16-rounded features);
- an lz4 copy (``hdf5plugin``, only when importable: ``--lz4-site`` adds a folder to ``sys.path``);
- the uncompressed training copy (``lazy_reading="copy"``, the project's lazy path): made once
  (timed apart), then memory-mapped, with 0 and ``--workers`` workers.

Interleaved repeats (best of ``--repeats``), all in one run, so the ratios to in-memory are
side by side. A last row measures zlib alone inflating the file's chunks on one core: the
ceiling of any gzip reading per core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Sampler

from research import distributed
from research.config import TrainConfig
from research.data.dataset import FeatureDataset, split_loader, training_copy_path
from research.features.joined import own_attrs
from research.features.writing import create_layout, writing

REAL = Path("features/demo/all_features_multiscale.h5")
BATCH = 32  # TrainConfig.batch_size's default: what training reads per step
CPU = torch.device("cpu")


def fabricate(path: Path, clips: int, seed: int = 0) -> None:
    """``clips`` rows of real multi-scale features (noise on the nonzeros), written as extraction writes them."""
    with h5py.File(REAL, "r") as f:
        real, attrs = f["features"][:], own_attrs(f.attrs)  # the demo's file may be a join over shards
    rng = np.random.default_rng(seed)
    _, frames, dim = real.shape
    with writing(path) as f:
        ds = create_layout(f, clips, frames, dim)
        for start in range(0, clips, 512):
            rows = real[rng.integers(0, len(real), min(512, clips - start))]
            nonzero = rows != 0
            rows[nonzero] *= rng.uniform(0.95, 1.05, int(nonzero.sum())).astype(np.float32)
            ds["features"][start : start + len(rows)] = rows
        ds["labels"][:] = rng.integers(0, 4, clips)
        ds["num_frames"][:] = frames
        ds["decoded_frames"][:] = frames
        ds["video_ids"][:] = [f"clip_{i:07d}" for i in range(clips)]
        f.attrs.update({k: attrs[k] for k in ("category_mapping", "multi_scale", "backbone")})
        f.attrs.update({"num_videos": clips, "max_frames": frames, "feature_dim": dim, "all_finite": True})


def recompressed(source: Path, target: Path, dtype: type, **compression: object) -> Path:
    """The same file with its features stored as ``dtype`` under another filter (one chunk per clip)."""
    with h5py.File(source, "r") as src, writing(target) as out:
        for name in src:
            if name != "features":
                src.copy(name, out)
        out.attrs.update(dict(src.attrs))
        n, frames, dim = src["features"].shape
        rows = out.create_dataset("features", (n, frames, dim), dtype, chunks=(1, frames, dim), **compression)
        for start in range(0, n, 512):
            rows[start : start + 512] = src["features"][start : start + 512].astype(dtype)
    return target


class BlockShuffle(Sampler[list[int]]):
    """Batches of block-shuffled rows: blocks of ``block`` consecutive rows in shuffled order, the rows of
    each window of ``window`` blocks shuffled together and cut into batches; with ``workers`` > 1 the
    windows' batches interleave so that DataLoader worker k (batch i goes to worker i % workers) reads
    window k, k + workers, ... alone, a window at a time."""

    def __init__(self, n: int, block: int, window: int, workers: int, generator: torch.Generator) -> None:
        self.n, self.block, self.window, self.workers, self.generator = n, block, window, max(1, workers), generator
        self.blocks = -(-n // block)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.blocks, generator=self.generator).tolist()
        windows = []
        for w in range(0, self.blocks, self.window):
            rows = torch.cat(
                [torch.arange(b * self.block, min(self.n, (b + 1) * self.block)) for b in order[w : w + self.window]]
            )
            rows = rows[torch.randperm(len(rows), generator=self.generator)].tolist()
            windows.append([rows[i : i + BATCH] for i in range(0, len(rows), BATCH)])
        for group in range(0, len(windows), self.workers):  # one window per worker, their batches interleaved
            batches = windows[group : group + self.workers]
            for i in range(max(len(b) for b in batches)):
                yield from (b[i] for b in batches if i < len(b))

    def __len__(self) -> int:
        rows = [
            min(self.n, (w + self.window) * self.block) - w * self.block for w in range(0, self.blocks, self.window)
        ]
        return sum(-(-r // BATCH) for r in rows)


class BlockReads(FeatureDataset):
    """The lazy dataset reading whole blocks in one ``features[a:b]`` call, keeping the last window's blocks."""

    def configure(self, block: int, window: int) -> BlockReads:
        self.block, self.window, self._blocks = block, window, {}
        return self

    def __getitems__(self, rows: list[int]) -> list[tuple[torch.Tensor, int, int]]:
        if self._file is None or self._pid != os.getpid():  # one handle per worker process
            self._file, self._pid, self._blocks = h5py.File(self.path, "r"), os.getpid(), {}
        needed = {r // self.block for r in rows}
        missing = sorted(needed - set(self._blocks))
        if len(self._blocks) + len(missing) > self.window:  # a new window: keep only what this batch needs
            self._blocks = {b: rows_of_b for b, rows_of_b in self._blocks.items() if b in needed}
        for b in missing:
            self._blocks[b] = self._file["features"][b * self.block : (b + 1) * self.block]
        return [
            (
                torch.from_numpy(self._blocks[r // self.block][r % self.block]),
                int(self.num_frames[r]),
                int(self.labels[r]),
            )
            for r in rows
        ]

    def __getstate__(self) -> dict:
        return super().__getstate__() | {"_blocks": {}}


def epoch_rate(ds: FeatureDataset, workers: int, sampler: Sampler | None = None, seed: int = 0) -> float:
    """Clips per second of one shuffled epoch (worker start-up included), as training iterates it."""
    cfg = TrainConfig(batch_size=BATCH, num_workers=workers)
    if sampler is None:
        loader = split_loader(ds, cfg, True, distributed.Context(), CPU, seed)
    else:
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, collate_fn=None)
    seen, start = 0, time.perf_counter()
    for features, _, labels in loader:
        seen += len(labels)
        assert features.shape[0] == len(labels)
    rate = seen / (time.perf_counter() - start)
    assert seen == len(ds), f"{seen} clips read of {len(ds)}"
    return rate


def inflate_rate(path: Path, clips: int = 2000) -> float:
    """Clips per second that zlib alone inflates on one core (the file's own chunks, read raw)."""
    with h5py.File(path, "r") as f:
        ds = f["features"]
        chunks = [ds.id.read_direct_chunk((i, 0, 0))[1] for i in range(min(clips, ds.shape[0]))]
    start = time.perf_counter()
    for chunk in chunks:
        zlib.decompress(chunk)
    return len(chunks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=30_000)
    parser.add_argument("--workers", type=int, default=2, help="workers by cores: this machine has 2")
    parser.add_argument("--block", type=int, default=64, help="rows per block read (block-shuffled sampling)")
    parser.add_argument("--window", type=int, default=8, help="blocks shuffled together")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of every candidate; best kept")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="use the files already in --dir (the copy is remade)")
    parser.add_argument("--lz4-site", type=Path, default=None, help="a folder holding hdf5plugin (pip --target)")
    args = parser.parse_args()
    console = Console(width=130)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="bench_lazy_"))
    folder.mkdir(parents=True, exist_ok=True)
    gz = folder / "train_features_multiscale.h5"
    timings: dict[str, float] = {}
    fp16 = folder / "fp16.h5"
    if not (args.reuse and gz.is_file()):
        start = time.perf_counter()
        fabricate(gz, args.clips)
        timings["fabricate (gzip 4)"] = time.perf_counter() - start
    if not (args.reuse and fp16.is_file()):
        start = time.perf_counter()
        recompressed(gz, fp16, np.float16, compression="gzip", compression_opts=4)
        timings["float16 gzip 4 file"] = time.perf_counter() - start
    lz4 = None
    if args.lz4_site:
        sys.path.insert(0, str(args.lz4_site))
    try:
        import hdf5plugin  # optional: registers the lz4 filter with HDF5

        lz4 = folder / "lz4.h5"
        if not (args.reuse and lz4.is_file()):
            start = time.perf_counter()
            recompressed(gz, lz4, np.float32, **hdf5plugin.LZ4())
            timings["lz4 file"] = time.perf_counter() - start
    except ImportError:
        console.print("hdf5plugin not importable: no lz4 row (pip install --target DIR hdf5plugin; --lz4-site DIR)")
    training_copy_path(gz).unlink(missing_ok=True)
    start = time.perf_counter()
    copied = FeatureDataset(gz, in_memory="no", lazy_reading="copy")
    timings["uncompressed training copy (once)"] = time.perf_counter() - start
    assert copied.copy_path is not None
    sizes = {p.name: p.stat().st_size for p in (gz, fp16, lz4, copied.copy_path) if p is not None}

    w = args.workers
    eager = FeatureDataset(gz, in_memory="yes")
    direct = FeatureDataset(gz, in_memory="no")
    block = BlockReads(gz, in_memory="no").configure(args.block, args.window)
    half = FeatureDataset(fp16, in_memory="no")
    fast = FeatureDataset(lz4, in_memory="no") if lz4 is not None else None

    def blocks(workers: int) -> float:
        sampler = BlockShuffle(len(block), args.block, args.window, workers, torch.Generator().manual_seed(0))
        return epoch_rate(block, workers, sampler)

    candidates = {
        "in-memory (the reference), workers 0": lambda: epoch_rate(eager, 0),
        "lazy gzip, direct (today), workers 0": lambda: epoch_rate(direct, 0),
        f"lazy gzip, direct (today), workers {w}": lambda: epoch_rate(direct, w),
        f"lazy gzip, block-shuffled ({args.block} rows x {args.window}), workers 0": lambda: blocks(0),
        f"lazy gzip, block-shuffled ({args.block} rows x {args.window}), workers {w}": lambda: blocks(w),
        "lazy float16 gzip, direct, workers 0": lambda: epoch_rate(half, 0),
        f"lazy float16 gzip, direct, workers {w}": lambda: epoch_rate(half, w),
        "lazy uncompressed copy (lazy_reading=copy), workers 0, a process's first epoch": lambda: epoch_rate(
            FeatureDataset(gz, in_memory="no", lazy_reading="copy"), 0
        ),
        "lazy uncompressed copy (lazy_reading=copy), workers 0, later epochs": lambda: epoch_rate(copied, 0),
        f"lazy uncompressed copy (lazy_reading=copy), workers {w}": lambda: epoch_rate(copied, w),
    }
    if fast is not None:
        candidates["lazy lz4 copy, direct, workers 0"] = lambda: epoch_rate(fast, 0)
        candidates[f"lazy lz4 copy, direct, workers {w}"] = lambda: epoch_rate(fast, w)
    candidates["in-memory again (bracketing the load)"] = candidates["in-memory (the reference), workers 0"]
    runs: dict[str, list[float]] = {name: [] for name in candidates}
    epoch_rate(copied, 0)  # its map made and touched once: "later epochs" are those of a training run
    for _ in range(args.repeats):  # interleaved: every candidate once, then again
        for name, measure in candidates.items():
            runs[name].append(measure())
            console.print(f"{name}: {runs[name][-1]:,.0f} clips/s")
    best = {name: max(rates) for name, rates in runs.items()}
    reference = max(best["in-memory (the reference), workers 0"], best["in-memory again (bracketing the load)"])

    table = Table(
        title=f"{args.clips:,} clips of 18 x 1280, batch {BATCH}, one shuffled epoch; torch threads "
        f"{torch.get_num_threads()}"
    )
    for column in ("reading", f"clips/s (best of {args.repeats})", "runs", "% of in-memory"):
        table.add_column(column, justify="left" if column == "reading" else "right")
    for name, rate in best.items():
        table.add_row(name, f"{rate:,.0f}", ", ".join(f"{r:,.0f}" for r in runs[name]), f"{rate / reference:.1%}")
    table.add_row("zlib alone inflating the file's chunks, 1 core", f"{inflate_rate(gz):,.0f}", "", "")
    console.print(table)
    console.print("one-off costs (s): " + json.dumps({k: round(v, 1) for k, v in timings.items()}))
    console.print("sizes (MB): " + json.dumps({k: round(v / 1e6) for k, v in sizes.items()}))
    console.print(f"raw float32: {args.clips * 18 * 1280 * 4 / 1e6:,.0f} MB; files in {folder}")


if __name__ == "__main__":
    main()
