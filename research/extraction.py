"""``extract(cfg)``: videos -> sampled frames -> frozen CNN -> scales -> HDF5 files.

The pipeline, per split:

1. scan ``ROOT/{split}/{category}/[{subcategory}/]*`` (or the seed's
   ``processed_data.pt`` folders) into an ordered list of entries;
2. a ``DataLoader`` whose workers decode whole videos (``research.video``) while
   the main process runs the CNN, so decoding overlaps compute;
3. frames from consecutive videos are packed into full CNN batches; each frame
   goes through the CNN once, even when the seed's sampling repeats it;
4. per video, the single-scale sequence ``[T, D]`` and the seed's multi-scale
   sequence (``multiscale_features``, ``[73, D]`` for T=64) come from that one pass;
5. rows are committed to crash-safe part files and assembled into
   ``{split}_features.h5`` / ``{split}_features_multiscale.h5`` at the end.

An interrupted run resumes from its committed parts; the assembled file equals
an uninterrupted run's (each frame's feature does not depend on its batch:
BatchNorm is in eval mode). Bad inputs are skipped, counted and listed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from research import distributed
from research.backbones import create_backbone, get_spec
from research.config import ExtractConfig
from research.features import PartWriter, Row, assemble, done_indices, feature_filename, read_attrs, summary
from research.video import DecodedVideo, VideoDecodeError, decode_video, normalize

log = logging.getLogger(__name__)

TENSOR_FILE = "processed_data.pt"


# ------------------------------------------------------------------- multi-scale


def scale_indices(num_frames: int, scales: list[float]) -> list[np.ndarray]:
    """The seed's per-scale frame indices: ``linspace(0, T-1, max(int(T*s), 5)).astype(int)``."""
    out = []
    for s in scales:
        if s == 1.0:
            out.append(np.arange(num_frames))
        else:
            out.append(np.linspace(0, num_frames - 1, max(int(num_frames * s), 5)).astype(int))
    return out


def multiscale_length(num_frames: int, scales: list[float]) -> int:
    return max(len(i) for i in scale_indices(num_frames, scales))


def multiscale_features(frame_features: torch.Tensor, scales: list[float]) -> torch.Tensor:
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


@torch.inference_mode()
def video_features(
    path: str | Path,
    backbone: torch.nn.Module,
    frames: int,
    image_size: int,
    scales: list[float] | None,
    sampling: str = "uniform",
    clip_seconds: float | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """One video's feature sequence, exactly as ``extract`` writes it (multi-scale when ``scales``).

    The end-user path (``evaluate.py --predict``): settings come from a checkpoint.
    """
    decoded = decode_video(path, frames, image_size, sampling, clip_seconds)
    device = next(backbone.parameters()).device
    batcher = FrameBatcher(backbone, device, batch_size or auto_batch_size(device, image_size), amp=True)
    item = {"frames": torch.from_numpy(decoded.frames), "normalized": False}
    (done,) = [*batcher.add(item), *batcher.flush()]
    single = done.features[torch.from_numpy(decoded.index)]
    return multiscale_features(single, scales) if scales else single


# ----------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Entry:
    index: int  # global position in the split's sorted list
    path: Path
    relpath: str
    label: int
    subcategory: str
    tensor_item: int | None = None  # row inside a processed_data.pt file

    @property
    def video_id(self) -> str:
        base = self.relpath.rsplit(".", 1)[0] if "." in Path(self.relpath).name else self.relpath
        return base if self.tensor_item is None else f"{base}#{self.tensor_item}"


def category_mapping(data_dir: Path, splits: list[str]) -> dict[str, int]:
    """Category -> index by sorted folder name over all splits (the seed's rule, made split-safe)."""
    names = sorted(
        {
            d.name
            for s in splits
            if (data_dir / s).is_dir()
            for d in (data_dir / s).iterdir()
            if d.is_dir() and not d.name.startswith(".")
        }
    )
    return {name: i for i, name in enumerate(names)}


def scan_split(data_dir: Path, split: str, mapping: dict[str, int]) -> list[Entry]:
    """Every file under each category, sorted; ``processed_data.pt`` folders expand to their rows."""
    entries: list[Entry] = []
    split_dir = data_dir / split
    for category, label in mapping.items():
        cat_dir = split_dir / category
        if not cat_dir.is_dir():
            continue
        tensor_dirs = {p.parent for p in cat_dir.rglob(TENSOR_FILE)}
        for path in sorted(p for p in cat_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(data_dir).as_posix()
            parts = path.relative_to(cat_dir).parts
            sub = parts[0] if len(parts) > 1 else ""
            if path.parent in tensor_dirs:
                if path.name == TENSOR_FILE:
                    data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                    n = (data["videos"] if isinstance(data, dict) else data).shape[0]
                    entries.extend(Entry(0, path, rel, label, sub, tensor_item=i) for i in range(n))
                continue  # metadata.json and other sidecars of a tensor folder
            entries.append(Entry(0, path, rel, label, sub))
    return [dataclasses.replace(e, index=i) for i, e in enumerate(entries)]


class VideoSource(Dataset):
    """Decodes one whole entry per item, in a worker; failures come back as a reason, not an exception."""

    def __init__(self, entries: list[Entry], cfg: ExtractConfig, decoder_threads: int) -> None:
        self.entries, self.cfg, self.threads = entries, cfg, decoder_threads
        self._tensor_cache: tuple[Path, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _tensor_video(self, entry: Entry) -> torch.Tensor:
        if self._tensor_cache is None or self._tensor_cache[0] != entry.path:
            data = torch.load(entry.path, map_location="cpu", weights_only=True)
            self._tensor_cache = (entry.path, data["videos"] if isinstance(data, dict) else data)
        return self._tensor_cache[1][entry.tensor_item].float()

    def __getitem__(self, i: int) -> dict[str, Any]:
        entry = self.entries[i]
        try:
            if entry.tensor_item is not None:
                video = self._tensor_video(entry)  # [T, C, H, W], already ImageNet-normalised (seed 001)
                if video.ndim != 4 or video.shape[1] != 3:
                    raise VideoDecodeError(f"tensor video has shape {list(video.shape)}, expected [T, 3, H, W]")
                t = video.shape[0]
                return {"i": i, "frames": video, "index": torch.arange(t), "n_frames": t, "normalized": True}
            strategy = self.cfg.sampling_per_subcategory.get(entry.subcategory, self.cfg.sampling)
            dec: DecodedVideo = decode_video(
                entry.path, self.cfg.frames, self.cfg.image_size, strategy, self.cfg.clip_seconds, self.threads
            )
            return {
                "i": i,
                "frames": torch.from_numpy(dec.frames),
                "index": torch.from_numpy(dec.index),
                "n_frames": dec.n_frames,
                "normalized": False,
            }
        except Exception as err:
            reason = str(err) if isinstance(err, VideoDecodeError) else f"{type(err).__name__}: {err}"
            return {"i": i, "error": reason}


# ------------------------------------------------------------------ CNN batching


@dataclass
class _Pending:
    item: dict[str, Any]
    features: torch.Tensor  # [U, D], filled as batches come back
    remaining: int


class FrameBatcher:
    """Packs frames of consecutive videos into full CNN batches; yields videos as they complete."""

    def __init__(self, backbone: torch.nn.Module, device: torch.device, batch_size: int, amp: bool) -> None:
        self.backbone, self.device, self.batch_size = backbone, device, batch_size
        self.spec = backbone.spec
        self.memory_format = torch.channels_last if backbone.uses_channels_last else torch.contiguous_format
        self.amp = amp and device.type == "cuda"
        self.queue: deque[tuple[_Pending, int, torch.Tensor]] = deque()  # (video, first row, frames)
        self.buffered = 0
        self.order: deque[_Pending] = deque()
        self.frames_done = 0

    def add(self, item: dict[str, Any]) -> Iterator[_Pending]:
        frames = item["frames"]
        if self.queue and self.queue[-1][2].shape[1:] != frames.shape[1:]:
            yield from self.flush()  # a different frame size or dtype cannot share a batch
        pending = _Pending(item, torch.empty(frames.shape[0], self.spec.feature_dim), frames.shape[0])
        self.order.append(pending)
        self.queue.append((pending, 0, frames))
        self.buffered += frames.shape[0]
        while self.buffered >= self.batch_size:
            self._run(self.batch_size)
        yield from self._completed()

    def flush(self) -> Iterator[_Pending]:
        while self.buffered:
            self._run(min(self.buffered, self.batch_size))
        yield from self._completed()

    def _completed(self) -> Iterator[_Pending]:
        while self.order and self.order[0].remaining == 0:
            yield self.order.popleft()

    def _prepare(self, frames: torch.Tensor, normalized: bool) -> torch.Tensor:
        frames = frames.to(self.device, non_blocking=True)
        x = frames.float() if normalized else normalize(frames, self.spec.mean, self.spec.std)
        return x.contiguous(memory_format=self.memory_format)

    def _run(self, n: int) -> None:
        taken: list[tuple[_Pending, int, int]] = []  # (video, first row, count)
        chunks = []
        need = n
        while need:
            pending, start, frames = self.queue.popleft()
            k = min(need, frames.shape[0])
            chunks.append(self._prepare(frames[:k], pending.item["normalized"]))
            taken.append((pending, start, k))
            if k < frames.shape[0]:
                self.queue.appendleft((pending, start + k, frames[k:]))
            need -= k
        x = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.backbone(x).float().cpu()
        offset = 0
        for pending, start, k in taken:
            pending.features[start : start + k] = out[offset : offset + k]
            pending.remaining -= k
            offset += k
        self.buffered -= n
        self.frames_done += n


# ---------------------------------------------------------------------- driver

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


def _fingerprint(cfg: ExtractConfig, split: str, mapping: dict[str, int]) -> str:
    """Everything that changes the numbers: a resumed run only reuses parts with the same print."""
    keys = (
        "data_dir",
        "backbone",
        "random_weights",
        "frames",
        "image_size",
        "clip_seconds",
        "sampling",
        "sampling_per_subcategory",
        "scales",
        "outputs",
    )
    payload = {k: getattr(cfg, k) for k in keys} | {
        "split": split,
        "mapping": mapping,
        "data_dir": str(Path(cfg.data_dir).resolve()),
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _file_attrs(cfg: ExtractConfig, kind: str, mapping: dict[str, int]) -> dict[str, Any]:
    spec = get_spec(cfg.backbone)
    return {
        "category_mapping": json.dumps(mapping),
        "multi_scale": kind == "multi",
        "backbone": cfg.backbone,
        "weights": "random" if cfg.random_weights else f"{spec.weights_enum}",
        "image_size": cfg.image_size,
        "frames_per_video": cfg.frames,
        "scales": json.dumps(cfg.scales if kind == "multi" else [1.0]),
        "sampling": cfg.sampling,
        "sampling_per_subcategory": json.dumps(cfg.sampling_per_subcategory),
        "clip_seconds": -1.0 if cfg.clip_seconds is None else cfg.clip_seconds,
        "data_dir": str(Path(cfg.data_dir).resolve()),
    }


def _check_existing(path: Path, expected: dict[str, Any]) -> bool:
    """True when ``path`` is a finished file made with the same settings."""
    if not path.is_file():
        return False
    attrs = read_attrs(path)
    for key in ("backbone", "weights", "image_size", "frames_per_video", "multi_scale"):
        if attrs.get(key) != expected[key]:
            from research.cli import UserError

            raise UserError(
                f"{path} exists with {key}={attrs.get(key)!r}, but this run asks for {expected[key]!r}. "
                f"Use another --out-dir, or pass --overwrite to recompute it."
            )
    return True


def is_finished(cfg: ExtractConfig, split: str, mapping: dict[str, int]) -> bool:
    """All of this split's files exist with the same settings (and --overwrite was not asked)."""
    out_dir = Path(cfg.out_dir)
    return not cfg.overwrite and all(
        _check_existing(out_dir / feature_filename(split, kind), _file_attrs(cfg, kind, mapping))
        for kind in cfg.outputs
    )


def _reused(cfg: ExtractConfig, split: str) -> dict[str, Any]:
    files = [Path(cfg.out_dir) / feature_filename(split, kind) for kind in cfg.outputs]
    log.info("%s: %s already extracted, re-using", split, ", ".join(p.name for p in files))
    return {"split": split, "reused": True, "videos": read_attrs(files[0])["num_videos"]}


def extract_split(
    cfg: ExtractConfig,
    split: str,
    backbone: torch.nn.Module,
    device: torch.device,
    mapping: dict[str, int],
    ctx: distributed.Context,
) -> dict[str, Any]:
    """Extract one split (this rank's shard), then assemble the files on rank 0 (``extract`` skips finished splits)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    out_dir = Path(cfg.out_dir)
    targets = {kind: out_dir / feature_filename(split, kind) for kind in cfg.outputs}
    attrs = {kind: _file_attrs(cfg, kind, mapping) for kind in cfg.outputs}
    entries = scan_split(Path(cfg.data_dir), split, mapping)
    work = out_dir / ".work" / f"{split}-{_fingerprint(cfg, split, mapping)}"
    if cfg.overwrite and ctx.is_main and work.exists():
        shutil.rmtree(work)
    distributed.barrier()
    done = done_indices(work)
    todo = [e for e in distributed.shard(entries, ctx) if e.index not in done]
    if done:
        log.info("%s: resuming, %d of %d videos already committed", split, len(done), len(entries))

    writer = PartWriter(work / f"rank{ctx.rank:03d}", cfg.flush_every)
    workers = cfg.num_workers
    loader = DataLoader(
        VideoSource(todo, cfg, decoder_threads=1 if workers else 0),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    batcher = FrameBatcher(backbone, device, cfg.batch_size or auto_batch_size(device, cfg.image_size), cfg.amp)
    multi_scales = cfg.scales
    skipped: list[dict] = []
    start = time.perf_counter()

    def finish(p: _Pending) -> None:
        entry = todo[p.item["i"]]
        single = p.features[p.item["index"]]
        feats = {}
        if "single" in cfg.outputs:
            feats["single"] = single.numpy()
        if "multi" in cfg.outputs:
            feats["multi"] = multiscale_features(single, multi_scales).numpy()
        writer.add(Row(entry.index, entry.video_id, entry.relpath, entry.label, int(p.item["n_frames"]), feats))

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.0f} frames/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not ctx.is_main, transient=False) as progress:
        task = progress.add_task(f"{split} (rank {ctx.rank})" if ctx.distributed else split, total=len(todo), fps=0.0)
        try:
            for item in loader:
                if "error" in item:
                    entry = todo[item["i"]]
                    log.warning("skipping %s: %s", entry.relpath, item["error"])
                    skipped.append({"path": entry.relpath, "reason": item["error"]})
                    writer.skip(entry.index, entry.relpath, item["error"])
                    progress.advance(task)
                    continue
                for p in batcher.add(item):
                    finish(p)
                    progress.update(task, advance=1, fps=batcher.frames_done / (time.perf_counter() - start))
            for p in batcher.flush():
                finish(p)
                progress.update(task, advance=1, fps=batcher.frames_done / (time.perf_counter() - start))
        finally:
            writer.flush()  # finished videos survive Ctrl-C and errors
    elapsed = time.perf_counter() - start

    distributed.barrier()
    result: dict[str, Any] = {
        "split": split,
        "reused": False,
        "frames": batcher.frames_done,
        "seconds": elapsed,
        "frames_per_s": batcher.frames_done / elapsed if elapsed else 0.0,
        "skipped_now": skipped,
    }
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dim = backbone.spec.feature_dim
        for kind in cfg.outputs:
            length = multiscale_length(cfg.frames, cfg.scales) if kind == "multi" else cfg.frames
            if any(e.tensor_item is not None for e in entries):  # seed tensors carry their own T
                length = max(length, _max_tensor_frames(entries, cfg.scales if kind == "multi" else [1.0]))
            n = assemble(work, targets[kind], kind, attrs[kind], dim, length)
            result[f"videos_{kind}"] = n
        result["videos"] = n
        result["skipped"] = read_attrs(targets[cfg.outputs[0]])["num_skipped"]
        shutil.rmtree(work, ignore_errors=True)
        if work.parent.is_dir() and not any(work.parent.iterdir()):
            work.parent.rmdir()
    distributed.barrier()
    return result


def _max_tensor_frames(entries: list[Entry], scales: list[float]) -> int:
    lengths = set()
    for path in {e.path for e in entries if e.tensor_item is not None}:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        lengths.add((data["videos"] if isinstance(data, dict) else data).shape[1])
    return max(multiscale_length(t, scales) for t in lengths)


def write_configuration_analysis(cfg: ExtractConfig, device: torch.device) -> Path:
    """Seed 000's ``configuration_analysis.json``: preprocessing info and per-file statistics."""
    out_dir = Path(cfg.out_dir)
    files = {}
    for split in cfg.splits:
        for kind in cfg.outputs:
            path = out_dir / feature_filename(split, kind)
            if path.is_file():
                info = summary(path)
                info.pop("attrs")
                files[path.name] = info
    spec = get_spec(cfg.backbone)
    doc = {
        "preprocessing_info": {
            "frames_per_video": cfg.frames,
            "image_size": [cfg.image_size, cfg.image_size],
            "processing_mode": "gpu" if device.type == "cuda" else "cpu",
            "clip_duration": cfg.clip_seconds,
            "sampling": cfg.sampling,
            "sampling_per_subcategory": cfg.sampling_per_subcategory,
            "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
        },
        "feature_extraction": {
            "backbone": cfg.backbone,
            "weights": "random" if cfg.random_weights else str(spec.weights_enum),
            "feature_dim": spec.feature_dim,
            "scales": cfg.scales,
        },
        "files": files,
    }
    path = out_dir / "configuration_analysis.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def extract(cfg: ExtractConfig) -> dict[str, Any]:
    """Extract every configured split; returns per-split counts and throughput."""
    from research import tracking
    from research.cli import UserError, banner
    from research.config import to_flat_dict

    ctx = distributed.init("cuda" if distributed.device_for(cfg.device).type == "cuda" else "cpu")
    device = distributed.device_for(cfg.device, ctx)
    if cfg.frame_index:
        from research.timestamps import extract_timestamps

        return extract_timestamps(cfg, device)
    backbone = create_backbone(cfg.backbone, pretrained=not cfg.random_weights, device=device)
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data directory not found: {data_dir}")
    mapping = category_mapping(data_dir, cfg.splits)
    if not mapping:
        raise UserError(
            f"no category folders under {data_dir}/{{{','.join(cfg.splits)}}}/: "
            "expected ROOT/split/category/[subcategory/]video files"
        )
    log.info("backbone %s (%d-d) on %s; classes %s", cfg.backbone, backbone.spec.feature_dim, device, mapping)

    results: dict[str, Any] = {"splits": {}, "mapping": mapping}
    splits = [s for s in cfg.splits if (data_dir / s).is_dir()]
    for missing in sorted(set(cfg.splits) - set(splits)):
        log.warning("no %s/ folder under %s; skipping that split", missing, data_dir)
    pending = [s for s in splits if not is_finished(cfg, s, mapping)]
    for split in splits:
        if split not in pending:
            results["splits"][split] = _reused(cfg, split)
    if not pending:  # nothing to do: no new MLflow run either
        return results
    with tracking.start_run(
        cfg.experiment,
        run_name=f"extract-{cfg.backbone}",
        uri=cfg.tracking_uri,
        tags={"backbone": cfg.backbone, "data_dir": cfg.data_dir},
        enabled=ctx.is_main and cfg.log_mlflow,
    ) as run:
        if run is not None:
            tracking.log_params(to_flat_dict(cfg))
        for split in pending:
            banner(f"extract {split}")
            res = extract_split(cfg, split, backbone, device, mapping, ctx)
            results["splits"][split] = res
            if run is not None:
                tracking.log_metrics(
                    {
                        f"{split}_videos": res["videos"],
                        f"{split}_skipped": res["skipped"],
                        f"{split}_frames_per_s": res["frames_per_s"],
                        f"{split}_seconds": res["seconds"],
                    }
                )
        if ctx.is_main:
            analysis = write_configuration_analysis(cfg, device)
            results["configuration_analysis"] = str(analysis)
            if run is not None:
                import mlflow

                mlflow.log_artifact(str(analysis))
                results["mlflow_run_id"] = run.info.run_id
    return results


__all__ = ["Entry", "FrameBatcher", "extract", "multiscale_features", "scale_indices", "video_features"]
