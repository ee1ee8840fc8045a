"""Generation speed of the procedural dataset (the demo-sized set: 40 videos per class).

    python benchmarks/synthetic.py [--videos-per-class 40] [--workers 2]
    python benchmarks/synthetic.py --per-renderer [--frames 60]     # ms per frame of every subcategory, one process

Prints videos/s and frames/s for the whole set, or what each renderer costs (drawing only, at
320x240, at difficulty 0.8: the demo's budget is spent where the slowest renderers are).
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from videogen.catalogue import CATALOG
from videogen.writing import generate


def per_renderer(frames: int) -> Table:
    """Each subcategory drawn for ``frames`` frames at 320x240, three videos each: ms per frame."""
    import numpy as np

    from videogen.drawing import photos, textures

    photos(), textures()  # loaded once per process (seconds of imports): not any renderer's cost
    table = Table(title=f"drawing cost per subcategory (320x240, {frames} frames x 3 videos, difficulty 0.8)")
    for col in ("subcategory", "ms/frame"):
        table.add_column(col, justify="right")
    for sub in CATALOG:
        start = time.perf_counter()
        for seed in range(3):
            rng = np.random.default_rng(seed)
            for _ in sub.render(rng, 320, 240, frames, sub.sample_params(rng, 0.8)):
                pass
        table.add_row(f"{sub.category}/{sub.name}", f"{(time.perf_counter() - start) / (3 * frames) * 1000:.1f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos-per-class", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--per-renderer", action="store_true", help="time every subcategory's renderer instead")
    parser.add_argument("--frames", type=int, default=60, help="with --per-renderer: frames per video")
    args = parser.parse_args()
    if args.per_renderer:
        Console(width=120).print(per_renderer(args.frames))
        return
    out = Path(tempfile.mkdtemp(prefix="bench_synthetic_"))
    start = time.perf_counter()
    rows = generate(out, args.videos_per_class, seed=0, workers=args.workers, progress=False)
    elapsed = time.perf_counter() - start
    frames = sum(int(r["frames"]) for r in rows)
    size = sum(p.stat().st_size for p in out.rglob("*.mp4"))
    table = Table(title=f"procedural dataset, {args.workers} worker processes")
    for col in ("videos", "frames", "seconds", "videos/s", "frames/s", "MB on disk"):
        table.add_column(col, justify="right")
    table.add_row(
        str(len(rows)),
        str(frames),
        f"{elapsed:.1f}",
        f"{len(rows) / elapsed:.2f}",
        f"{frames / elapsed:.0f}",
        f"{size / 1e6:.1f}",
    )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
