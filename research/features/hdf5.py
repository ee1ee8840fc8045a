"""The HDF5 feature format, and reading it: attributes decoded, the content digest, summaries.

File layout (seed 000, kept exactly so seed tooling reads our files):

    features    float32 [N, max_frames, D]   gzip 4, one chunk per video (1, max_frames, D)
    labels      int64   [N]
    num_frames  int32   [N]                  length of each feature sequence (73 for multi-scale T=64)
    attrs: num_videos, max_frames, feature_dim, category_mapping (JSON), multi_scale

Added by us: datasets ``video_ids`` (identity: the path under the data root without
extension), ``paths``, ``stamps`` (the input's ``size:mtime_ns`` when read) and
``decoded_frames``; attributes ``backbone``, ``weights``, ``image_size``,
``frames_per_video``, ``scales``, ``sampling``, ``clip_seconds``, ``settings`` (JSON
of everything that determines the numbers) with its ``settings_fingerprint``,
``inputs_fingerprint`` (every input's identity and stamp), ``skipped`` (JSON list of
``{path, reason}``), ``partial`` (videos that decode shorter than their index says) and ``all_finite``.

The jobs around the format each have a module: writing (``research.features.writing``: the crash-safe
writer, extraction's part files and their assembly, the layout), content digests and their records
(``research.features.digests``), copies of stored rows (``research.features.copying``: subsets, merges),
joined files' rules (``research.features.joined``) and the join itself (``research.features.shards``).
This module reads: ``read_attrs``, ``content_fingerprint``, ``summary`` (what ``inspect`` prints) and what a
result records of the features it scored. Every read of a joined file checks its shard files first.

    python -m research.commands.features inspect features/demo/test_features_multiscale.h5
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.digests import recorded_fingerprint, scan_and_record
from research.features.joined import check_joined, virtual_files

KINDS = {"single": "", "multi": "_multiscale"}
# Attributes stored as JSON text (HDF5 has no nested types); read_attrs decodes them.
JSON_ATTRS = (
    "category_mapping",
    "scales",
    "skipped",
    "skipped_ids",
    "partial",
    "sampling_per_subcategory",
    "normalization",
    "parts",
    "settings",
)


def feature_filename(split: str, kind: str) -> str:
    return f"{split}_features{KINDS[kind]}.h5"


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Attributes with JSON fields decoded and numpy scalars made plain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:  # truncated, not HDF5 at all, or unreadable: one line, not h5py's traceback
        raise FeatureFileError(
            f"{path} cannot be read as an HDF5 feature file ({err}): it is damaged or incomplete "
            "(an interrupted copy?); extract it again (extract.py --overwrite)"
        ) from None
    with f:
        check_joined(path, f)
        out = {}
        for key, value in f.attrs.items():
            if isinstance(value, np.generic):
                value = value.item()
            if key in JSON_ATTRS and isinstance(value, str):
                value = json.loads(value)
            out[key] = value
        if "labels" in f:
            out.setdefault("num_videos", int(f["labels"].shape[0]))
    return out


def content_fingerprint(path: str | Path) -> str:
    """A digest of what a file holds (settings, ids, labels, frame counts, features): two files with the
    same digest hold the same data. A checkpoint records it for its train and val files, so a member is
    re-used only while its training data is still the data it was trained on.

    The digest recorded when the file was written (``research.features.digests.record_content``) is returned
    while the file, and the shard files a joined one reads, are unchanged on disk (size, mtime, ctime,
    inode); otherwise the file is read in full and the digest recorded again."""
    path = Path(path)
    recorded = recorded_fingerprint(path)
    if recorded is not None:
        return recorded
    with h5py.File(path, "r") as f:
        check_joined(path, f)  # a shard gone or replaced: refused (HDF5 would read zeros), not digested
        return scan_and_record(path, f, virtual_files(path, f))


def summary(path: str | Path) -> dict[str, Any]:
    """What ``inspect`` prints and ``configuration_analysis.json`` records per file."""
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        nf = f["num_frames"][:]
        labels = f["labels"][:]
        shape = list(f["features"].shape)
        compression = "virtual" if f["features"].is_virtual else f["features"].compression
    mapping = attrs.get("category_mapping", {})
    by_index = {v: k for k, v in mapping.items()}
    return {
        "features_shape": shape,
        "labels_shape": [len(labels)],
        "num_frames": {
            "min": int(nf.min()) if len(nf) else 0,
            "max": int(nf.max()) if len(nf) else 0,
            "mean": float(nf.mean()) if len(nf) else 0.0,
        },
        "feature_dim": attrs.get("feature_dim"),
        "multi_scale": bool(attrs.get("multi_scale")),
        "compression": f"{compression} level {4 if compression == 'gzip' else ''}".strip()
        if compression != "virtual"
        else "virtual: read from its shard files (gzip level 4)",
        "class_counts": {by_index.get(int(c), str(c)): int((labels == c).sum()) for c in np.unique(labels)},
        "attrs": attrs,
    }


def stamps_in_file(path: str | Path) -> dict[str, str]:
    """``{video_id: stamp}`` of every input a file was made from (rows and skipped inputs)."""
    with h5py.File(path, "r") as f:
        ids = [v.decode() for v in f["video_ids"][:]] if "video_ids" in f else []
        stamps = [v.decode() for v in f["stamps"][:]] if "stamps" in f else [""] * len(ids)
        skipped = json.loads(f.attrs.get("skipped_ids", "{}"))
    return dict(zip(ids, stamps, strict=True)) | skipped


# ------------------------------------------------------ what a result was measured on

# The attributes a results table names: what its numbers were measured on.
SUMMARY_KEYS = ("backbone", "image_size", "frames_per_video", "clip_seconds", "multi_scale", "scales")


def feature_summary(path: str | Path) -> dict[str, Any]:
    """What a results file records of the features it scored: the file, its videos and ``SUMMARY_KEYS``."""
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        videos = int(f["labels"].shape[0])
    return {"file": str(path), "videos": videos} | {key: attrs[key] for key in SUMMARY_KEYS if key in attrs}


def summary_caption(summary: dict[str, Any] | None) -> str:
    """A ``feature_summary`` in words, for a table's caption."""
    if not summary:
        return "features not recorded"
    return f"{summary['backbone']} features ({summary['frames_per_video']} frames per clip, {summary['image_size']} px)"
