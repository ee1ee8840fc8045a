"""Writing feature files: crash-safe, streamed, each row's digest taken as it is written.

- ``writing``: an HDF5 file written under this process's temporary name and renamed into place when
  complete; a full disk leaves nothing half-written and never crashes HDF5's close.
- ``create_layout``: the one place the per-video layout (described in ``research.features.hdf5``) is defined;
  ``write_features`` and ``write_frame_features`` write a whole file in one call.
- ``PartWriter``: extraction commits its rows in ``.npz`` part files (written to a temporary name, then
  renamed), one folder per rank or shard, each row keyed by its video's identity and stamp. A part is
  committed by size (``flush_bytes``, ~256 MB), time or count, and its keys are appended to its folder's
  ``index.jsonl``, so a resume reads one small file per folder instead of opening every part.
- ``assemble``: a killed run resumes from its parts, even when videos were added, removed or replaced in
  between: ``assemble`` writes the rows of the inputs as they are NOW, in their sorted order, into this
  process's ``NAME.h5.<host>.<pid>.tmp`` and renames it; rows of removed or changed videos are left out.
  Memory holds a few parts.

Every writer feeds the rows it writes to a ``research.features.digests.ContentDigest`` and records the
file's content digest beside it (``record_content``), with the attribute ``all_finite``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.digests import ContentDigest, record_content
from research.files import replaced_atomically, settle_mtime


class _DiskFullSink(io.FileIO):
    """The file HDF5 writes through: the first failed write is kept, later writes are dropped.

    A full disk met inside HDF5's own close (its metadata flush) leaves a file object that crashes the
    process with a segfault when it is closed again, at the latest at interpreter exit. HDF5 writing
    through this file never sees a failed write, so its close always completes; ``writing`` then raises
    the kept error, and the half-written temporary file is removed.
    """

    failure: OSError | None = None

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self.failure is None:
            try:
                return super().write(data)
            except OSError as err:
                self.failure = err
        return memoryview(data).nbytes


@contextlib.contextmanager
def writing(target: Path) -> Iterator[h5py.File]:
    """An HDF5 file written under this process's temporary name and renamed onto ``target`` when complete.

    On any failure (a full disk included) nothing half-written remains; a full disk is an ``OSError``
    with its errno (``research.files.disk_errors`` turns it into one line), never a crash.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target) as tmp:
        with _DiskFullSink(tmp, "w+") as sink:
            f = h5py.File(sink, "w")
            try:
                yield f
            finally:
                f.close()  # never fails on a full disk (see _DiskFullSink)
                if sink.failure is not None:
                    raise sink.failure
            sink.flush()
        settle_mtime(tmp)  # so that a record of its content made now is never trusted after a change


# ------------------------------------------------------------------ part files


@dataclass
class Row:
    video_id: str  # identity: path under the data root without extension (research.data.inputs)
    stamp: str  # the input file's size:mtime_ns when it was read
    path: str
    label: int
    decoded_frames: int  # frames that really decoded
    listed_frames: int  # frames the container lists; more than decoded = a partial (truncated) video
    features: dict[str, np.ndarray]  # kind -> [L, D] float32


INDEX = "index.jsonl"  # per part folder: one line per committed part, its keys and skips


@dataclass
class PartWriter:
    """Buffers finished rows and skips; commits them atomically as one part file once they hold
    ``flush_bytes`` of features, ``flush_seconds`` have passed or (when set) ``flush_every`` videos are
    buffered, then records the part's keys in the folder's index."""

    folder: Path
    flush_every: int | None = None
    flush_bytes: int = 256 << 20
    flush_seconds: float = 300.0
    rows: list[Row] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # parts being written when a run was killed (``.tmp.npz``: the name versions before this one gave them)
        for stale in [*self.folder.glob("part_*.npz.*.tmp"), *self.folder.glob("part_*.tmp.npz")]:
            stale.unlink()
        # never a name the index already knows: a part removed by hand must not lend its line to a new one
        names = [p.name for p in self.folder.glob("part_*.npz")] + list(_read_index(self.folder))
        self._seq = max((int(n[5:11]) for n in names), default=-1) + 1
        self._bytes, self._since = 0, time.monotonic()

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self._bytes += sum(a.nbytes for a in row.features.values())
        self._maybe_flush()

    def skip(self, video_id: str, stamp: str, path: str, reason: str) -> None:
        self.skips.append({"video_id": video_id, "stamp": stamp, "path": path, "reason": reason})
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        full = self.flush_every is not None and len(self.rows) + len(self.skips) >= self.flush_every
        if full or self._bytes >= self.flush_bytes or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.rows and not self.skips:
            return
        arrays: dict[str, Any] = {
            "video_ids": np.array([r.video_id for r in self.rows], dtype=str),
            "stamps": np.array([r.stamp for r in self.rows], dtype=str),
            "paths": np.array([r.path for r in self.rows], dtype=str),
            "labels": np.array([r.label for r in self.rows], np.int64),
            "decoded_frames": np.array([r.decoded_frames for r in self.rows], np.int32),
            "listed_frames": np.array([r.listed_frames for r in self.rows], np.int32),
            "skips": np.array(json.dumps(self.skips)),
        }
        for kind in self.rows[0].features if self.rows else ():
            arrays[f"features_{kind}"] = np.stack([r.features[kind] for r in self.rows])
        target = self.folder / f"part_{self._seq:06d}.npz"
        with replaced_atomically(target) as tmp, open(tmp, "wb") as fh:  # a part is complete or absent
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        # then its keys into the index: a crash in between leaves a part the index lacks, read in full on resume
        line = {"part": target.name, "keys": [[r.video_id, r.stamp] for r in self.rows], "skips": self.skips}
        with open(self.folder / INDEX, "a") as fh:
            fh.write(json.dumps(line) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._seq += 1
        self.rows, self.skips = [], []
        self._bytes, self._since = 0, time.monotonic()


def _read_index(folder: Path) -> dict[str, dict]:
    """``{part name: its index line}`` of a part folder; a line cut short by a crash is left out."""
    out: dict[str, dict] = {}
    path = folder / INDEX
    if path.is_file():
        for text in path.read_text().splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue  # its part, if committed, is read in full instead
            out[line["part"]] = line  # a later line for the same name is the newer part
    return out


def _part_keys(part: Path) -> dict:
    """A part's index line, read from the part itself (committed, but not yet indexed)."""
    with np.load(part) as z:
        keys = [[str(v), str(s)] for v, s in zip(z["video_ids"], z["stamps"], strict=True)]
        return {"part": part.name, "keys": keys, "skips": json.loads(str(z["skips"]))}


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("part_*.npz") if not p.name.endswith(".tmp.npz"))


@dataclass(frozen=True)
class _Committed:
    part: Path | None  # None: a skip
    row: int
    skip: dict | None = None


def _committed(folder: Path) -> dict[tuple[str, str], _Committed]:
    """Everything committed under ``folder`` (all ranks), keyed by (video_id, stamp): from the part
    folders' indexes, opening only the parts an index lacks."""
    out: dict[tuple[str, str], _Committed] = {}
    indexes: dict[Path, dict[str, dict]] = {}
    for part in _parts(folder):
        if part.parent not in indexes:
            indexes[part.parent] = _read_index(part.parent)
        line = indexes[part.parent].get(part.name) or _part_keys(part)
        keys = [((v, s), _Committed(part, j)) for j, (v, s) in enumerate(line["keys"])]
        keys += [((s["video_id"], s["stamp"]), _Committed(None, -1, s)) for s in line["skips"]]
        for key, where in keys:
            if key in out:
                raise FeatureFileError(f"{folder}: video {key[0]} was committed twice ({out[key].part}, {part})")
            out[key] = where
    return out


def done_videos(folder: Path) -> set[tuple[str, str]]:
    """(video_id, stamp) pairs already committed (rows and skips) under ``folder``, all ranks."""
    return set(_committed(folder))


ROW_COLUMNS = ("labels", "num_frames", "decoded_frames", "video_ids", "paths", "stamps")  # one value per row


def create_layout(
    f: h5py.File, n: int, max_frames: int, feature_dim: int, virtual: h5py.VirtualLayout | None = None
) -> dict[str, h5py.Dataset]:
    """The per-video layout's datasets, sized for ``n`` videos: the one place that layout is defined.

    ``virtual``: the features are that virtual dataset (rows of other files) instead of stored here."""
    if virtual is not None:
        features = f.create_virtual_dataset("features", virtual, fillvalue=0)
    else:
        features = f.create_dataset(
            "features",
            (n, max_frames, feature_dim),
            np.float32,
            chunks=(1, max_frames, feature_dim) if n else None,  # one chunk per video: read one, inflate one
            compression="gzip",
            compression_opts=4,
        )
    out = {"features": features}
    for name, dtype in (("labels", np.int64), ("num_frames", np.int32), ("decoded_frames", np.int32)):
        out[name] = f.create_dataset(name, (n,), dtype)
    for name in ("video_ids", "paths", "stamps"):
        out[name] = f.create_dataset(name, (n,), h5py.string_dtype())
    return out


def write_features(
    target: Path,
    features: list[np.ndarray] | np.ndarray,
    labels: list[int] | np.ndarray,
    attrs: dict[str, Any],
    video_ids: list[str] | None = None,
    max_frames: int | None = None,
) -> Path:
    """A complete feature file in one call, atomically (benchmarks, tests, converted data).

    ``features`` holds one ``[L_i, D]`` array per video; rows are zero-padded to ``max_frames``.
    """
    n = len(features)
    dim = int(attrs.get("feature_dim") or features[0].shape[1])
    length = max_frames or max((f.shape[0] for f in features), default=1)
    ids = video_ids or [f"video_{i:05d}" for i in range(n)]
    lengths = np.array([feat.shape[0] for feat in features], np.int32)
    digest = ContentDigest(attrs.get("settings_fingerprint", ""), ids, np.asarray(labels, np.int64), lengths)
    with writing(target) as f:
        ds = create_layout(f, n, length, dim)
        for i, feat in enumerate(features):
            row = np.zeros((1, length, dim), np.float32)
            row[0, : feat.shape[0]] = feat
            ds["features"][i] = row[0]
            digest.add(row)
        ds["num_frames"][:] = lengths
        ds["decoded_frames"][:] = lengths
        ds["labels"][:] = np.asarray(labels, np.int64)
        ds["video_ids"][:] = ids
        ds["paths"][:] = ids
        ds["stamps"][:] = [""] * n
        f.attrs.update({"skipped": "[]", "num_skipped": 0, "partial": "[]", "num_partial": 0, **attrs})
        f.attrs.update({"num_videos": n, "max_frames": length, "feature_dim": dim, "all_finite": digest.all_finite})
    record_content(target, digest)
    return target


def write_frame_features(
    target: Path, features: np.ndarray, columns: dict[str, np.ndarray], attrs: dict[str, Any]
) -> Path:
    """Timestamp mode's layout (seed 002): ``features [rows, D]`` plus one value per row in each column."""
    with writing(target) as f:
        n, dim = features.shape
        chunks = (min(n, 256), dim) if n else None  # a few hundred rows per chunk: summaries read runs of frames
        f.create_dataset("features", data=features, chunks=chunks, compression="gzip", compression_opts=4)
        for name, values in columns.items():
            if values.dtype.kind in "US":
                f.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(name, data=values)
        f.attrs.update(attrs)
        f.attrs["all_finite"] = bool(np.isfinite(features).all())
    return target


def assemble(
    folder: Path,
    target: Path,
    kind: str,
    attrs: dict[str, Any],
    feature_dim: int,
    max_frames: int,
    order: list[tuple[str, str]],
) -> int:
    """Write the committed rows of ``order`` ((video_id, stamp) pairs) into ``target``, in that order.

    Rows committed for videos that are no longer in ``order``, or whose file changed
    since (another stamp), are left out: the file says what the inputs are now.
    """
    committed = _committed(folder)
    missing = [vid for vid, stamp in order if (vid, stamp) not in committed]
    if missing:
        raise FeatureFileError(f"{folder}: no committed work for {len(missing)} videos, e.g. {missing[:3]}")
    picks = [committed[key] for key in order]
    rows = [p for p in picks if p.part is not None]
    skipped = [p.skip for p in picks if p.skip is not None]
    remaining: dict[Path, int] = {}
    for p in rows:
        remaining[p.part] = remaining.get(p.part, 0) + 1
    digest = _assembled_digest(rows, kind, attrs.get("settings_fingerprint", ""))
    loaded: dict[Path, dict[str, np.ndarray]] = {}  # parts in use; dropped once their last row is written
    partial: list[dict] = []
    with writing(target) as f:
        ds = create_layout(f, len(rows), max_frames, feature_dim)
        for i, p in enumerate(rows):
            if p.part not in loaded:
                with np.load(p.part) as z:
                    loaded[p.part] = {k: z[k] for k in z.files if k in _ROW_ARRAYS or k == f"features_{kind}"}
            z = loaded[p.part]
            feat = z[f"features_{kind}"][p.row]
            row = np.zeros((1, max_frames, feature_dim), np.float32)
            row[0, : feat.shape[0]] = feat
            ds["features"][i] = row[0]
            digest.add(row)
            ds["num_frames"][i] = feat.shape[0]
            for name in ("labels", "decoded_frames", "video_ids", "paths", "stamps"):
                ds[name][i] = z[name][p.row]
            if z["listed_frames"][p.row] > z["decoded_frames"][p.row]:
                partial.append(
                    {
                        "path": str(z["paths"][p.row]),
                        "decoded": int(z["decoded_frames"][p.row]),
                        "listed": int(z["listed_frames"][p.row]),
                    }
                )
            remaining[p.part] -= 1
            if not remaining[p.part]:
                del loaded[p.part]
        skips = [{"path": s["path"], "reason": s["reason"]} for s in skipped]
        ids = {s["video_id"]: s["stamp"] for s in skipped}
        f.attrs.update(attrs | row_attrs(len(rows), max_frames, feature_dim, skips, ids, partial))
        f.attrs["all_finite"] = digest.all_finite
    record_content(target, digest)
    return len(rows)


def _npy_shape(part: Path, name: str) -> tuple[int, ...]:
    """The shape of array ``name`` in an ``.npz`` part, read from its header alone."""
    with zipfile.ZipFile(part) as z, z.open(f"{name}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return tuple(read_header(fh)[0])


def _assembled_digest(rows: list[_Committed], kind: str, settings_fingerprint: Any) -> ContentDigest:
    """The digest of the file ``assemble`` writes of ``rows``, fed with its ids, labels and frame counts
    (read from the parts' small arrays and headers; a part is dropped after its last row), ready for its
    feature rows."""
    remaining: dict[Path, int] = {}
    for p in rows:
        remaining[p.part] = remaining.get(p.part, 0) + 1
    loaded: dict[Path, tuple[np.ndarray, np.ndarray, int]] = {}
    ids, labels, lengths = [], [], []
    for p in rows:
        if p.part not in loaded:
            with np.load(p.part) as z:
                loaded[p.part] = (z["video_ids"], z["labels"], _npy_shape(p.part, f"features_{kind}")[1])
        part_ids, part_labels, length = loaded[p.part]
        ids.append(str(part_ids[p.row]))
        labels.append(int(part_labels[p.row]))
        lengths.append(length)
        remaining[p.part] -= 1
        if not remaining[p.part]:
            del loaded[p.part]
    return ContentDigest(settings_fingerprint, ids, np.array(labels, np.int64), np.array(lengths, np.int32))


def row_attrs(
    n: int, max_frames: int, feature_dim: int, skipped: list[dict], skipped_ids: dict[str, str], partial: list[dict]
) -> dict[str, Any]:
    """The attributes that describe a file's rows: counts, shape, skipped inputs ({path, reason}, and their
    ids and stamps) and partial ones. Written by ``assemble`` and by the join of shards alike."""
    return {
        "num_videos": n,
        "max_frames": max_frames,
        "feature_dim": feature_dim,
        "skipped": json.dumps(skipped),
        "num_skipped": len(skipped),
        "skipped_ids": json.dumps(skipped_ids),
        "partial": json.dumps(partial),
        "num_partial": len(partial),
    }


_ROW_ARRAYS = ("labels", "decoded_frames", "listed_frames", "video_ids", "paths", "stamps")
