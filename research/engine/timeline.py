"""A timeline of a long video: one prediction per window, windows of one class merged into segments.

    python evaluate.py --classifier runs/demo/classifier.pt --predict LONG.mp4 --window 10 --stride 5

The classifier was trained on T frames spread over a clip (its ``frames``); a window of ``W`` seconds gets
T frames too, at a regular step ``W / T`` that is shared by every window:

- one grid of sample times over the whole video, ``(j + 0.5) * W / T`` seconds (the centre of each step),
  each read at the frame shown at that time (``floor(t * fps)``);
- window ``i`` holds the T grid frames from ``round(i * stride / step)``: its start is snapped to the grid
  (at most half a step off) and overlapping windows share their frames. Where the windows of ``stride``
  leave a tail uncovered, one more window ends at the last grid frame, so every second is in a window;
- ONE decode per video, through the keyframe plan (``research.video.plan``: only the groups of pictures
  holding grid frames), each grid frame through the CNN once (``research.features.frames.FrameBatcher``),
  then each window's ``[T, D]`` sequence (its scales averaged for a multi-scale classifier) classified.

So decoding and the CNN cost what ``duration * T / W`` frames cost, whatever the overlap, and the
classifier runs once per window: the cost grows with the number of windows, never windows x length.
Frames stream from the decoder to the CNN in batches; only the features (``[frames, D]``) are kept.

Each window carries what ``--predict`` gives a file: its familiarity (``research.engine.familiarity``: the
classifier's scorer on the mean of the window's single-scale frame features, as a file's is on the mean of
its frames), the band temperature that familiarity picks where the classifier ships familiarity bands (the
same ``classify(features, familiarity)`` as ``--predict``), and, where the classifier carries an accept rule
(``{threshold}``), ``accept`` or ``review``: its top probability reaches the threshold or not.

Segments: the windows' classes are smoothed first (``research.engine.smoothing``: a sticky HMM over the
calibrated window probabilities, then a minimum segment length; settings in seconds, from the command, else
the classifier file, else the module's default), then consecutive windows of one class are merged. A
boundary between two windows of different classes lies halfway between their centres (each window speaks
for the time around its centre); the first segment starts at 0, the last ends at the video's end. A
segment's probability is the mean, over its windows, of their probability of its class. The raw segments
(each window's own top class, merged) are kept beside them.

Outputs in ``out_dir``: ``timeline.csv`` (video, start, end, p_<class>..., top_class, top_probability,
familiarity, band, accept, class: the smoothed class), ``segments.csv`` (the smoothed segments: video,
start, end, class, mean_probability, windows, mean_familiarity, review_windows, error), ``segments_raw.csv``
(the same columns, unsmoothed) and ``timeline.png`` (one strip per video: the smoothed and the raw segments
coloured by class over time, each class's probability traced above them).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from research import tracking
from research.config import EvalConfig, to_flat_dict
from research.engine.accept import ACCEPT, decide
from research.engine.familiarity import Familiarity, band_of
from research.engine.predictions import Video
from research.engine.smoothing import NONE, Smoothing, smooth, stride_of
from research.errors import UserError, ensure_dir
from research.features.frames import FrameBatcher, auto_batch_size, multiscale_features
from research.features.settings import FeatureSettings, view_pixels
from research.files import write_text_atomic
from research.video.decode import VideoDecodeError, open_video, probe_index, to_rgb
from research.video.plan import PacketIndex, PlanMismatch, decode_segments, make_plan

log = logging.getLogger(__name__)

WINDOWS_FILE, SEGMENTS_FILE, RAW_SEGMENTS_FILE = "timeline.csv", "segments.csv", "segments_raw.csv"
PLOT_FILE = "timeline.png"
CHUNK_FRAMES = 256  # decoded frames held at once before they go through the CNN (then only features are kept)
CLASSIFY_BATCH = 256  # windows per classifier call


# ------------------------------------------------------------------ the grid


@dataclass(frozen=True)
class WindowPlan:
    """Where a video is sampled and which sampled frames each window holds."""

    step: float  # seconds between sampled frames (window / frames)
    frame_numbers: np.ndarray  # int64 [F]: the frame read for each grid time
    offsets: np.ndarray  # int64 [N]: window i holds grid rows offsets[i] .. offsets[i] + frames - 1
    frames: int  # T per window
    duration: float

    @property
    def starts(self) -> np.ndarray:
        return self.offsets * self.step

    @property
    def ends(self) -> np.ndarray:
        return (self.offsets + self.frames) * self.step

    @property
    def rows(self) -> np.ndarray:
        """``[N, T]`` grid rows of each window."""
        return self.offsets[:, None] + np.arange(self.frames)[None, :]


def plan_windows(n_frames: int, fps: float, window: float, stride: float, frames: int) -> WindowPlan:
    """The grid and windows of a video of ``n_frames`` at ``fps`` (see the module docstring).

    Raises ``ValueError`` when the window is longer than the video (no window fits)."""
    duration = n_frames / fps
    step = window / frames
    count = int(np.floor(duration / step + 1e-9))  # grid cells that fit in the video
    if count < frames:
        raise ValueError(f"the window ({window:g} s) is longer than the video ({duration:.2f} s)")
    times = (np.arange(count) + 0.5) * step
    numbers = np.minimum(np.floor(times * fps).astype(np.int64), n_frames - 1)
    last = count - frames  # the last offset a whole window fits at
    offsets = [
        min(round(i * stride / step), last) for i in range(int(np.floor((duration - window) / stride + 1e-9)) + 1)
    ]
    if offsets[-1] < last:  # a tail the stride leaves uncovered: one more window ends at the last grid frame
        offsets.append(last)
    return WindowPlan(step, numbers, np.unique(np.asarray(offsets, np.int64)), frames, duration)


# ---------------------------------------------------------------- features


@dataclass
class Timings:
    """Seconds spent per stage (decode includes the probe; CNN includes moving frames to the device)."""

    decode: float = 0.0
    cnn: float = 0.0
    classify: float = 0.0
    frames: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"decode_s": self.decode, "cnn_s": self.cnn, "classify_s": self.classify, "frames": self.frames}


@dataclass
class _FeatureSink:
    """Takes decoded frames one by one and runs the CNN on every ``CHUNK_FRAMES`` of them."""

    batcher: FrameBatcher
    views: tuple
    rows_of: dict[int, list[int]]  # frame number -> the grid rows that read it
    features: torch.Tensor  # [F, D], NaN until a row's frame is through
    timings: Timings
    pending: list[tuple[int, Any]] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)

    def add(self, number: int, rgb: Any) -> None:
        if number in self.taken:
            return
        self.taken.add(number)
        self.pending.append((number, rgb if isinstance(rgb, tuple) else (rgb,)))
        if len(self.pending) >= CHUNK_FRAMES:
            self.run()

    def run(self, flush: bool = False) -> None:
        began = time.perf_counter()
        if self.pending:
            numbers = [n for n, _ in self.pending]
            stacked = {
                view: torch.from_numpy(np.stack([rgb[k] for _, rgb in self.pending]))
                for k, view in enumerate(self.views)
            }
            self.pending = []
            for done in self.batcher.add({"frames": stacked, "normalized": False, "numbers": numbers}):
                self._store(done.item["numbers"], done.features)
        if flush:
            for done in self.batcher.flush():
                self._store(done.item["numbers"], done.features)
        self.timings.cnn += time.perf_counter() - began

    def _store(self, numbers: list[int], features: torch.Tensor) -> None:
        for k, number in enumerate(numbers):
            self.features[self.rows_of[number]] = features[k]
        self.timings.frames += len(numbers)


def _decode_into(path: Path, index: PacketIndex, wanted: list[int], sizes: Any, sink: _FeatureSink) -> None:
    """Every wanted frame into ``sink``, in one pass: by the keyframe plan, sequentially where it cannot be trusted.

    A plan that fails part-way (``PlanMismatch``) goes on sequentially for the frames not yet taken; a file
    that ends early (truncated) leaves its missing frames out (their windows are dropped by the caller)."""
    if index.problem is None:
        try:
            with av.open(str(path)) as container:
                stream = open_video(container, 0)
                # the frame number of a target is its pts rank (the plan checks every frame against it);
                # the callback hands it on and returns nothing, so decode_segments keeps no pixels
                convert = lambda frame: sink.add(index.ranks[int(frame.pts)], to_rgb(frame, sizes))  # noqa: E731
                decode_segments(container, stream, index, make_plan(index, wanted), convert)
            return
        except (PlanMismatch, av.FFmpegError) as err:
            log.debug("%s: the decode plan failed (%s); decoding the rest sequentially", path, err)
    else:
        log.debug("%s: timestamps cannot be trusted (%s); decoding sequentially", path, index.problem)
    remaining = {k for k in wanted if k not in sink.taken}
    if not remaining:
        return
    last = max(remaining)
    try:
        with av.open(str(path)) as container:
            stream = open_video(container, 0)
            for number, frame in enumerate(container.decode(stream)):
                if number in remaining:
                    sink.add(number, to_rgb(frame, sizes))
                if number >= last:
                    break
    except av.FFmpegError as err:  # a corrupt tail: keep what decoded
        log.warning("%s: decoding stopped early: %s", path, err)


def grid_features(
    path: Path, index: PacketIndex, plan: WindowPlan, settings: FeatureSettings, batcher: FrameBatcher, timings: Timings
) -> torch.Tensor:
    """``[F, D]`` features of the plan's grid frames: one decode, one CNN pass per frame (``index``: the probe's).

    Rows whose frame did not decode (a truncated file) are NaN."""
    began, cnn_before = time.perf_counter(), timings.cnn
    rows_of: dict[int, list[int]] = {}
    for row, number in enumerate(plan.frame_numbers.tolist()):
        rows_of.setdefault(number, []).append(row)
    features = torch.full((len(plan.frame_numbers), settings.feature_dim), float("nan"))
    sink = _FeatureSink(batcher, settings.views, rows_of, features, timings)
    sizes = settings.views if len(settings.views) > 1 else settings.views[0]  # every view from one decode
    _decode_into(path, index, sorted(rows_of), sizes, sink)
    sink.run(flush=True)
    timings.decode += time.perf_counter() - began - (timings.cnn - cnn_before)
    return features


def window_sequences(rows: np.ndarray, features: torch.Tensor, kind: str, scales: tuple[float, ...]) -> torch.Tensor:
    """``[N, L, D]``: the T frame features of each window (``rows``: its grid rows), or (``multi``) their temporal
    scales averaged, as extraction makes a clip's (``research.features.frames.sequences``: the same function,
    applied to the windows at once)."""
    seqs = features[torch.from_numpy(rows)]  # [N, T, D]
    if kind != "multi":
        return seqs
    n, t, d = seqs.shape
    pooled = multiscale_features(seqs.permute(1, 0, 2).reshape(t, n * d), scales)  # per element: the same sums
    return pooled.reshape(-1, n, d).permute(1, 0, 2).contiguous()


def window_familiarity(rows: np.ndarray, features: torch.Tensor, familiarity: Familiarity) -> np.ndarray:
    """``[N]`` each window's familiarity: the scorer on the mean of its T single-scale frame features (what
    ``--predict`` scores for a file: the mean of its frames)."""
    return familiarity.score(features[torch.from_numpy(rows)].double().mean(1).numpy())


def classify_windows(
    plan: WindowPlan,
    features: torch.Tensor,
    kind: str,
    scales: tuple[float, ...],
    classify: Callable[..., np.ndarray],
    timings: Timings,
    familiarity: Familiarity | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``([N, C], [N] or None)``: calibrated probabilities of the plan's windows and their familiarity,
    ``CLASSIFY_BATCH`` windows per call. With a scorer, each window's familiarity goes to ``classify`` (which
    picks its band's temperature where the classifier has bands), as ``--predict`` does for a file."""
    began = time.perf_counter()
    rows = plan.rows
    parts, scores = [], []
    for i in range(0, len(rows), CLASSIFY_BATCH):
        block = rows[i : i + CLASSIFY_BATCH]
        sequences = window_sequences(block, features, kind, scales)
        if familiarity is None:
            parts.append(classify(sequences))
            continue
        scores.append(window_familiarity(block, features, familiarity))
        parts.append(classify(sequences, scores[-1]))
    timings.classify += time.perf_counter() - began
    return np.concatenate(parts).astype(np.float64), np.concatenate(scores) if scores else None


def accept_flags(probs: np.ndarray, rule: dict[str, Any] | None) -> np.ndarray | None:
    """``[N]`` True where a window is accepted by the classifier's accept rule (``decide``, as ``--predict``
    decides a file); no rule: None (no flag)."""
    return None if rule is None else np.array(decide(rule, probs)) == ACCEPT


def merge_segments(
    starts: np.ndarray,
    ends: np.ndarray,
    probs: np.ndarray,
    duration: float,
    path: np.ndarray | None = None,
    familiarity: np.ndarray | None = None,
    accepted: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Runs of windows of one class (``path``, by default each window's top class); boundaries halfway
    between the centres of the two windows either side (the first segment from 0, the last to ``duration``),
    each with its windows' mean probability of its class, their mean familiarity and how many are to review
    (where those are known)."""
    top = probs.argmax(1) if path is None else np.asarray(path)
    centres = (starts + ends) / 2
    segments: list[dict[str, Any]] = []
    first = 0
    for i in range(len(top)):
        if i + 1 < len(top) and top[i + 1] == top[first]:
            continue
        segment = {
            "start": 0.0 if first == 0 else float((centres[first - 1] + centres[first]) / 2),
            "end": float(duration) if i + 1 == len(top) else float((centres[i] + centres[i + 1]) / 2),
            "class_index": int(top[first]),
            "mean_probability": float(probs[first : i + 1, top[first]].mean()),
            "windows": i + 1 - first,
        }
        if familiarity is not None:
            segment["mean_familiarity"] = float(familiarity[first : i + 1].mean())
        if accepted is not None:
            segment["review_windows"] = int((~accepted[first : i + 1]).sum())
        segments.append(segment)
        first = i + 1
    return segments


# ------------------------------------------------------------------ outputs


def window_rows(result: dict[str, Any], classes: list[str]) -> list[dict]:
    """One ``timeline.csv`` row per window: its probabilities and top class (raw), its familiarity, band and
    accept flag (empty where unknown) and its class after smoothing."""
    n = len(result["starts"])
    familiarity, band, accepted = (result.get(k) for k in ("familiarity", "band", "accepted"))
    rows = []
    for i, (start, end, p) in enumerate(zip(result["starts"], result["ends"], result["probabilities"], strict=True)):
        top = int(p.argmax())
        rows.append(
            {"video": result["video"], "start": f"{start:.3f}", "end": f"{end:.3f}"}
            | {f"p_{c}": f"{float(v):.6f}" for c, v in zip(classes, p, strict=True)}
            | {"top_class": classes[top], "top_probability": f"{float(p[top]):.6f}"}
            | {
                "familiarity": "" if familiarity is None else f"{float(familiarity[i]):.4f}",
                "band": "" if band is None else int(band[i]),
                "accept": "" if accepted is None else ("accept" if accepted[i] else "review"),
                "class": classes[int(result["path"][i])] if n else "",
            }
        )
    return rows


WINDOW_EXTRAS = ["familiarity", "band", "accept", "class"]
SEGMENT_COLUMNS = [
    "video",
    "start",
    "end",
    "class",
    "mean_probability",
    "windows",
    "mean_familiarity",
    "review_windows",
    "error",
]


def segment_rows(video: str, segments: list[dict[str, Any]], classes: list[str]) -> list[dict]:
    return [
        {
            "video": video,
            "start": f"{s['start']:.3f}",
            "end": f"{s['end']:.3f}",
            "class": classes[s["class_index"]],
            "mean_probability": f"{s['mean_probability']:.6f}",
            "windows": s["windows"],
            "mean_familiarity": f"{s['mean_familiarity']:.4f}" if "mean_familiarity" in s else "",
            "review_windows": s.get("review_windows", ""),
            "error": "",
        }
        for s in segments
    ]


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_timelines(results: list[dict[str, Any]], classes: list[str], path: Path) -> None:
    """One strip per video: each class's window probability over time (at the window centres) above the
    smoothed segments (upper half of the strip) and the raw ones (lower half), coloured by class."""
    import matplotlib  # heavy (~1 s) and only for this picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if "error" not in r]
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(classes)}
    fig, axes = plt.subplots(
        2 * max(len(shown), 1),
        1,
        figsize=(11, 2.3 * max(len(shown), 1) + 0.4),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1] * max(len(shown), 1)},
    )
    for k, result in enumerate(shown):
        trace, strip = axes[2 * k, 0], axes[2 * k + 1, 0]
        centres = (result["starts"] + result["ends"]) / 2
        for i, c in enumerate(classes):
            trace.plot(centres, result["probabilities"][:, i], color=colours[c], linewidth=1.2, label=c)
        trace.set_ylim(-0.03, 1.03)
        trace.set_xlim(0, result["duration"])
        trace.set_ylabel("probability")
        trace.set_title(Path(result["video"]).name, fontsize=9, loc="left")
        trace.tick_params(labelbottom=False)
        for segments, (low, height) in ((result["segments"], (0.5, 0.5)), (result["raw_segments"], (0, 0.45))):
            for s in segments:
                bar = [(s["start"], s["end"] - s["start"])]
                strip.broken_barh(bar, (low, height), color=colours[classes[s["class_index"]]])
        strip.set_xlim(0, result["duration"])
        strip.set_yticks([0.22, 0.75], ["raw", "smoothed"], fontsize=7)
        strip.set_xlabel("time (s)")
    if shown:
        axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, ncol=len(classes), frameon=False)
    fig.tight_layout()
    ensure_dir(Path(path).parent)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out_dir: Path, results: list[dict[str, Any]], classes: list[str]) -> dict[str, Path]:
    """``timeline.csv``, ``segments.csv`` and ``segments_raw.csv`` (a failed video: one row with its error in
    both) and ``timeline.png``."""
    out_dir = ensure_dir(out_dir)
    windows, segments, raw = [], [], []
    for r in results:
        if "error" in r:
            segments.append({"video": r["video"], "error": r["error"]})
            raw.append({"video": r["video"], "error": r["error"]})
            continue
        windows += window_rows(r, classes)
        segments += segment_rows(r["video"], r["segments"], classes)
        raw += segment_rows(r["video"], r["raw_segments"], classes)
    columns = ["video", "start", "end", *[f"p_{c}" for c in classes], "top_class", "top_probability", *WINDOW_EXTRAS]
    paths = {
        "windows": out_dir / WINDOWS_FILE,
        "segments": out_dir / SEGMENTS_FILE,
        "raw_segments": out_dir / RAW_SEGMENTS_FILE,
        "plot": out_dir / PLOT_FILE,
    }
    write_text_atomic(paths["windows"], _csv(windows, columns))
    write_text_atomic(paths["segments"], _csv(segments, SEGMENT_COLUMNS))
    write_text_atomic(paths["raw_segments"], _csv(raw, SEGMENT_COLUMNS))
    plot_timelines(results, classes, paths["plot"])
    return paths


# ------------------------------------------------------------------ the command


def predict_timelines(
    cfg: EvalConfig,
    videos: list[Video],
    classify: Callable[[torch.Tensor], np.ndarray],
    settings: FeatureSettings,
    kind: str,
    backbones: Any,
    classes: list[str],
    device: torch.device,
    familiarity: Familiarity | None = None,
    bands: dict[str, Any] | None = None,
    accept: dict[str, Any] | None = None,
    smoothing: Smoothing = NONE,
) -> list[dict[str, Any]]:
    """``--predict ... --window W [--stride S]``: each video's windows and segments, written to ``cfg.out_dir``
    and logged as one MLflow run. Every video is probed first: one shorter than the window stops the command
    (``UserError``) before any frame goes through the CNN; an unreadable one gets its error and the rest go on.

    ``familiarity``: the classifier's scorer (each window scored and classified with it, as ``--predict`` does a
    file); ``bands``: its familiarity bands (each window's band is written); ``accept``: its accept rule
    (``{threshold}``); ``smoothing``: how windows are smoothed before segments are cut."""
    assert cfg.window is not None
    window, stride = float(cfg.window), float(cfg.stride if cfg.stride is not None else cfg.window)
    probed: list[tuple[PacketIndex, WindowPlan] | str] = []
    probe_s = 0.0
    for video in videos:
        began = time.perf_counter()
        try:
            info, index = probe_index(video.path)
        except (VideoDecodeError, OSError) as err:
            probed.append(str(err) if isinstance(err, VideoDecodeError) else f"{type(err).__name__}: {err}")
            continue
        finally:
            probe_s += time.perf_counter() - began
        try:
            probed.append((index, plan_windows(info.n_frames, info.fps, window, stride, settings.frames)))
        except ValueError as err:
            raise UserError(f"{video.path}: {err}: give a --window of at most {info.n_frames / info.fps:.2f}") from None
    batch_size = auto_batch_size(device, max(map(view_pixels, settings.views)))
    batcher = FrameBatcher(backbones, settings, device, batch_size, True)
    timings = Timings(decode=probe_s)
    results: list[dict[str, Any]] = []
    for video, item in zip(videos, probed, strict=True):
        shown = video.path.as_posix()
        if isinstance(item, str):
            results.append({"video": shown, "error": item})
            continue
        index, plan = item
        features = grid_features(video.path, index, plan, settings, batcher, timings)
        complete = ~torch.isnan(features).any(1).numpy()
        keep = complete[plan.rows].all(1)
        if not keep.any():
            results.append({"video": shown, "error": "no window's frames could be decoded (corrupt or truncated)"})
            continue
        if not keep.all():
            log.warning("%s: %d of %d windows left out: their frames do not decode", shown, (~keep).sum(), len(keep))
        plan = WindowPlan(plan.step, plan.frame_numbers, plan.offsets[keep], plan.frames, plan.duration)
        probs, scores = classify_windows(plan, features, kind, settings.scales, classify, timings, familiarity)
        starts, ends = plan.starts, plan.ends
        path = smooth(probs, stride_of(starts, window), smoothing)
        accepted = accept_flags(probs, accept)

        results.append(
            {
                "video": shown,
                "video_id": video.video_id,
                "duration": plan.duration,
                "starts": starts,
                "ends": ends,
                "probabilities": probs,
                "familiarity": scores,
                "band": band_of(scores, bands["edges"]) if bands and scores is not None else None,
                "accepted": accepted,
                "path": path,
                "smoothing": smoothing.record(),
                "segments": named(merge_segments(starts, ends, probs, plan.duration, path, scores, accepted), classes),
                "raw_segments": named(
                    merge_segments(starts, ends, probs, plan.duration, None, scores, accepted), classes
                ),
            }
        )
    paths = write_outputs(Path(cfg.out_dir), results, classes)
    summary = timings.as_dict() | {"video_seconds": sum(r.get("duration", 0.0) for r in results)}
    for r in results:
        r["timings"] = summary  # the whole command's, shared: the stages run interleaved over videos
    if cfg.log_mlflow:
        run_id = log_timelines(cfg, results, summary, paths)
        for r in results:
            r["mlflow_run_id"] = run_id
    return results


def named(segments: list[dict[str, Any]], classes: list[str]) -> list[dict[str, Any]]:
    """Each segment with its class's name beside its index."""
    return [s | {"class": classes[s["class_index"]]} for s in segments]


def log_timelines(cfg: EvalConfig, results: list[dict[str, Any]], summary: dict[str, float], paths: dict) -> str:
    """One run named ``timeline-<video>`` (or ``timeline-xN``) in the evaluation's experiment: the config,
    windows, segments and seconds per stage, and the three files."""
    good = [r for r in results if "error" not in r]
    name = f"timeline-{Path(results[0]['video']).stem}" if len(results) == 1 else f"timeline-x{len(results)}"
    tags = {"kind": "timeline", "classifier": cfg.classifier or "", "videos": str(len(results))}
    with tracking.start_run(cfg.experiment, run_name=name, uri=cfg.tracking_uri, tags=tags) as run:
        tracking.log_params(to_flat_dict(cfg))
        video_seconds = summary["video_seconds"]
        tracking.log_metrics(
            {
                "videos_failed": len(results) - len(good),
                "windows": sum(len(r["starts"]) for r in good),
                "segments": sum(len(r["segments"]) for r in good),
                "segments_raw": sum(len(r["raw_segments"]) for r in good),
            }
            | summary
            | (
                {
                    "seconds_per_hour": sum(summary[k] for k in ("decode_s", "cnn_s", "classify_s"))
                    * 3600
                    / video_seconds
                }
                if video_seconds
                else {}
            )
        )
        for path in paths.values():
            tracking.log_artifact(path)
        return run.info.run_id


def segments_table(result: dict[str, Any], limit: int = 20) -> Table:
    """A video's segments for the terminal (the first ``limit``; segments.csv holds them all)."""
    segments = result["segments"]
    title = f"{result['video']}: {len(result['starts'])} windows, {len(segments)} segments"
    table = Table(title=f"{title} ({len(result['raw_segments'])} before smoothing)", box=None)
    for column in ("start", "end", "class", "mean p", "windows"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for s in segments[:limit]:
        table.add_row(
            clock(s["start"]),
            clock(s["end"]),
            s["class"],
            f"{s['mean_probability']:.3f}",
            str(s["windows"]),
        )
    if len(segments) > limit:
        table.add_row("...", "", f"{len(segments) - limit} more in {SEGMENTS_FILE}", "", "")
    return table


def clock(seconds: float) -> str:
    """``h:mm:ss.s`` (``m:ss.s`` under an hour)."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def print_timelines(console: Console, results: list[dict[str, Any]], out_dir: str) -> int:
    """What ``evaluate.py --window`` prints: each video's segments (or its error), where the files are, the
    seconds per stage; exit status 1 when a video could not be read (the others are still in the files)."""
    failed = 0
    for result in results:
        if "error" in result:
            failed += 1
            console.print(f"[bold red]error[/bold red]  {result['video']}: {result['error']}", highlight=False)
            continue
        console.print(segments_table(result))
    t = results[0]["timings"]
    if t["video_seconds"]:
        total = t["decode_s"] + t["cnn_s"] + t["classify_s"]
        console.print(
            f"{t['video_seconds'] / 60:.1f} min of video in {total:.1f} s ({total * 3600 / t['video_seconds']:.0f} s "
            f"per hour: decode {t['decode_s']:.1f} s, CNN {t['cnn_s']:.1f} s on {t['frames']} frames, classify "
            f"{t['classify_s']:.1f} s)",
            highlight=False,
        )
    console.print(
        f"windows: {out_dir}/{WINDOWS_FILE}, segments: {out_dir}/{SEGMENTS_FILE} (unsmoothed: {RAW_SEGMENTS_FILE}), "
        f"strip: {out_dir}/{PLOT_FILE}",
        highlight=False,
    )
    if failed:
        console.print(f"[bold red]{failed} of {len(results)} videos could not be read[/bold red]")
    return 1 if failed else 0
