"""Timeline cost (issue 43): seconds per hour of video for ``evaluate.py --predict LONG.mp4 --window 10 --stride 5``.

    python benchmarks/timeline.py [--minutes 60] [--classifier runs/demo/classifier.pt] [--cache /tmp/timeline-bench]

The long video: real clips of benchmarks/real (``--clips`` per class, in turn) concatenated with PyAV at
320x240, 15 fps (x264 ultrafast, a keyframe every 2 s), then that stream looped by remuxing its packets
(no re-encode) to ``--minutes``; cached under ``--cache``, never committed. The timeline runs in this
process (``predict_videos``, what the command runs) with the demo's ready classifier, once per stride
in ``--strides`` (default 5 and 10: the same grid of frames, twice the windows), side by side in one run.
Reported per stride: wall seconds, seconds per hour of video, and the split into decode (probe +
planned decode + RGB conversion), CNN (the frozen backbone on each grid frame once) and classify (the
classifier on every window). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import time
from fractions import Fraction
from pathlib import Path

import av
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "benchmarks" / "real"
FPS, SIZE = 15, (320, 240)


def base_clips(per_class: int) -> list[Path]:
    """``per_class`` clips of each class of benchmarks/real (the first sources, one clip each), classes in turn."""
    with (REAL / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_class: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for row in rows:
        if row["source"] in seen or len(by_class.get(row["class"], [])) >= per_class:
            continue
        seen.add(row["source"])
        by_class.setdefault(row["class"], []).append(REAL / row["path"])
    return [clips[i] for i in range(per_class) for clips in by_class.values() if i < len(clips)]


def concatenate(clips: list[Path], out: Path) -> float:
    """The clips one after the other at ``FPS`` and ``SIZE`` (H.264, keyframe every 2 s); returns seconds."""
    total = 0
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "28", "g": "30"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for clip in clips:
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                rate = float(video.average_rate)
                frames = [f.to_ndarray(width=SIZE[0], height=SIZE[1], format="rgb24") for f in source.decode(video)]
            count = int(len(frames) / rate * FPS)
            for k in range(count):
                frame = av.VideoFrame.from_ndarray(frames[min(int(k * rate / FPS), len(frames) - 1)], format="rgb24")
                frame.pts, frame.time_base = total + k, Fraction(1, FPS)
                container.mux(stream.encode(frame))
            total += count
        container.mux(stream.encode(None))
    return total / FPS


def loop(base: Path, out: Path, minutes: float) -> float:
    """``base`` repeated (packets remuxed with shifted timestamps) until ``minutes`` are reached; returns seconds."""
    with av.open(str(base)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size]
        span = max(p.pts for p in packets) + int(packets[1].duration or 1) if len(packets) > 1 else 1
        time_base = stream.time_base
        with av.open(str(out), "w") as container:
            target = container.add_stream_from_template(stream)
            repeats = max(1, round(minutes * 60 / float(span * time_base)))
            for r in range(repeats):
                for p in packets:
                    copy = av.Packet(bytes(p))
                    copy.pts, copy.dts = p.pts + r * span, p.dts + r * span
                    copy.is_keyframe, copy.time_base, copy.stream = p.is_keyframe, time_base, target
                    container.mux(copy)
    return repeats * float(span * time_base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--classifier", default=str(ROOT / "runs" / "demo" / "classifier.pt"))
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--strides", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--clips", type=int, default=3, help="clips per class in the looped base")
    parser.add_argument("--cache", default="/tmp/timeline-bench")
    args = parser.parse_args()

    from research.config import EvalConfig
    from research.engine.evaluation import predict_videos

    console = Console()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    base, long = cache / f"base_{args.clips}.mp4", cache / f"long_{args.clips}_{args.minutes:g}min.mp4"
    if not base.is_file():
        console.print(f"base: {concatenate(base_clips(args.clips), base):.1f} s of real clips -> {base}")
    if not long.is_file():
        console.print(f"looped: {loop(base, long, args.minutes) / 60:.1f} min -> {long}")
    table = Table(title=f"timeline of {long.name} ({long.stat().st_size / 2**20:.0f} MiB), window {args.window:g} s")
    for column in ("stride", "windows", "CNN frames", "wall s", "s / hour", "decode s", "CNN s", "classify s"):
        table.add_column(column, justify="right")
    for stride in args.strides:
        cfg = EvalConfig(
            classifier=args.classifier,
            predict=[str(long)],
            window=args.window,
            stride=stride,
            out_dir=str(cache / f"out_{stride:g}"),
            log_mlflow=False,
        )
        began = time.perf_counter()
        (result,) = predict_videos(cfg)
        wall = time.perf_counter() - began
        t = result["timings"]
        hours = t["video_seconds"] / 3600
        table.add_row(
            f"{stride:g}",
            str(len(result["starts"])),
            str(t["frames"]),
            f"{wall:.1f}",
            f"{wall / hours:.0f}",
            f"{t['decode_s']:.1f}",
            f"{t['cnn_s']:.1f}",
            f"{t['classify_s']:.1f}",
        )
        console.print(f"stride {stride:g}: {len(result['segments'])} segments, {wall:.1f} s", highlight=False)
    console.print(table)


if __name__ == "__main__":
    main()
