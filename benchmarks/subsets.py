"""Each file worked on once: chunk-level subsets and recorded digests against the row copies and full scans.

    python benchmarks/subsets.py [--clips 20000] [--fraction 0.8] [--dir DIR]

Fabricates a feature file as extraction writes it (``create_layout`` under ``writing``: N clips of
18 x 1280 float32, gzip 4, one chunk per clip; attributes of the demo's multi-scale file) from real rows
of features/demo/all_features_multiscale.h5: a pool of ``--pool`` rows, each one's nonzero values scaled
by noise in [0.95, 1.05] (so the ReLU zeros, and gzip's ratio, stay those of real features), compressed
once and written as stored chunks in turn. Then, side by side in one run:

- a subset of ``--fraction`` of the rows (sorted, as ``write_fold`` asks) made as before this change (every
  row decompressed and compressed again: ``row_copy_subset``, the old ``hdf5._copy_rows``) and by
  ``copying.subset`` (stored chunks copied, each inflated once for the digest and ``all_finite``);
- ``content_fingerprint`` of that subset read in full (no record: what every call cost before) and
  recorded (what every call after the write costs now); both must give the same digest;
- ``select_parts``' reads of ``--select-rows`` rows, cut to half their columns: one row at a time (before)
  and in blocks of ``parts.BLOCK_ROWS`` rows (now); writing is the same both ways (each chunk deflated).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

from research.features.copying import subset
from research.features.hdf5 import content_fingerprint
from research.features.joined import own_attrs
from research.features.parts import BLOCK_ROWS
from research.features.writing import ROW_COLUMNS, create_layout, writing
from research.files import record_path

REAL = Path("features/demo/all_features_multiscale.h5")


def fabricate(path: Path, clips: int, pool: int, seed: int = 0) -> None:
    """``clips`` rows cycled from ``pool`` noisy real rows, written as extraction writes them (gzip 4 chunks)."""
    with h5py.File(REAL, "r") as f:
        real, attrs = f["features"][:], own_attrs(f.attrs)  # the demo's file may be a join over shards
        labels, lengths = f["labels"][:], f["num_frames"][:]
        ids = [v.decode() for v in f["video_ids"][:]]
    rng = np.random.default_rng(seed)
    _, frames, dim = real.shape
    chunks = []
    for k in range(pool):
        row = real[k % len(real)].copy()
        row[row != 0] *= rng.uniform(0.95, 1.05, size=int((row != 0).sum())).astype(np.float32)
        chunks.append(zlib.compress(row.tobytes(), 4))  # what HDF5's deflate at level 4 stores
    with writing(path) as f:
        ds = create_layout(f, clips, frames, dim)
        for i in range(clips):
            ds["features"].id.write_direct_chunk((i, 0, 0), chunks[i % pool])
        take = np.arange(clips) % len(real)
        ds["labels"][:], ds["num_frames"][:], ds["decoded_frames"][:] = labels[take], lengths[take], lengths[take]
        names = [f"{ids[t]}_{i:07d}" for i, t in enumerate(take)]
        ds["video_ids"][:], ds["paths"][:], ds["stamps"][:] = names, names, [""] * clips
        f.attrs.update(attrs | {"num_videos": clips})


def row_copy_subset(source: Path, output: Path, rows: list[int]) -> None:
    """The subset before this change (``copying._copy_rows`` for one source): each row inflated and deflated."""
    with h5py.File(source, "r") as f, writing(output) as out:
        ds = create_layout(out, len(rows), f["features"].shape[1], f["features"].shape[2])
        out.attrs.update(dict(f.attrs))
        for k, i in enumerate(rows):
            ds["features"][k] = f["features"][i]
        for name in ROW_COLUMNS:
            ds[name][:] = f[name][:][rows]
        out.attrs.update({"num_videos": len(rows), "skipped": "[]", "num_skipped": 0})


def read_rows_one_by_one(path: Path, n: int, columns: np.ndarray) -> float:
    """``select_parts``' reads before: row by row, each cut to ``columns``; returns a checksum."""
    with h5py.File(path, "r") as f:
        return float(sum(f["features"][i][:, columns].sum() for i in range(n)))


def read_rows_in_blocks(path: Path, n: int, columns: np.ndarray) -> float:
    """``select_parts``' reads now: ``BLOCK_ROWS`` rows a call, cut to ``columns``; returns a checksum."""
    with h5py.File(path, "r") as f:
        return float(
            sum(f["features"][s : min(s + BLOCK_ROWS, n)][:, :, columns].sum() for s in range(0, n, BLOCK_ROWS))
        )


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20_000)
    parser.add_argument("--fraction", type=float, default=0.8)
    parser.add_argument("--select-rows", type=int, default=2000, help="rows read both ways as select_parts does")
    parser.add_argument("--pool", type=int, default=1000, help="distinct noisy rows cycled through the file")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        source = folder / "all_features_multiscale.h5"
        made, _ = timed(fabricate, source, args.clips, args.pool)
        rng = np.random.default_rng(1)
        rows = sorted(rng.choice(args.clips, int(args.clips * args.fraction), replace=False).tolist())
        console.print(
            f"fabricated {args.clips} clips ({source.stat().st_size / 2**20:.0f} MiB) in {made:.1f} s; "
            f"subset of {len(rows)} rows"
        )
        row_copy, by_rows = folder / "rows.h5", folder / "chunks.h5"
        t_rows, _ = timed(row_copy_subset, source, row_copy, rows)
        t_chunks, _ = timed(subset, source, by_rows, rows)
        record_path(row_copy).unlink(missing_ok=True)  # the old way: every call reads the whole file
        t_scan, scanned = timed(content_fingerprint, row_copy)
        t_recorded, recorded = timed(content_fingerprint, by_rows)
        if scanned != recorded:
            raise SystemExit(f"the digests differ: full scan {scanned}, recorded {recorded}")
        with h5py.File(row_copy, "r") as a, h5py.File(by_rows, "r") as b:
            same = all(np.array_equal(a["features"][i], b["features"][i]) for i in range(0, len(rows), 997))
        half = np.arange(0, 1280, 2)
        t_one, one = timed(read_rows_one_by_one, source, args.select_rows, half)
        t_blocks, blocks = timed(read_rows_in_blocks, source, args.select_rows, half)
        same = same and abs(one - blocks) <= 1e-6 * abs(one)

    table = Table(title=f"{args.clips} clips x 18 x 1280 float32, gzip 4; subset of {len(rows)} rows")
    for column in ("step", "before (s)", "now (s)", "ratio"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row("subset", f"{t_rows:.2f}", f"{t_chunks:.2f}", f"{t_rows / t_chunks:.1f}x")
    table.add_row("content_fingerprint", f"{t_scan:.2f}", f"{t_recorded:.4f}", f"{t_scan / t_recorded:,.0f}x")
    name = f"select_parts reads ({args.select_rows} rows)"
    table.add_row(name, f"{t_one:.2f}", f"{t_blocks:.2f}", f"{t_one / t_blocks:.1f}x")
    console.print(table)
    console.print(f"digest {recorded} equal both ways; sampled rows (and column sums) equal: {same}")
    console.print(f"subset: {len(rows) / t_rows:,.0f} rows/s before, {len(rows) / t_chunks:,.0f} rows/s now")


if __name__ == "__main__":
    main()
