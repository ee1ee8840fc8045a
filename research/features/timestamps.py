"""Timestamp mode: one frozen-CNN feature per (video, timestamp) row, as seed 002 (TVSum) needs.

    python extract.py --frame-index frames.csv --data-dir VIDEOS --out-dir FEATURES \
        --backbone mobilenet_v3_large --image-size 224

The frame index is CSV or Parquet with a ``timestamp_sec`` column and either a
``video_path`` column (absolute, or relative to ``--data-dir``) or a ``video_id``
column resolved through ``--video-index`` (``video_id``, ``video_path``, ``fps``),
exactly as seed 002 merges its two tables. Each row is read at frame
``round(timestamp_sec * fps)`` (the seed's alignment fix; ``fps`` from the row, the
index, or the video's own average rate) and gives one feature, in row order.

A row whose frame cannot be read (past the end, unreadable video) is reported in
the log, in the file's ``missing`` attribute and in the manifest; it is never
replaced by a black frame (the seed's notebook did that silently). Output:
``{index}_features.h5`` (``features [found, D]``, ``row``, ``video_ids``,
``timestamps``, ``frame_numbers``) and the seed's ``feature_manifest.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from research import distributed
from research.backbones.loading import create_backbones
from research.config import ExtractConfig
from research.errors import UserError, ensure_dir
from research.features.frames import FrameBatcher, auto_batch_size
from research.features.settings import FeatureSettings, view_pixels
from research.features.writing import write_frame_features
from research.files import disk_errors, folder_lock, write_text_atomic
from research.video.decode import VideoDecodeError, decode_frames_at, probe

log = logging.getLogger(__name__)


def read_table(path: str | Path) -> Any:
    import pandas as pd  # heavy, and only timestamp mode reads CSV/Parquet tables

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frame index not found: {path}")
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def resolve_rows(cfg: ExtractConfig) -> Any:
    """The frame index with ``video_path`` and (maybe) ``fps`` columns filled in, row order kept."""
    frames = read_table(cfg.frame_index).reset_index(drop=True)
    if "timestamp_sec" not in frames:
        raise UserError(f"{cfg.frame_index} has no 'timestamp_sec' column (columns: {list(frames.columns)})")
    if "video_path" not in frames:
        if "video_id" not in frames or not cfg.video_index:
            raise UserError(
                f"{cfg.frame_index} needs a 'video_path' column, or 'video_id' plus --video-index VIDEOS.csv"
            )
        videos = read_table(cfg.video_index)
        keep = [c for c in ("video_id", "video_path", "fps") if c in videos]
        frames = frames.merge(videos[keep], on="video_id", how="left", suffixes=("_row", ""))
        missing = int(frames["video_path"].isna().sum())
        if missing:
            raise UserError(f"{missing} rows of {cfg.frame_index} have a video_id that {cfg.video_index} does not list")
    if "video_id" not in frames:
        frames["video_id"] = frames["video_path"].map(lambda p: Path(str(p)).stem)
    return frames


def extract_timestamps(cfg: ExtractConfig) -> dict[str, Any]:
    """One feature per row of ``cfg.frame_index``; rows that cannot be read are reported, never filled in."""
    if not distributed.context().is_main:  # one process reads rows in order; other ranks have nothing to do
        return {"timestamps": None}
    out_dir = ensure_dir(cfg.out_dir)
    with disk_errors(out_dir), folder_lock(out_dir, "extraction", ".extract.lock"):
        return _extract_timestamps(cfg)


def _extract_timestamps(cfg: ExtractConfig) -> dict[str, Any]:
    device = distributed.device_for(cfg.device)
    rows = resolve_rows(cfg)
    settings = FeatureSettings.from_config(cfg)
    backbones = create_backbones(settings, device=device)
    batch_size = cfg.batch_size or auto_batch_size(device, max(map(view_pixels, settings.views)))
    batcher = FrameBatcher(backbones, settings, device, batch_size, cfg.amp)
    dim = settings.feature_dim
    features = np.zeros((len(rows), dim), np.float32)
    found = np.zeros(len(rows), bool)
    frame_numbers = np.full(len(rows), -1, np.int64)
    missing: list[dict[str, Any]] = []

    for path_value, group in rows.groupby("video_path", sort=False):
        path = Path(str(path_value))
        path = path if path.is_absolute() else Path(cfg.data_dir) / path
        try:
            fps = (
                float(group["fps"].iloc[0])
                if "fps" in group and not np.isnan(group["fps"].iloc[0])
                else probe(path).fps
            )
            wanted = np.round(group["timestamp_sec"].to_numpy(np.float64) * fps).astype(np.int64)
            numbers = sorted(set(wanted[wanted >= 0].tolist()))
            per_size = {view: decode_frames_at(path, numbers, view) for view in settings.views}
            frames = per_size[settings.views[0]]
        except (VideoDecodeError, OSError) as err:
            for r in group.index:
                missing.append(
                    {
                        "row": int(r),
                        "video_id": str(rows.at[r, "video_id"]),
                        "timestamp_sec": float(rows.at[r, "timestamp_sec"]),
                        "reason": str(err),
                    }
                )
            continue
        available = sorted(frames)
        if available:
            stacked = {size: torch.from_numpy(np.stack([f[i] for i in available])) for size, f in per_size.items()}
            item = {"frames": stacked, "normalized": False}
            (done,) = [*batcher.add(item), *batcher.flush()]
            by_frame = {f: done.features[k].numpy() for k, f in enumerate(available)}
        else:
            by_frame = {}
        for r, frame in zip(group.index, wanted, strict=True):
            frame_numbers[r] = frame
            if int(frame) in by_frame:
                features[r], found[r] = by_frame[int(frame)], True
            else:
                missing.append(
                    {
                        "row": int(r),
                        "video_id": str(rows.at[r, "video_id"]),
                        "timestamp_sec": float(rows.at[r, "timestamp_sec"]),
                        "reason": f"frame {int(frame)} could not be read (past the end of the video, or undecodable)",
                    }
                )
    for m in missing:
        log.warning("row %d (%s @ %.3f s): %s", m["row"], m["video_id"], m["timestamp_sec"], m["reason"])
    return _write(cfg, settings, rows, features, found, frame_numbers, sorted(missing, key=lambda m: m["row"]))


def _write(
    cfg: ExtractConfig,
    settings: FeatureSettings,
    rows: Any,
    features: np.ndarray,
    found: np.ndarray,
    frame_numbers: np.ndarray,
    missing: list[dict],
) -> dict[str, Any]:
    out_dir = ensure_dir(cfg.out_dir)
    weights, dim = settings.weights, settings.feature_dim
    target = out_dir / f"{Path(cfg.frame_index).stem}_features.h5"
    keep = np.flatnonzero(found)
    write_frame_features(
        target,
        features[keep],
        {
            "row": keep.astype(np.int64),
            "video_ids": rows["video_id"].astype(str).to_numpy()[keep],
            "timestamps": rows["timestamp_sec"].to_numpy(np.float64)[keep],
            "frame_numbers": frame_numbers[keep],
        },
        {
            "backbone": settings.backbone,
            "weights": weights,
            "feature_dim": dim,
            "image_size": settings.image_size,
            "total_rows": len(rows),
            "total_frames": len(keep),
            "order": "frame_index_rows",
            "all_rows_found": not missing,
            "missing": json.dumps(missing),
            "frame_index": str(Path(cfg.frame_index).resolve()),
        },
    )
    manifest = {
        "backbone": settings.backbone,
        "weights": weights,
        "feature_dim": dim,
        "total_frames": len(keep),
        "total_rows": len(rows),
        "alignment_verified": not missing,
        "order": "sequential_per_frame_index",
        "features_file": target.name,
        "missing_rows": missing,
    }
    write_text_atomic(out_dir / "feature_manifest.json", json.dumps(manifest, indent=2))
    log.info("%d of %d rows -> %s (%d missing)", len(keep), len(rows), target, len(missing))
    return {"timestamps": str(target), "rows": len(rows), "found": len(keep), "missing": missing}
