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

Quality (issue 51): how good timelines are, raw and smoothed, side by side:

    python benchmarks/timeline.py --quality [--folds 5] [--videos-per-fold N] [--sources-per-video 8]
        [--window 4 --strides 2] [--append-results benchmarks/RESULTS.md]

Every clip of benchmarks/real is scored by a classifier that never saw its family: five grouped folds by
family (``make_folds``, as the bake-off's); for each fold a probe (``fit_split_probe``: C and temperature
on a validation carve by family of the other folds, ``probe_file``, with its familiarity scorer on its
training clips) is fitted on the other folds' clips (features/demo/all_features.h5, ``make demo``'s). The
fold's sources (all of held-out families) are shuffled (seeded) and dealt into long videos of ``--sources-per-video``
sources each, every clip of a source in turn (so a segment is a source's run: 5-40 s), concatenated at
320x240, 15 fps; the truth is each clip's class over its seconds. ``predict_videos`` makes each video's
timeline with its fold's probe (``--window``, the first of ``--strides``), unsmoothed; then:

- the smoothing settings for a fold's videos are chosen (``choose_smoothing``) on the *other* folds'
  videos, never on the video scored;
- raw (each window's top class) and smoothed segments are sampled every 0.1 s and scored against the truth:
  frame accuracy, edit score, F1@{10, 25, 50} (``research.engine.segment_metrics``: MS-TCN's measures);
- per measure: the mean over videos, raw and smoothed, each with a 95 % interval resampling videos, and the
  paired difference (smoothed - raw) with its interval.

Also printed: the settings chosen on all videos together (what ``research.engine.smoothing.DEFAULT`` should
hold). Videos and classifiers are cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's research package, before any installed one
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


def concatenate(clips: list[Path], out: Path) -> list[float]:
    """The clips one after the other at ``FPS`` and ``SIZE`` (H.264, keyframe every 2 s); returns where each
    clip ends, in seconds of ``out``."""
    total, ends = 0, []
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
            ends.append(total / FPS)
        container.mux(stream.encode(None))
    return ends


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
    parser.add_argument("--window", type=float, help="seconds (default: 10; --quality: 4)")
    parser.add_argument("--strides", type=float, nargs="+", help="seconds (default: 5 10; --quality: 2)")
    parser.add_argument("--clips", type=int, default=3, help="clips per class in the looped base")
    parser.add_argument("--cache", default="/tmp/timeline-bench")
    parser.add_argument("--quality", action="store_true", help="score timelines raw and smoothed (issue 51)")
    parser.add_argument("--features", type=Path, default=ROOT / "features" / "demo" / "all_features.h5")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="+", help="make videos of these folds only (a small run)")
    parser.add_argument("--videos-per-fold", type=int, help="at most this many videos per fold (default: all)")
    parser.add_argument("--sources-per-video", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--append-results", type=Path, help="--quality: append the table as a dated section here")
    args = parser.parse_args()
    if args.quality:
        quality(args)
        return
    args.window = 10.0 if args.window is None else args.window
    args.strides = [5.0, 10.0] if args.strides is None else args.strides

    from research.config import EvalConfig
    from research.engine.evaluation import predict_videos

    console = Console()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    base, long = cache / f"base_{args.clips}.mp4", cache / f"long_{args.clips}_{args.minutes:g}min.mp4"
    if not base.is_file():
        console.print(f"base: {concatenate(base_clips(args.clips), base)[-1]:.1f} s of real clips -> {base}")
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


# ------------------------------------------------------------------ quality (issue 51)

TRUTH_STEP = 0.1  # seconds between the instants a timeline is scored at: finer than any window's stride


def fold_classifier(
    features: Path, labels: np.ndarray, families: np.ndarray, rest: np.ndarray, out: Path, seed: int
) -> Path:
    """A probe on the clips ``rest`` (C and temperature on a validation carve by family), with its familiarity
    scorer on its training clips: the ready classifier a pipeline would ship from those clips."""
    from research.data.splits import carve_validation, write_fold
    from research.engine.classifier import fit_split_probe, pooled_file, probe_file, write_classifier
    from research.engine.familiarity import Familiarity

    path = out / "classifier.pt"
    if path.is_file():
        return path
    fit, val = carve_validation(rest, labels, list(families), 0.2, seed)
    folder = write_fold(features, out, {"train": fit, "val": val}, multi_scale=False)
    fitted = fit_split_probe(folder / "train_features.h5", folder / "val_features.h5")
    record = probe_file(fitted, folder / "train_features.h5", {"benchmark": "timeline quality", "seed": seed})
    x, y = pooled_file(folder / "train_features.h5")
    record["familiarity"] = Familiarity.fit(x, y).to_record()
    return write_classifier(record, path)


def fold_videos(
    rows: list[dict[str, str]], test: np.ndarray, per_video: int, videos: int | None, seed: int, out: Path, prefix: str
) -> list[tuple[Path, list[tuple[float, float, str]]]]:
    """Long videos of the fold's held-out sources (``per_video`` sources each, their clips in turn), cached;
    each with its truth: ``(start, end, class)`` per clip, in seconds of the video."""
    by_source: dict[str, list[dict[str, str]]] = {}
    for i in sorted(test.tolist()):
        by_source.setdefault(rows[i]["source"], []).append(rows[i])
    order = list(np.random.default_rng(seed).permutation(sorted(by_source)))
    made = []
    for v in range(min(videos or len(order), -(-len(order) // per_video))):
        chosen = [r for source in order[v * per_video : (v + 1) * per_video] for r in by_source[source]]
        path, truth_file = out / f"{prefix}_video{v}.mp4", out / f"{prefix}_video{v}.json"
        if not (path.is_file() and truth_file.is_file()):
            ends = concatenate([REAL / r["path"] for r in chosen], path)
            starts = [0.0, *ends[:-1]]
            truth = [(a, b, r["class"]) for a, b, r in zip(starts, ends, chosen, strict=True)]
            truth_file.write_text(json.dumps(truth))
        made.append((path, [tuple(t) for t in json.loads(truth_file.read_text())]))
    return made


def labels_at(times: np.ndarray, segments: list[tuple[float, float, int]]) -> np.ndarray:
    """The class of the segment holding each time (segments ordered, contiguous)."""
    starts = np.array([s[0] for s in segments])
    return np.array([s[2] for s in segments])[np.clip(np.searchsorted(starts, times, side="right") - 1, 0, None)]


def mean_interval(values: np.ndarray, resamples: np.ndarray) -> dict[str, float]:
    """The mean over videos and its 95 % interval over ``resamples`` (``[n, videos]`` indices of videos)."""
    draws = values[resamples].mean(1)
    return {
        "mean": float(values.mean()),
        "low": float(np.percentile(draws, 2.5)),
        "high": float(np.percentile(draws, 97.5)),
    }


def quality(args: argparse.Namespace) -> None:
    """``--quality``: the module docstring's second part."""
    import datetime

    import h5py

    from research.config import EvalConfig
    from research.data.inputs import video_id
    from research.data.splits import make_folds
    from research.engine.classifier import pooled_file
    from research.engine.evaluation import predict_videos
    from research.engine.segment_metrics import runs, timeline_scores
    from research.engine.smoothing import NONE, Smoothing, choose_smoothing, smooth
    from research.engine.timeline import merge_segments

    window = 4.0 if args.window is None else args.window
    stride = 2.0 if args.strides is None else args.strides[0]
    console = Console()
    cache = Path(args.cache) / "quality"
    cache.mkdir(parents=True, exist_ok=True)
    _, labels = pooled_file(args.features)
    with h5py.File(args.features, "r") as f:
        ids = [v.decode() for v in f["video_ids"][()]]
        mapping = json.loads(f.attrs["category_mapping"])
    classes = [c for c, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
    with (REAL / "manifest.csv").open(newline="") as fh:
        manifest = {video_id(r["path"]): r for r in csv.DictReader(fh)}
    rows = [manifest[v] for v in ids]
    families = np.array([r["family"] for r in rows])
    folds = make_folds(labels, list(families), args.folds, args.seed)
    timelines = []  # (fold, probabilities, starts, ends, duration, truth segments)
    for k, test in enumerate(folds):
        if args.only_folds is not None and k not in args.only_folds:
            continue
        rest = np.setdiff1d(np.arange(len(labels)), test)
        classifier = fold_classifier(args.features, labels, families, rest, cache / f"fold{k}", args.seed + k)
        videos = fold_videos(rows, test, args.sources_per_video, args.videos_per_fold, args.seed + k, cache, f"fold{k}")
        cfg = EvalConfig(
            classifier=str(classifier),
            predict=[str(p) for p, _ in videos],
            window=window,
            stride=stride,
            out_dir=str(cache / f"fold{k}" / "timeline"),
            log_mlflow=False,
            smooth=False,
        )
        for result, (_, truth) in zip(predict_videos(cfg), videos, strict=True):
            assert "error" not in result, result
            segments = [(a, b, classes.index(c)) for a, b, c in truth]
            timelines.append(
                (k, result["probabilities"], result["starts"], result["ends"], result["duration"], segments)
            )
        console.print(
            f"fold {k}: {len(videos)} videos, {sum(t[4] for t in timelines if t[0] == k):.0f} s", highlight=False
        )

    def window_truth(t: tuple) -> tuple[np.ndarray, np.ndarray]:
        return t[1], labels_at((t[2] + t[3]) / 2, t[5])

    chosen: dict[int, Smoothing] = {}
    for k in sorted({t[0] for t in timelines}):
        others = [window_truth(t) for t in timelines if t[0] != k]
        chosen[k] = Smoothing.from_record(choose_smoothing(others, stride)["smoothing"]) if others else NONE
    overall = choose_smoothing([window_truth(t) for t in timelines], stride)
    hindsight = Smoothing.from_record(overall["smoothing"])
    scores: dict[str, list[dict[str, float]]] = {"raw": [], "smoothed": [], "hindsight": []}
    segment_counts: dict[str, list[int]] = {"truth": [], "raw": [], "smoothed": []}
    wrong_windows = wrong_in_wrong_clips = 0
    for k, probs, starts, ends, duration, truth in timelines:
        times = np.arange(0.0, duration, TRUTH_STEP) + TRUTH_STEP / 2
        expected = labels_at(times, truth)
        segment_counts["truth"].append(len(runs(expected)[0]))
        for name, settings in (("raw", NONE), ("smoothed", chosen[k]), ("hindsight", hindsight)):
            merged = merge_segments(starts, ends, probs, duration, smooth(probs, stride, settings))
            predicted = labels_at(times, [(s["start"], s["end"], s["class_index"]) for s in merged])
            scores[name].append(timeline_scores(predicted, expected))
            if name in segment_counts:
                segment_counts[name].append(len(runs(predicted)[0]))
        # wrong windows, and those of them inside a clip whose windows are mostly wrong alike (no smoothing helps)
        top, centres = probs.argmax(1), (starts + ends) / 2
        for start, end, label in truth:
            inside = top[(centres >= start) & (centres < end)]
            wrong = int((inside != label).sum())
            wrong_windows += wrong
            if len(inside) and np.bincount(inside).argmax() != label:
                wrong_in_wrong_clips += wrong
    resamples = np.random.default_rng(args.seed).integers(0, len(timelines), (args.resamples, len(timelines)))
    table = Table(title=f"{len(timelines)} long videos, window {window:g} s, stride {stride:g} s")
    for column in ("measure", "raw [95 %]", "smoothed [95 %]", "smoothed - raw [95 %]"):
        table.add_column(column, justify="right")
    lines = ["| measure | raw [95 %] | smoothed [95 %] | smoothed - raw [95 %] |", "|---|---|---|---|"]
    for measure in scores["raw"][0]:
        raw = np.array([s[measure] for s in scores["raw"]])
        smoothed = np.array([s[measure] for s in scores["smoothed"]])
        cells = []
        for values in (raw, smoothed, smoothed - raw):  # the same resamples of videos for each: paired
            m = mean_interval(values, resamples)
            cells.append(f"{m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}]")
        table.add_row(measure, *cells)
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    console.print(table)
    hindsight_gain = {
        m: float(np.mean([h[m] - r[m] for h, r in zip(scores["hindsight"], scores["raw"], strict=True)]))
        for m in scores["raw"][0]
    }
    diagnosis = (
        f"Why smoothing can or cannot help here: segments per video, true {np.mean(segment_counts['truth']):.2f}, "
        f"raw {np.mean(segment_counts['raw']):.2f}, smoothed {np.mean(segment_counts['smoothed']):.2f}; of the "
        f"{wrong_windows} wrong windows, {wrong_in_wrong_clips} ({wrong_in_wrong_clips / max(wrong_windows, 1):.0%}) "
        f"lie in clips whose windows are mostly wrong (no smoothing can right them); the setting chosen on all "
        f"videos, scored on those same videos (in hindsight: an upper bound, not an estimate), differs from raw "
        f"by " + ", ".join(f"{m} {v:+.3f}" for m, v in hindsight_gain.items())
    )
    console.print(diagnosis, highlight=False)
    settings = ", ".join(f"fold {k}: {s.record()}" for k, s in chosen.items())
    summary = (
        f"{len(timelines)} videos ({sum(t[4] for t in timelines) / 60:.1f} min) of benchmarks/real's held-out "
        f"families, {args.sources_per_video} sources each, a probe per fold of {args.folds} by family; window "
        f"{window:g} s, stride {stride:g} s; scored every {TRUTH_STEP:g} s; smoothing chosen on the other folds' "
        f"videos ({settings}); chosen on all videos: {overall['smoothing']}"
    )
    console.print(summary, highlight=False)
    if args.append_results:
        with open(args.append_results, "a") as fh:
            command = " ".join(["python benchmarks/timeline.py", *sys.argv[1:]])
            fh.write(
                f"\n## Timelines raw and smoothed (`benchmarks/timeline.py --quality`, issue 51) — "
                f"{datetime.date.today()}\n\n`{command}`. {summary}.\n\n" + "\n".join(lines) + f"\n\n{diagnosis}.\n"
            )


if __name__ == "__main__":
    main()
