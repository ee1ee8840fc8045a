"""Several backbones in one pass: the fused extraction against the single ones it replaces, side by side.

    python benchmarks/fusion.py [--clips 16] [--frames 16] [--backbones mobilenet_v2 efficientnet_lite2]

On the same real clips (``benchmarks/real``), in one process run: ``extract(cfg)`` once per
backbone alone, then once with all of them fused (``a+b``: one decode per video, each CNN at its
own resolution). Prints seconds, sampled frames/s end to end, the CNN alone on already-decoded
frames (batch 32, channels_last; fused: the parts' times summed) and end to end against it (with
the decode workers the default picks), and the fused run against the sum of the single runs
(below 1: the decode that fusion shares). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from research.config import ExtractConfig
from research.features.extraction import extract
from research.features.frames import decode_workers
from studies.backbones import cnn_frames_per_s

ROOT = Path(__file__).resolve().parents[1]


def sample_clips(root: Path, clips: int, into: Path) -> Path:
    """The first ``clips`` clips of each class, as a one-split data root (``all/{class}/{source}/``)."""
    for category in sorted((root / "all").iterdir()):
        for clip in sorted(category.rglob("*.mp4"))[: clips // 4]:
            target = into / "all" / clip.relative_to(root / "all")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, target)
    return into


def timed_extract(data: Path, out: Path, backbone: str, frames: int) -> tuple[float, int]:
    cfg = ExtractConfig(
        data_dir=str(data),
        out_dir=str(out),
        splits=["all"],
        backbone=backbone,
        frames=frames,
        image_size=None,
        clip_seconds=None,
        outputs=["single"],
        log_mlflow=False,
    )
    start = time.perf_counter()
    result = extract(cfg)
    return time.perf_counter() - start, result["splits"]["all"]["videos"] * frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "efficientnet_lite2"])
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "real" / "videos")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = sample_clips(args.data, args.clips, Path(tmp) / "clips")
        runs = {name: timed_extract(data, Path(tmp) / name, name, args.frames) for name in args.backbones}
        fused = "+".join(args.backbones)
        runs[fused] = timed_extract(data, Path(tmp) / "fused", fused, args.frames)
    cnn = {name: cnn_frames_per_s(name) for name in args.backbones}
    cnn[fused] = 1 / sum(1 / cnn[name] for name in args.backbones)
    title = f"{args.clips} real clips x {args.frames} frames, own sizes, {decode_workers(None)} decode worker(s)"
    table = Table(title=title)
    for col in ("extraction", "seconds", "sampled frames/s", "CNN alone frames/s", "end to end / CNN", "vs singles"):
        table.add_column(col, justify="left" if col == "extraction" else "right")
    total = sum(runs[name][0] for name in args.backbones)
    for name, (seconds, frames) in runs.items():
        ratio = f"{seconds / total:.2f}" if name == fused else ""
        rate = frames / seconds
        table.add_row(name, f"{seconds:.1f}", f"{rate:.1f}", f"{cnn[name]:.1f}", f"{rate / cnn[name]:.2f}", ratio)
    table.add_row("sum of singles", f"{total:.1f}", "", "", "", "1.00")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
