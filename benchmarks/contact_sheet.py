"""The contact sheet's cost (issue 43): what drawing an evaluation's errors adds to it.

    python benchmarks/contact_sheet.py [--predictions outputs/demo/predictions.csv] [--repeats 3]

On a predictions file (default: make demo's, 73 test clips of benchmarks/real), side by side in one run,
interleaved, best of ``--repeats``:

(a) the thumbnails of the misclassified clips through the keyframe plan (what ``evaluate`` does);
(b) the same frames decoded sequentially from the start (``plan=False``);
(c) every frame of the same clips decoded, none converted (the cost of "decode the whole file");
(d) ``write_contact_sheet`` whole: (a) plus the PNG and the HTML;
(e) ``write_contact_sheet`` with ``include_correct`` (every clip: the command's ``--all``).

CPU seconds of this process (the machine is shared: wall time carries other users' load) and wall seconds.
Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
from rich.console import Console
from rich.table import Table

from research.engine.contact_sheet import (
    FRAMES,
    decode_rows,
    default_roots,
    read_sheet_rows,
    resolve_video,
    write_contact_sheet,
)


def decode_everything(paths: list[Path]) -> None:
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                pass


def timed(work: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", default="outputs/demo/predictions.csv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    predictions = Path(args.predictions)
    roots = default_roots(predictions)
    errors, clips = read_sheet_rows(predictions)
    every, _ = read_sheet_rows(predictions, include_correct=True)
    paths = [p for p in (resolve_video(r.path, roots) for r in errors) if p is not None]
    out = Path(tempfile.mkdtemp(prefix="contact_sheet_bench_"))
    cases: dict[str, Callable[[], object]] = {
        "(a) errors' thumbnails, keyframe plan": lambda: decode_rows(read_sheet_rows(predictions)[0], FRAMES, roots),
        "(b) errors' thumbnails, sequential": lambda: decode_rows(
            read_sheet_rows(predictions)[0], FRAMES, roots, False
        ),
        "(c) errors' clips, every frame decoded": lambda: decode_everything(paths),
        "(d) write_contact_sheet (errors)": lambda: write_contact_sheet(predictions, out / "errors", roots=roots),
        "(e) write_contact_sheet --all": lambda: write_contact_sheet(
            predictions, out / "all", include_correct=True, roots=roots
        ),
    }
    decode_rows(errors[:1], FRAMES, roots)  # imports and the first open out of the timings
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for name, work in cases.items():
            cpu, wall = timed(work)
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], cpu), min(old[1], wall))
    base = best["(a) errors' thumbnails, keyframe plan"][0]
    table = Table(title=f"{predictions}: {clips} clips, {len(errors)} misclassified, {FRAMES} frames each")
    for col in ("case", "clips", "CPU s", "wall s", "CPU ms/clip", "CPU vs (a)"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, (cpu, wall) in best.items():
        n = len(every) if "--all" in name else len(errors)
        table.add_row(name, str(n), f"{cpu:.2f}", f"{wall:.2f}", f"{1000 * cpu / n:.0f}", f"{cpu / base:.2f}x")
    Console().print(table)
    print("| case | clips | CPU s | wall s | CPU ms/clip | CPU vs (a) |\n|---|---|---|---|---|---|")
    for name, (cpu, wall) in best.items():
        n = len(every) if "--all" in name else len(errors)
        print(f"| {name} | {n} | {cpu:.2f} | {wall:.2f} | {1000 * cpu / n:.0f} | {cpu / base:.2f}x |")


if __name__ == "__main__":
    main()
