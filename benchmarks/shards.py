"""The end of a sharded extraction: joining shard files against today's rank-0 assembly, side by side.

    python benchmarks/shards.py [--clips 100000] [--shards 4] [--frames 8] [--dim 32]

Fabricated committed work (random float32 rows, no CNN: only the end step is timed), in one run:

(a) torchrun today: the ranks' part folders, and rank 0 alone writing every row of the final file
    (``research.features.writing.assemble``), while the other ranks wait at a barrier;
(b) array tasks: each task assembles its own shard file from its own parts (the same ``assemble``; the
    tasks run at once, so the wall time is the slowest task's), then the join
    (``research.features.shards.join_shards``): virtual (the default: no copy) and ``--copy`` (compressed
    chunks copied as stored).

Also timed: what a resume reads to learn what is committed (``done_videos``), from the part folders'
indexes. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

from research.data.inputs import Listing, inputs_fingerprint
from research.distributed import Shard
from research.features.settings import fingerprint
from research.features.shards import join_shards, shard_attrs
from research.features.writing import PartWriter, Row, assemble, done_videos

console = Console()


def fabricate(work: Path, ids: list[str], frames: int, dim: int, part_bytes: int, seed: int) -> None:
    """Committed parts for ``ids`` under ``work``, as an extraction leaves them (size-flushed parts)."""
    rng = np.random.default_rng(seed)
    writer = PartWriter(work, flush_bytes=part_bytes)
    for vid in ids:
        feats = rng.standard_normal((frames, dim), dtype=np.float32)
        writer.add(Row(vid, "1:1", f"{vid}.mp4", int(rng.integers(4)), frames, frames, {"single": feats}))
    writer.flush()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=100_000, help="videos in the split")
    parser.add_argument("--shards", type=int, default=4, help="array tasks, and torchrun ranks")
    parser.add_argument("--frames", type=int, default=8, help="rows per clip (T)")
    parser.add_argument("--dim", type=int, default=32, help="feature width (small: the per-row cost is the point)")
    parser.add_argument("--part-mb", type=float, default=8.0, help="part size (the default 256 MB, scaled down)")
    args = parser.parse_args()

    ids = [f"videos/clip_{i:07d}" for i in range(args.clips)]
    order = [(v, "1:1") for v in ids]
    stamps = dict(order)
    listing = Listing(args.clips, "fabricated")  # every task cut its block from the same listing
    record = {"format": 2, "backbone": "fabricated", "frames_per_video": args.frames, "split": "all"}
    attrs = {
        "settings": json.dumps(record, sort_keys=True),
        "settings_fingerprint": fingerprint(record),
        "feature_dim": args.dim,
        "multi_scale": False,
    }
    part_bytes = int(args.part_mb * 2**20)
    shards = [Shard(k, args.shards) for k in range(args.shards)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        console.print(f"fabricating {args.clips} clips x {args.frames} x {args.dim} in {args.shards} part folders")
        for k, shard in enumerate(shards):  # the same blocks for ranks and tasks: the same rows to write
            fabricate(root / "ranks" / f"rank{k:03d}", shard.block(ids), args.frames, args.dim, part_bytes, k)
            fabricate(root / "shards" / f"work{k}", shard.block(ids), args.frames, args.dim, part_bytes, k)
        resume, done = timed(lambda: done_videos(root / "ranks"))
        assert len(done) == args.clips
        rank0, n = timed(
            lambda: assemble(
                root / "ranks",
                root / "assembled.h5",
                "single",
                attrs | {"inputs_fingerprint": inputs_fingerprint(stamps)},
                args.dim,
                args.frames,
                order,
            )
        )
        assert n == args.clips
        task_times, files = [], []
        for k, shard in enumerate(shards):
            block = shard.block(order)
            target = root / "shards" / f"all_features.{shard.tag}.h5"
            shard_file_attrs = attrs | {"inputs_fingerprint": inputs_fingerprint(dict(block))}
            shard_file_attrs |= shard_attrs(shard, listing, "float32", "cpu")
            seconds, _ = timed(
                lambda w=root / "shards" / f"work{k}", t=target, b=block, a=shard_file_attrs: assemble(
                    w, t, "single", a, args.dim, args.frames, b
                )
            )
            task_times.append(seconds)
            files.append(target)
        virtual, _ = timed(lambda: join_shards(root / "joined.h5", files))
        copied, _ = timed(lambda: join_shards(root / "copied.h5", files, copy=True))
        with (
            h5py.File(root / "assembled.h5") as a,
            h5py.File(root / "joined.h5") as b,
            h5py.File(root / "copied.h5") as c,
        ):
            for start in range(0, args.clips, 10_000):  # the same numbers, whichever way
                ref = a["features"][start : start + 10_000]
                assert np.array_equal(ref, b["features"][start : start + 10_000])
                assert np.array_equal(ref, c["features"][start : start + 10_000])
        sizes = {
            p.name: p.stat().st_size / 2**20 for p in (root / "assembled.h5", root / "joined.h5", root / "copied.h5")
        }
        parts = len(list((root / "ranks").rglob("part_*.npz")))

    table = Table(title=f"{args.clips} clips, {args.shards} ranks or tasks, {args.frames} x {args.dim} per clip")
    for col in ("end step", "seconds", "vs rank-0 assembly", "file MB"):
        table.add_column(col, justify="left" if col == "end step" else "right")
    table.add_row("torchrun: rank 0 assembles every row", f"{rank0:.1f}", "1.00", f"{sizes['assembled.h5']:.0f}")
    slowest = max(task_times)
    table.add_row(
        f"array: each task its shard (at once; slowest of {args.shards})",
        f"{slowest:.1f}",
        f"{slowest / rank0:.2f}",
        "",
    )
    table.add_row(
        "array: join, virtual (default)", f"{virtual:.1f}", f"{virtual / rank0:.3f}", f"{sizes['joined.h5']:.1f}"
    )
    table.add_row("array: join --copy (chunks)", f"{copied:.1f}", f"{copied / rank0:.2f}", f"{sizes['copied.h5']:.0f}")
    console.print(table)
    console.print(
        f"end to end after the CNN: torchrun {rank0:.1f} s (rank 0 alone); array {slowest + virtual:.1f} s "
        f"(virtual join) or {slowest + copied:.1f} s (copy). A resume learns what is committed from {parts} "
        f"parts' indexes in {resume:.2f} s."
    )


if __name__ == "__main__":
    main()
