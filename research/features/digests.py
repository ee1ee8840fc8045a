"""What a feature file holds, digested once and kept beside it.

``ContentDigest`` is fed with what a file holds as it is written (settings fingerprint, ids, labels, frame
counts, then the feature rows in order): every writer (``research.features.writing``, the copies of
``research.features.copying``, the join of ``research.features.shards``) feeds it the rows it writes, so a
file is never read again to be digested. ``record_content`` keeps the digest beside the file with its
identity (``research.files.write_record``: size, mtime, ctime, inode, and those of the files it reads
from); ``recorded_fingerprint`` returns it while they are unchanged, and ``scan_and_record`` reads a file
in full (64 rows at a time) when they are not, and records it again. ``research.features.hdf5.content_fingerprint``
is the public question "what does this file hold", answered through these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.files import identify, read_record, write_record

FINGERPRINT = "content_fingerprint"  # its key in a file's record (research.files.write_record)
_SCAN_ROWS = 64  # rows decompressed at a time by a full scan: a few MB, whatever the file's size


class ContentDigest:
    """``content_fingerprint``'s digest, fed with what a file holds as it is written: its settings
    fingerprint, ids, labels and frame counts first, then its feature rows in order. It also says whether
    every row is finite (the attribute ``all_finite``)."""

    def __init__(
        self, settings_fingerprint: Any, video_ids: Iterable[str] | None, labels: np.ndarray, num_frames: np.ndarray
    ) -> None:
        self._sha = hashlib.sha256(str(settings_fingerprint).encode())
        if video_ids is not None:  # their text, joined by newlines (fed one at a time)
            for k, video_id in enumerate(video_ids):
                self._sha.update((f"\n{video_id}" if k else video_id).encode())
        self._sha.update(np.ascontiguousarray(labels, np.int64).tobytes())
        self._sha.update(np.ascontiguousarray(num_frames, np.int32).tobytes())
        self.all_finite = True
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        """The next feature rows (``[k, max_frames, D]``, zero-padded as stored), in the file's order."""
        rows = np.ascontiguousarray(rows, np.float32)
        self._sha.update(rows.tobytes())
        if self.all_finite and not np.isfinite(rows).all():
            self.all_finite = False
        self.rows += len(rows)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()[:16]


def file_digest(f: h5py.File) -> ContentDigest:
    """The digest of an open file's datasets, as ``ContentDigest`` defines it, read in full."""
    ids = (v.decode() if isinstance(v, bytes) else str(v) for v in f["video_ids"][:]) if "video_ids" in f else None
    digest = ContentDigest(f.attrs.get("settings_fingerprint", ""), ids, f["labels"][:], f["num_frames"][:])
    features = f["features"]
    for start in range(0, features.shape[0], _SCAN_ROWS):
        digest.add(features[start : start + _SCAN_ROWS])
    return digest


def record_content(path: Path, digest: ContentDigest, sources: Sequence[Path] = ()) -> None:
    """Keep the digest of a file this process has just written (``writing``) beside it; ``sources``: the
    files its features are read from (a joined file's shards)."""
    write_record(path, {FINGERPRINT: digest.hexdigest()}, identify(path, sources), fresh=True)


def recorded_fingerprint(path: Path) -> str | None:
    """The digest recorded of ``path`` while it, and the files it reads from, are unchanged on disk; else None."""
    recorded = read_record(path)
    if recorded and isinstance(recorded.get(FINGERPRINT), str):
        return recorded[FINGERPRINT]
    return None


def scan_and_record(path: Path, f: h5py.File, sources: Sequence[Path] = ()) -> str:
    """The digest of the open file ``f`` (at ``path``, reading its features from ``sources``), read in full,
    and recorded beside it unless it, or a source, changed meanwhile or just before (``write_record``)."""
    identity = identify(path, sources)  # before reading: a change meanwhile is not recorded
    digest = file_digest(f)
    write_record(path, {FINGERPRINT: digest.hexdigest()}, identity)  # nor one just before (RACY_NS)
    return digest.hexdigest()


__all__ = ["FINGERPRINT", "ContentDigest", "file_digest", "record_content", "recorded_fingerprint", "scan_and_record"]
