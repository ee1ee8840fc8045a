"""PyAV decoding, frame sampling strategies and preprocessing.

A video becomes T frame indices (a sampling strategy over an optional clip
window), then decoding that converts to RGB (and resizes, in swscale) only the
frames at those indices. Decoding follows a plan made from the probe's keyframe
index (``research.video.plan``): only the groups of pictures that hold sampled
frames are decoded, and the frames are exactly those of sequential decoding
(which is what runs where a container's timestamps cannot be trusted). Videos shorter than T repeat frames exactly as
the seed's ``np.linspace(0, n - 1, T).astype(int)`` does; the unique frames are
returned once with an index map, so the CNN never sees a duplicate.

Strategies (choose per subcategory in the extract config, as the seed's
preprocessor asked interactively):

- ``uniform``: T frames evenly over the clip window, which starts at the first
  frame (the seed's default; with ``clip_seconds=None`` the window is the video);
- ``center``: the same over a window centred in the video (skips intros/outros);
- ``dense``: T consecutive frames from the centre, at native frame rate (motion
  detail rather than coverage).

Failures raise ``VideoDecodeError`` with a reason; nothing here ever invents a
frame (no black frames in place of unreadable ones).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from research.features.settings import SAMPLING_STRATEGIES, CropView, View
from research.video.plan import PacketIndex, PlanMismatch, decode_segments, make_plan

log = logging.getLogger(__name__)


class VideoDecodeError(RuntimeError):
    """A file that cannot be decoded into frames; the message says why."""


class SegmentOutOfRange(ValueError):
    """An annotated segment that ends after its video: a wrong annotation, not a bad file."""


Segment = tuple[float, float]  # start and end in seconds


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int  # video packets in the container: the decodable frame count
    fps: float
    width: int
    height: int


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 [U, S, S, 3], the unique sampled frames in time order
    index: np.ndarray  # int64 [T], row of ``frames`` for each of the T sampled positions
    frame_numbers: np.ndarray  # int64 [T], the source frame number of each sampled position
    n_frames: int  # frames the video really has (decoded), recorded as the "real count"
    listed_frames: int  # frames the container lists; more than n_frames = a truncated (partial) video
    by_size: dict[int, np.ndarray] = field(default_factory=dict)  # every asked size's frames (frames: the first)

    def expanded(self) -> np.ndarray:
        """The T sampled frames with repeats, as the seed's tensors held them."""
        return self.frames[self.index]


def is_image_demuxer(name: str) -> bool:
    """FFmpeg reads still images through ``image2`` and the ``*_pipe`` demuxers (png_pipe, jpeg_pipe, ...)."""
    return any(n == "image2" or n.endswith("_pipe") for n in name.split(","))


def probe(path: str | Path) -> VideoInfo:
    """Count video packets (demux only, no decoding) and read the stream geometry.

    A still image is refused even under a video's name: FFmpeg would open it and it would be
    stored as one frame repeated T times, a "video" with no time in it.
    """
    return probe_index(path)[0]


def probe_index(path: str | Path) -> tuple[VideoInfo, PacketIndex]:
    """``probe``, keeping each packet's pts and keyframe flag: what a decode plan is made from."""
    try:
        with av.open(str(path)) as container:
            if is_image_demuxer(container.format.name):
                raise VideoDecodeError(f"a still image, not a video (FFmpeg reads it as {container.format.name})")
            if not container.streams.video:
                raise VideoDecodeError("no video stream (audio-only or not a video)")
            stream = container.streams.video[0]
            index = PacketIndex.from_packets(container.demux(stream))
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0
            width, height = stream.codec_context.width, stream.codec_context.height
    except av.FFmpegError as err:
        raise VideoDecodeError(f"cannot open: {err}") from err
    if len(index) == 0:
        raise VideoDecodeError("zero video frames")
    return VideoInfo(len(index), fps, width, height), index


def segment_frames(n_frames: int, fps: float, segment: Segment | None) -> tuple[int, int]:
    """The frame range ``[first, stop)`` of ``segment`` (the whole video without one).

    A segment may end up to one frame after the last (timestamps round); later is ``SegmentOutOfRange``.
    """
    if segment is None:
        return 0, n_frames
    start, end = segment
    first, stop = round(start * fps), round(end * fps)
    if stop > n_frames + 1 or first >= n_frames:
        raise SegmentOutOfRange(f"the segment {start:g}-{end:g} s ends after the video ({n_frames / fps:.2f} s)")
    return first, max(first + 1, min(stop, n_frames))


def sample_indices(
    n_frames: int,
    fps: float,
    num: int,
    strategy: str = "uniform",
    clip_seconds: float | None = None,
    segment: Segment | None = None,
) -> np.ndarray:
    """Frame numbers to sample from a video of ``n_frames`` frames (may repeat when short); with a
    ``segment``, the strategy applies to the segment's frames as if they were the video."""
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; choose from {sorted(SAMPLING_STRATEGIES)}")
    first, stop = segment_frames(n_frames, fps, segment)
    if segment is not None:
        return first + sample_indices(stop - first, fps, num, strategy, clip_seconds)
    if strategy == "dense":
        start = max((n_frames - num) // 2, 0)
        length = min(num, n_frames)
    else:
        length = n_frames if clip_seconds is None else max(1, min(n_frames, round(clip_seconds * fps)))
        start = (n_frames - length) // 2 if strategy == "center" else 0
    return start + np.linspace(0, length - 1, num).astype(np.int64)


Sizes = View | tuple[View, ...]  # one output view, or several from the same decoded frame (fused backbones)
INTERPOLATIONS = {
    "bilinear": "BILINEAR",
    "bicubic": "BICUBIC",
    "nearest": "POINT",
    "area": "AREA",
    "lanczos": "LANCZOS",
}


# swscale threads per conversion: its automatic choice (one per core) starts and joins a pool for every frame,
# which costs more than scaling a frame to a CNN's size (0.60 against 1.09 ms of CPU per frame on the clips of
# benchmarks/real, 2 cores; the pixels are the same); a decoding worker is one core's worth of work already
SWSCALE_THREADS = 1
Scalers = dict[View, VideoReformatter]  # one swscale context per view, kept for a whole video


def _scaled(
    frame: av.VideoFrame, width: int, height: int, interpolation: str | None, view: View, scalers: Scalers | None
) -> np.ndarray:
    """``frame`` as RGB at ``width`` x ``height``, by the view's swscale context in ``scalers`` (made on first use:
    re-using it spares its set-up on every frame, 0.40 against 0.60 ms of CPU per frame; the same pixels)."""
    scaler = None if scalers is None else scalers.get(view)
    if scaler is None:
        scaler = VideoReformatter()
        if scalers is not None:
            scalers[view] = scaler
    rgb = scaler.reformat(frame, width, height, "rgb24", interpolation=interpolation, threads=SWSCALE_THREADS)
    return rgb.to_ndarray()


def _cropped(frame: av.VideoFrame, view: CropView, scalers: Scalers | None) -> np.ndarray:
    short = round(view.size / view.crop_pct)
    scale = short / min(frame.width, frame.height)
    width, height = max(view.size, round(frame.width * scale)), max(view.size, round(frame.height * scale))
    method = INTERPOLATIONS.get(view.interpolation.lower(), "BILINEAR")
    rgb = _scaled(frame, width, height, method, view, scalers)
    top, left = (height - view.size) // 2, (width - view.size) // 2
    return np.ascontiguousarray(rgb[top : top + view.size, left : left + view.size])


def to_rgb(frame: av.VideoFrame, size: Sizes, scalers: Scalers | None = None) -> Any:
    """RGB at each asked view (swscale), a tuple of them when several are asked for.

    ``scalers``: the swscale contexts of the video's earlier frames (filled here), so the frames of one
    video share them; without it, every call makes its own."""
    if isinstance(size, tuple):
        return tuple(to_rgb(frame, s, scalers) for s in size)
    if isinstance(size, CropView):
        return _rotated(frame, _cropped(frame, size, scalers))
    return _rotated(frame, _scaled(frame, size, size, None, size, scalers))  # None: swscale's bilinear


def _rotated(frame: av.VideoFrame, rgb: np.ndarray) -> np.ndarray:
    rotation = getattr(frame, "rotation", 0) or 0
    if rotation % 360:  # display-matrix rotation (phones): counter-clockwise degrees
        rgb = np.ascontiguousarray(np.rot90(rgb, k=round(rotation / 90) % 4))
    return rgb


def open_video(container: av.container.InputContainer, threads: int) -> av.VideoStream:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads in the decoder
    stream.codec_context.thread_count = threads
    return stream


def _decode_selected(
    path: str | Path, wanted: np.ndarray, size: Sizes, threads: int, index: PacketIndex | None = None
) -> tuple[dict[int, Any], int]:
    """RGB conversion only for wanted frame numbers. Returns (frames, frames decoded).

    With a trustworthy ``index``, only the groups of pictures holding wanted frames are decoded
    (``research.video.plan``); the frames are those sequential decoding gives, and where the
    file does not decode as its index says, it is decoded sequentially instead.
    """
    if index is not None and index.problem is not None:
        log.debug("%s: timestamps cannot be trusted (%s); decoding sequentially", path, index.problem)
    elif index is not None:
        segments = make_plan(index, wanted.tolist())
        try:
            with av.open(str(path)) as container:
                stream = open_video(container, threads)
                scalers: Scalers = {}
                frames = decode_segments(container, stream, index, segments, lambda f: to_rgb(f, size, scalers))
            return frames, len(index)
        except (PlanMismatch, av.FFmpegError) as err:
            log.debug("%s: the decode plan failed (%s); decoding sequentially", path, err)
    return _decode_sequential(path, wanted, size, threads)


def _decode_sequential(path: str | Path, wanted: np.ndarray, size: Sizes, threads: int) -> tuple[dict[int, Any], int]:
    """One pass from the start to the last wanted frame. Returns (frames, frames decoded)."""
    targets = set(int(i) for i in wanted)
    last = max(targets)
    out: dict[int, Any] = {}
    count = 0
    scalers: Scalers = {}
    try:
        with av.open(str(path)) as container:
            stream = open_video(container, threads)
            for count, frame in enumerate(container.decode(stream), start=1):
                if count - 1 in targets:
                    out[count - 1] = to_rgb(frame, size, scalers)
                if count - 1 >= last:
                    break
    except av.FFmpegError as err:  # a corrupt tail: keep what decoded, caller decides
        log.debug("%s: decoding stopped after %d frames: %s", path, count, err)
    return out, count


def decode_video(
    path: str | Path,
    num_frames: int,
    size: Sizes,
    strategy: str = "uniform",
    clip_seconds: float | None = None,
    threads: int = 0,
    plan: bool = True,
    segment: Segment | None = None,
) -> DecodedVideo:
    """Decode ``num_frames`` sampled frames resized to ``size``x``size`` (uint8 RGB), from ``segment``
    (start and end in seconds) when one is given.

    With several sizes (a tuple), every sampled frame is decoded once and resized to each;
    ``by_size`` holds them (``frames`` is the first size's).

    ``plan=False`` decodes sequentially from the start (the same frames; for tests and benchmarks).
    """
    info, packets = probe_index(path)
    listed = info.n_frames
    wanted = sample_indices(info.n_frames, info.fps, num_frames, strategy, clip_seconds, segment)
    frames, decoded = _decode_selected(path, wanted, size, threads, packets if plan else None)
    if len(frames) < len(set(wanted.tolist())):
        # Fewer frames decode than the container lists (truncated file): sample again over
        # the frames that really exist, so no position is left empty or invented.
        real = decoded if decoded < info.n_frames else len(frames)
        if real == 0:
            raise VideoDecodeError("no frame could be decoded (corrupt or truncated)")
        log.warning("%s: only %d of %d frames decode; sampling over those (recorded as partial)", path, real, listed)
        wanted = sample_indices(real, info.fps, num_frames, strategy, clip_seconds, segment)
        frames, decoded = _decode_sequential(path, wanted, size, threads)
        if len(frames) < len(set(wanted.tolist())):
            raise VideoDecodeError(f"frames {sorted(set(wanted.tolist()) - set(frames))} do not decode")
        info = VideoInfo(real, info.fps, info.width, info.height)
    unique = np.array(sorted(frames), dtype=np.int64)
    index = np.searchsorted(unique, wanted)
    sizes = size if isinstance(size, tuple) else (size,)
    rows = [frames[i] if isinstance(size, tuple) else (frames[i],) for i in unique]
    by_size = {s: np.stack([row[k] for row in rows]) for k, s in enumerate(sizes)}
    return DecodedVideo(by_size[sizes[0]], index, wanted, info.n_frames, listed, by_size)


def decode_frames_at(
    path: str | Path, frame_numbers: list[int], size: View, plan: bool = True
) -> dict[int, np.ndarray]:
    """Specific frame numbers (timestamp mode); missing ones are simply absent from the result.

    Planned like ``decode_video``: a frame number the container does not list is absent without
    decoding to the end (a trustworthy index has one frame per packet).
    """
    _, index = probe_index(path)
    if not frame_numbers:
        return {}
    frames, _ = _decode_selected(path, np.asarray(frame_numbers), size, threads=0, index=index if plan else None)
    return frames


def normalize(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` in channels_last memory, ImageNet-normalised.

    Runs wherever ``frames`` lives (on the GPU after a non-blocking copy), so the
    loader ships 4x fewer bytes than float frames would need. On the CPU extraction uses
    ``normalize_batch``, its equal bit for bit.
    """
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # a channels_last view, no copy
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def normalize_batch(
    chunks: list[np.ndarray], mean: tuple[float, ...], std: tuple[float, ...], channels_last: bool
) -> torch.Tensor:
    """``normalize`` of the uint8 ``[B_i, H, W, 3]`` chunks, concatenated, on the CPU in numpy: float32
    ``[sum B_i, 3, H, W]``, contiguous (``channels_last=False``: what ONNX Runtime takes) or channels_last.

    Equal to ``normalize`` bit for bit (the same float32 operations in the same order: /255, -mean, /std),
    at a tenth of its CPU: torch runs elementwise ops on its intra-op (OpenMP) threads, whose spin-waiting
    between ops cost 5-20x the arithmetic itself on this 2-core CPU and took cores from the CNN and the
    decoding workers (benchmarks/RESULTS.md, issue 50). Here each chunk's channel is written by this thread
    straight into its place in the batch: no torch.cat, no layout copy.
    """
    total = sum(len(c) for c in chunks)
    height, width = chunks[0].shape[1:3]
    out = np.empty((total, height, width, 3) if channels_last else (total, 3, height, width), np.float32)
    batch = out.transpose(0, 3, 1, 2) if channels_last else out  # [B, 3, H, W] either way
    row = 0
    for chunk in chunks:
        for c in range(3):  # one channel at a time: its three passes stay in cache
            view = batch[row : row + len(chunk), c]
            np.divide(chunk[..., c], np.float32(255.0), out=view, dtype=np.float32)
            np.subtract(view, np.float32(mean[c]), out=view)
            np.divide(view, np.float32(std[c]), out=view)
        row += len(chunk)
    return torch.from_numpy(batch)
