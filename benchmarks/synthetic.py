"""Generation speed of the procedural dataset (the demo-sized set: 40 videos per class).

    python benchmarks/synthetic.py [--videos-per-class 40] [--workers 2]

Prints videos/s and frames/s for the whole set. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.data.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos-per-class", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
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
