"""Frames for the frozen CNN: one decode -> CNN -> scales path for extraction and ``--predict``.

- ``scale_indices`` / ``multiscale_features``: seed 000's temporal scales (1.0, 0.85,
  1.15 -> 64, 54 and 73 frames for T=64), computed from ONE CNN pass over the T
  sampled frames: the frozen CNN maps each frame independently, so indexing its
  output per scale equals the seed's three passes.
- ``VideoSource``: a dataset that decodes one input per item (in a DataLoader worker)
  as its ``FeatureSettings`` say, turning failures into a reason instead of an exception;
- ``FrameBatcher``: packs frames of consecutive videos into full CNN batches and
  hands back each video as soon as all its frames are through. With several backbones
  (``mobilenet_v2+efficientnet_lite2``) every batch goes through each CNN at that CNN's
  own resolution and normalisation (frames were decoded once, resized once per size) and
  the per-frame features are concatenated in the settings' order.
- ``video_features``: decoded items -> (item, {kind: feature sequence}), in order of
  completion; extraction commits what it yields, ``evaluate.py --predict`` classifies it,
  so a prediction sees exactly the row a feature file holds for the same video.
- ``auto_batch_size``: frames per CNN call when the config leaves it open.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from research.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from research.data.inputs import Entry, load_tensor_file
from research.features.settings import BackbonePart, FeatureSettings, View, scale_length, view_pixels
from research.video.decode import SegmentOutOfRange, VideoDecodeError, decode_video, normalize, normalize_batch

# ------------------------------------------------------------------- multi-scale


def scale_indices(num_frames: int, scales: list[float]) -> list[np.ndarray]:
    """The seed's per-scale frame indices: ``linspace(0, T-1, max(int(T*s), 5)).astype(int)``."""
    out = []
    for s in scales:
        if s == 1.0:
            out.append(np.arange(num_frames))
        else:
            out.append(np.linspace(0, num_frames - 1, scale_length(num_frames, s)).astype(int))
    return out


def multiscale_length(num_frames: int, scales: list[float]) -> int:
    return max(scale_length(num_frames, s) for s in scales)


def multiscale_features(frame_features: torch.Tensor, scales: Iterable[float]) -> torch.Tensor:
    """Seed multi-scale from one CNN pass: index ``[T, D]`` per scale, zero-pad, average.

    Equal to running the CNN on each re-sampled frame sequence (the seed's loop),
    because the frozen CNN maps each frame independently.
    """
    per_scale = [frame_features[torch.from_numpy(idx)] for idx in scale_indices(frame_features.shape[0], scales)]
    length = max(f.shape[0] for f in per_scale)
    padded = torch.zeros(len(per_scale), length, frame_features.shape[1], dtype=frame_features.dtype)
    for i, f in enumerate(per_scale):
        padded[i, : f.shape[0]] = f
    return padded.mean(dim=0)


def renormalize(
    x: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    to_mean: tuple[float, ...],
    to_std: tuple[float, ...],
) -> torch.Tensor:
    """Frames ``[B, 3, H, W]`` normalised with (mean, std) restated with (to_mean, to_std); exact for equal ones."""
    if tuple(mean) == tuple(to_mean) and tuple(std) == tuple(to_std):
        return x

    def column(v: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(v, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)

    return (x * column(std) + column(mean) - column(to_mean)) / column(to_std)


# ---------------------------------------------------------------------- decoding


class VideoSource(Dataset):
    """Decodes one whole entry per item, in a worker; failures come back as a reason, not an exception."""

    def __init__(self, entries: list[Entry], settings: FeatureSettings, decoder_threads: int) -> None:
        self.entries, self.settings, self.threads = entries, settings, decoder_threads
        self._tensor_cache: tuple[Path, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _tensor_video(self, entry: Entry) -> dict[str, Any]:
        if self._tensor_cache is None or self._tensor_cache[0] != entry.path:
            self._tensor_cache = (entry.path, load_tensor_file(entry.path))
        video = self._tensor_cache[1][entry.tensor_item].float()  # [T, C, H, W], ImageNet-normalised (seed 001)
        if video.ndim != 4 or video.shape[1] != 3:
            raise VideoDecodeError(f"tensor video has shape {list(video.shape)}, expected [T, 3, H, W]")
        t = video.shape[0]
        frames = dict.fromkeys(self.settings.views, video)  # used at their own size, whatever is asked
        return {"frames": frames, "index": torch.arange(t), "n_frames": t, "listed_frames": t, "normalized": True}

    def _video(self, entry: Entry) -> dict[str, Any]:
        s = self.settings
        sizes = s.views if len(s.views) > 1 else s.views[0]  # one decode for every view
        strategy = s.sampling_for(entry.subcategory)
        dec = decode_video(entry.path, s.frames, sizes, strategy, s.clip_seconds, self.threads, segment=entry.segment)
        return {
            "frames": {size: torch.from_numpy(f) for size, f in dec.by_size.items()},
            "index": torch.from_numpy(dec.index),
            "n_frames": dec.n_frames,
            "listed_frames": dec.listed_frames,
            "normalized": False,
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        entry = self.entries[i]
        try:
            item = self._tensor_video(entry) if entry.tensor_item is not None else self._video(entry)
            return {"i": i, **item}
        except SegmentOutOfRange as err:  # the annotation is wrong, not the file: the run stops (see extraction)
            return {"i": i, "error": str(err), "fatal": True}
        except Exception as err:
            reason = str(err) if isinstance(err, VideoDecodeError) else f"{type(err).__name__}: {err}"
            return {"i": i, "error": reason}


# ------------------------------------------------------------------ CNN batching

CPU_PIXELS_PER_BATCH = 200_000


def auto_batch_size(device: torch.device, image_size: int) -> int:
    """Frames per CNN call when the config leaves it open.

    On CPU, throughput peaks when a batch's activations fit in cache: on this 2-core
    machine batch 8 at 160 px and batch 4 at 256 px ran 2-3x faster than batch 64
    (benchmarks/RESULTS.md), i.e. about 200k pixels per batch. GPUs want big batches.
    """
    if device.type == "cuda":
        return 128
    return max(1, round(CPU_PIXELS_PER_BATCH / image_size**2))


@dataclass
class PendingVideo:
    item: dict[str, Any]
    features: torch.Tensor  # [U, D], filled as batches come back
    remaining: int


# view (research.features.settings) -> [U, S, S, 3] uint8 (or [U, 3, H, W] normalised tensor input)
Frames = dict[View, torch.Tensor]


BFLOAT16 = "bfloat16 autocast"  # the CNN's precision under amp on a GPU (what a shard file records)


def precision(amp: bool, device: torch.device) -> str:
    """The precision ``FrameBatcher`` runs the CNN in: bfloat16 autocast on a GPU when ``amp``, else float32."""
    return BFLOAT16 if amp and device.type == "cuda" else "float32"


class FrameBatcher:
    """Packs frames of consecutive videos into full CNN batches; yields videos as they complete.

    ``backbones`` line up with ``settings.parts``: each batch runs through every one of them on
    the frames of its part's size, normalised with its part's statistics, and their features
    are concatenated in that order (``[B, sum of D]``).
    """

    def __init__(
        self,
        backbones: torch.nn.Module | list[torch.nn.Module],
        settings: FeatureSettings,
        device: torch.device,
        batch_size: int,
        amp: bool,
    ) -> None:
        self.backbones = list(backbones) if isinstance(backbones, (list, tuple)) else [backbones]
        if len(self.backbones) != len(settings.parts):
            raise ValueError(
                f"{len(self.backbones)} backbones for the {len(settings.parts)} parts of {settings.backbone}"
            )
        self.settings, self.device, self.batch_size = settings, device, batch_size
        self.amp = precision(amp, device) == BFLOAT16
        self.queue: deque[tuple[PendingVideo, int, Frames]] = deque()  # (video, first row, frames per size)
        self.buffered = 0
        self.order: deque[PendingVideo] = deque()
        self.frames_done = 0

    @staticmethod
    def _shape(frames: Frames) -> list[tuple[int, torch.Size, torch.dtype]]:
        return [(size, f.shape[1:], f.dtype) for size, f in sorted(frames.items())]

    def add(self, item: dict[str, Any]) -> Iterator[PendingVideo]:
        frames: Frames = item["frames"]
        if self.queue and self._shape(self.queue[-1][2]) != self._shape(frames):
            yield from self.flush()  # a different frame size or dtype cannot share a batch
        count = next(iter(frames.values())).shape[0]
        pending = PendingVideo(item, torch.empty(count, self.settings.feature_dim), count)
        self.order.append(pending)
        self.queue.append((pending, 0, frames))
        self.buffered += count
        while self.buffered >= self.batch_size:
            self._run(self.batch_size)
        yield from self._completed()

    def flush(self) -> Iterator[PendingVideo]:
        while self.buffered:
            self._run(min(self.buffered, self.batch_size))
        yield from self._completed()

    def _completed(self) -> Iterator[PendingVideo]:
        while self.order and self.order[0].remaining == 0:
            yield self.order.popleft()

    def _prepare(
        self, chunks: list[torch.Tensor], normalized: bool, part: BackbonePart, backbone: torch.nn.Module
    ) -> torch.Tensor:
        """One CNN input ``[B, 3, H, W]`` from the batch's chunks of frames, in the layout ``backbone`` takes."""
        channels_last = getattr(backbone, "uses_channels_last", True)
        if not normalized and self.device.type == "cpu":  # numpy: torch's threads would spin between the ops
            return normalize_batch([c.numpy() for c in chunks], part.mean, part.std, channels_last)
        xs = []
        for frames in chunks:
            frames = frames.to(self.device, non_blocking=True)
            if normalized:  # tensor inputs hold ImageNet-normalised frames (seed 001): restate them in the part's terms
                x = renormalize(frames.float(), IMAGENET_MEAN, IMAGENET_STD, part.mean, part.std)
            else:
                x = normalize(frames, part.mean, part.std)
            xs.append(x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format))
        return torch.cat(xs) if len(xs) > 1 else xs[0]

    def _take(self, n: int) -> tuple[list[tuple[PendingVideo, int, int]], list[Frames]]:
        """The next ``n`` queued frames: which rows of which videos, and their frames per size."""
        taken: list[tuple[PendingVideo, int, int]] = []  # (video, first row, count)
        chunks: list[Frames] = []
        need = n
        while need:
            pending, start, frames = self.queue.popleft()
            count = next(iter(frames.values())).shape[0]
            k = min(need, count)
            chunks.append({size: f[:k] for size, f in frames.items()})
            taken.append((pending, start, k))
            if k < count:
                self.queue.appendleft((pending, start + k, {size: f[k:] for size, f in frames.items()}))
            need -= k
        return taken, chunks

    def _run(self, n: int) -> None:
        taken, chunks = self._take(n)
        outputs = []
        normalized = taken[0][0].item["normalized"]  # one kind per batch: uint8 and float frames never share one
        for part, backbone in zip(self.settings.parts, self.backbones, strict=True):
            x = self._prepare([c[part.view] for c in chunks], normalized, part, backbone)
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                outputs.append(backbone(x).float().cpu())
        out = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]  # [n, sum of D], parts in order
        offset = 0
        for pending, start, k in taken:
            pending.features[start : start + k] = out[offset : offset + k]
            pending.remaining -= k
            offset += k
        self.buffered -= n
        self.frames_done += n


def decode_workers(requested: int | None) -> int:
    """Decoding processes: as asked, or one per core but one (the CNN's), at most 8."""
    return requested if requested is not None else max(1, min(8, (os.cpu_count() or 2) - 1))


def decoded_videos(
    entries: list[Entry], settings: FeatureSettings, num_workers: int | None, pin_memory: bool
) -> DataLoader:
    """``entries`` decoded in order by ``num_workers`` processes (0: in this one), one item per entry."""
    num_workers = decode_workers(num_workers)
    return DataLoader(
        VideoSource(entries, settings, decoder_threads=1 if num_workers else 0),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )


def sequences(done: PendingVideo, settings: FeatureSettings, kinds: Iterable[str]) -> dict[str, torch.Tensor]:
    """A finished video's feature sequence per file kind: the T sampled frames, or their scales averaged."""
    single = done.features[done.item["index"]]
    return {kind: multiscale_features(single, settings.scales) if kind == "multi" else single for kind in kinds}


def video_features(
    items: Iterable[dict[str, Any]], batcher: FrameBatcher, kinds: Iterable[str]
) -> Iterator[tuple[dict[str, Any], dict[str, torch.Tensor] | None]]:
    """Decoded items -> ``(item, {kind: [L, D]})`` as videos finish; ``(item, None)`` for a failed decode.

    The one decode -> CNN -> scales path: extraction writes what it yields, ``--predict`` classifies it.
    """
    kinds = list(kinds)
    for item in items:
        if "error" in item:
            yield item, None
            continue
        for done in batcher.add(item):
            yield done.item, sequences(done, batcher.settings, kinds)
    for done in batcher.flush():
        yield done.item, sequences(done, batcher.settings, kinds)


def entry_features(
    entries: list[Entry],
    settings: FeatureSettings,
    kinds: Iterable[str],
    backbones: torch.nn.Module | list[torch.nn.Module],
    device: torch.device,
    batch_size: int | None = None,
    num_workers: int = 0,
) -> Iterator[tuple[dict[str, Any], dict[str, torch.Tensor] | None]]:
    """``video_features`` over ``entries`` decoded here: what ``--predict`` and tests use."""
    loader = decoded_videos(entries, settings, num_workers, pin_memory=device.type == "cuda")
    batch_size = batch_size or auto_batch_size(device, max(map(view_pixels, settings.views)))
    batcher = FrameBatcher(backbones, settings, device, batch_size, True)
    return video_features(loader, batcher, kinds)
