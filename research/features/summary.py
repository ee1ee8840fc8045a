"""What a results file (cv.json, ablation.json, models.json) records of the features it scored, and
how a RESULTS.md caption names them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from research.features.hdf5 import read_attrs

# The attributes a results table names: what its numbers were measured on.
SUMMARY_KEYS = ("backbone", "image_size", "frames_per_video", "clip_seconds", "multi_scale", "scales")


def feature_summary(path: str | Path) -> dict[str, Any]:
    """What a results file records of the features it scored: the file, its videos and ``SUMMARY_KEYS``."""
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        videos = int(f["labels"].shape[0])
    return {"file": str(path), "videos": videos} | {key: attrs[key] for key in SUMMARY_KEYS if key in attrs}


def describe(summary: dict[str, Any] | None) -> str:
    """A ``feature_summary`` in words, for a table's caption."""
    if not summary:
        return "features not recorded"
    return f"{summary['backbone']} features ({summary['frames_per_video']} frames per clip, {summary['image_size']} px)"
