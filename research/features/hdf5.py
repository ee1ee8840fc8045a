"""The HDF5 feature format: crash-safe streaming writer, attributes, inspect and merge.

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
``{path, reason}``) and ``partial`` (videos that decode shorter than their index says).

Writing is crash-safe: rows are committed in ``.npz`` part files (written to
a temporary name, then renamed), one folder per rank or shard, each row keyed by its
video's identity and stamp. A part is committed by size (``flush_bytes``, ~256 MB), time or
count, and its keys are appended to its folder's ``index.jsonl``, so a resume reads one small
file per folder instead of opening every part. A killed run resumes from its parts, even when videos
were added, removed or replaced in between: ``assemble`` writes the rows of the
inputs as they are NOW, in their sorted order, into this process's ``NAME.h5.<host>.<pid>.tmp`` and
renames it; rows of removed or changed videos are left out. Memory holds a few parts.

A file joined from shards (``research.features.shards``) holds its features as an HDF5 virtual
dataset over the shard files; ``read_attrs`` refuses it when a shard file it reads is gone or
was replaced (HDF5 itself would read zeros).

    python -m research.commands.features inspect features/demo/test_features_multiscale.h5
    python -m research.commands.features merge OUT.h5 A.h5 B.h5
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.compat import FEATURE_KEYS, check_compatible
from research.files import replaced_atomically

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
    with replaced_atomically(target) as tmp, _DiskFullSink(tmp, "w+") as sink:
        f = h5py.File(sink, "w")
        try:
            yield f
        finally:
            f.close()  # never fails on a full disk (see _DiskFullSink)
            if sink.failure is not None:
                raise sink.failure
        sink.flush()


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
    with writing(target) as f:
        ds = create_layout(f, n, length, dim)
        for i, feat in enumerate(features):
            ds["features"][i, : feat.shape[0]] = feat
            ds["num_frames"][i] = feat.shape[0]
            ds["decoded_frames"][i] = feat.shape[0]
        ds["labels"][:] = np.asarray(labels, np.int64)
        ds["video_ids"][:] = ids
        ds["paths"][:] = ids
        ds["stamps"][:] = [""] * n
        f.attrs.update({"skipped": "[]", "num_skipped": 0, "partial": "[]", "num_partial": 0, **attrs})
        f.attrs.update({"num_videos": n, "max_frames": length, "feature_dim": dim})
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
            ds["features"][i, : feat.shape[0]] = feat
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
    return len(rows)


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


def stamps_in_file(path: str | Path) -> dict[str, str]:
    """``{video_id: stamp}`` of every input a file was made from (rows and skipped inputs)."""
    with h5py.File(path, "r") as f:
        ids = [v.decode() for v in f["video_ids"][:]] if "video_ids" in f else []
        stamps = [v.decode() for v in f["stamps"][:]] if "stamps" in f else [""] * len(ids)
        skipped = json.loads(f.attrs.get("skipped_ids", "{}"))
    return dict(zip(ids, stamps, strict=True)) | skipped


def content_fingerprint(path: str | Path) -> str:
    """A digest of what a file holds (settings, ids, labels, frame counts, features, in chunks): two files
    with the same digest hold the same data. A checkpoint records it for its train and val files, so
    a member is re-used only while its training data is still the data it was trained on."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        digest.update(str(f.attrs.get("settings_fingerprint", "")).encode())
        if "video_ids" in f:  # variable-length strings: their bytes, not the object array's pointers
            digest.update("\n".join(v.decode() if isinstance(v, bytes) else str(v) for v in f["video_ids"][:]).encode())
        for name in ("labels", "num_frames"):
            digest.update(np.ascontiguousarray(f[name][:]).tobytes())
        features = f["features"]
        for start in range(0, features.shape[0], 64):
            digest.update(np.ascontiguousarray(features[start : start + 64]).tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------- reading


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


def check_joined(path: Path, f: h5py.File) -> None:
    """A file joined from shards reads its features from them: refuse it when one is gone or is no longer
    the file that was joined (HDF5 would read zeros for a missing one, and a replaced one's numbers)."""
    if "joined_from" not in f.attrs:
        return
    for source in json.loads(f.attrs["joined_from"]):
        shard = path.parent / source["file"]
        how = "run the join again (python -m research.commands.features join), or join with --copy"
        if not shard.is_file():
            raise FeatureFileError(f"{path} reads its features from {shard}, which is missing: {how}")
        with h5py.File(shard, "r") as s:
            now = [str(s.attrs.get(k, "")) for k in ("settings_fingerprint", "inputs_fingerprint")]
        if now != [source["settings_fingerprint"], source["inputs_fingerprint"]]:
            raise FeatureFileError(f"{path} reads its features from {shard}, which has changed since the join: {how}")


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


def merge(output: str | Path, inputs: list[str | Path]) -> int:
    """Concatenate feature files made the same way (``research.features.compat.check_compatible``)."""
    metas = [read_attrs(p) for p in inputs]
    if not metas:
        raise FeatureFileError("nothing to merge")
    ref = metas[0]
    for path, meta in zip(inputs[1:], metas[1:], strict=True):
        check_compatible(ref, meta, str(inputs[0]), str(path), keys=(*FEATURE_KEYS, "max_frames"))
    return _copy_rows(Path(output), [(Path(p), None) for p in inputs])


def subset(source: str | Path, output: str | Path, rows: list[int]) -> int:
    """A new file with the given rows of ``source``, in that order (cross-validation folds)."""
    return _copy_rows(Path(output), [(Path(source), rows)])


def _copy_rows(output: Path, sources: list[tuple[Path, list[int] | None]]) -> int:
    """Write the chosen rows (None = all) of each source into ``output``, attributes from the first."""
    with h5py.File(sources[0][0], "r") as first:
        attrs, max_frames, dim = dict(first.attrs), first["features"].shape[1], first["features"].shape[2]
    counts = []
    for path, rows in sources:
        with h5py.File(path, "r") as f:
            counts.append(f["labels"].shape[0] if rows is None else len(rows))
    with writing(output) as out:
        ds = create_layout(out, sum(counts), max_frames, dim)
        out.attrs.update(attrs)
        offset, skipped = 0, []
        for (path, rows), n in zip(sources, counts, strict=True):
            with h5py.File(path, "r") as f:
                chosen = list(range(n)) if rows is None else rows
                for k, i in enumerate(chosen):
                    ds["features"][offset + k] = f["features"][i]
                for name in ("labels", "num_frames", "decoded_frames", "video_ids", "paths", "stamps"):
                    if name in f and n:
                        ds[name][offset : offset + n] = f[name][:][chosen]
                if rows is None:
                    skipped.extend(json.loads(f.attrs.get("skipped", "[]")))
            offset += n
        out.attrs.update({"num_videos": offset, "skipped": json.dumps(skipped), "num_skipped": len(skipped)})
    return offset


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
