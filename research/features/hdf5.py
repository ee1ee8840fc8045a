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

Each file is read once: every writer here feeds the rows it writes to a ``ContentDigest``, which yields
``content_fingerprint``'s digest (kept beside the file by ``research.files.write_record`` and trusted while
the file, and the shard files a joined one reads, keep their size, mtime, ctime and inode) and the
attribute ``all_finite`` (no NaN or infinity in any row: readers skip their own scan). ``subset`` and
``merge`` copy the stored chunks as they are (one chunk is one clip): decompressed once for the digest,
never compressed again.

    python -m research.commands.features inspect features/demo/test_features_multiscale.h5
    python -m research.commands.features merge OUT.h5 A.h5 B.h5
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import json
import os
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.compat import FEATURE_KEYS, check_compatible
from research.files import identify, read_record, replaced_atomically, settle_mtime, write_record

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


def stamps_in_file(path: str | Path) -> dict[str, str]:
    """``{video_id: stamp}`` of every input a file was made from (rows and skipped inputs)."""
    with h5py.File(path, "r") as f:
        ids = [v.decode() for v in f["video_ids"][:]] if "video_ids" in f else []
        stamps = [v.decode() for v in f["stamps"][:]] if "stamps" in f else [""] * len(ids)
        skipped = json.loads(f.attrs.get("skipped_ids", "{}"))
    return dict(zip(ids, stamps, strict=True)) | skipped


FINGERPRINT = "content_fingerprint"  # its key in a file's record (research.files.write_record)
_SCAN_ROWS = 64  # rows decompressed at a time by a full scan


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


def _file_digest(f: h5py.File) -> ContentDigest:
    """The digest of an open file's datasets, as ``ContentDigest`` defines it, read in full."""
    ids = (v.decode() if isinstance(v, bytes) else str(v) for v in f["video_ids"][:]) if "video_ids" in f else None
    digest = ContentDigest(f.attrs.get("settings_fingerprint", ""), ids, f["labels"][:], f["num_frames"][:])
    features = f["features"]
    for start in range(0, features.shape[0], _SCAN_ROWS):
        digest.add(features[start : start + _SCAN_ROWS])
    return digest


def _virtual_files(path: Path, f: h5py.File) -> list[Path]:
    """The files a (virtual) features dataset reads its rows from; none for one stored in the file."""
    features = f["features"]
    if not features.is_virtual:
        return []
    names = dict.fromkeys(source.file_name for source in features.virtual_sources())
    return [path.parent / name for name in names]


def record_content(path: Path, digest: ContentDigest, sources: Sequence[Path] = ()) -> None:
    """Keep the digest of a file this process has just written (``writing``) beside it; ``sources``: the
    files its features are read from (a joined file's shards)."""
    write_record(path, {FINGERPRINT: digest.hexdigest()}, identify(path, sources), fresh=True)


def content_fingerprint(path: str | Path) -> str:
    """A digest of what a file holds (settings, ids, labels, frame counts, features): two files with the
    same digest hold the same data. A checkpoint records it for its train and val files, so a member is
    re-used only while its training data is still the data it was trained on.

    The digest recorded when the file was written (``record_content``) is returned while the file, and the
    shard files a joined one reads, are unchanged on disk (size, mtime, ctime, inode); otherwise the
    file is read in full and the digest recorded again."""
    path = Path(path)
    recorded = read_record(path)
    if recorded and isinstance(recorded.get(FINGERPRINT), str):
        return recorded[FINGERPRINT]
    with h5py.File(path, "r") as f:
        check_joined(path, f)  # a shard gone or replaced: refused (HDF5 would read zeros), not digested
        identity = identify(path, _virtual_files(path, f))  # before reading: a change meanwhile is not recorded
        digest = _file_digest(f)
    write_record(path, {FINGERPRINT: digest.hexdigest()}, identity)  # nor one just before (RACY_NS)
    return digest.hexdigest()


# ------------------------------------------------------------ copying rows as stored


def _one_clip_deflate(ds: h5py.Dataset) -> bool:
    """Stored one clip per chunk, compressed with deflate alone: a chunk is a row, ``zlib`` decodes it."""
    if ds.is_virtual or ds.chunks != (1, *ds.shape[1:]) or ds.compression != "gzip":
        return False
    return ds.id.get_create_plist().get_nfilters() == 1  # no shuffle, checksum or scale-offset besides


def _decoded_chunk(ds: h5py.Dataset, chunk: bytes, mask: int) -> np.ndarray:
    size = int(np.prod(ds.chunks)) * ds.dtype.itemsize
    raw = chunk if mask & 1 else zlib.decompress(chunk, bufsize=size)  # bit 0 set: deflate skipped for it
    return np.frombuffer(raw, ds.dtype).reshape(ds.chunks)


def _stored_blocks(
    path: Path, features: h5py.Dataset, files: contextlib.ExitStack
) -> list[tuple[int, int, h5py.Dataset]] | None:
    """``(first row, end, dataset)`` of each block of ``features`` rows stored together: the dataset itself,
    or for a virtual one (a join of shards) each whole shard file's rows, opened in ``files``. None when
    a virtual mapping is not whole rows of one whole dataset (h5py then reads it row by row)."""
    if not features.is_virtual:
        return [(0, features.shape[0], features)]
    blocks = []
    for source in features.virtual_sources():
        (start, *rest), (last, *rest_end) = source.vspace.get_select_bounds()
        if source.src_space.get_select_type() != h5py.h5s.SEL_ALL or [*rest, *rest_end] != [0, 0] + [
            n - 1 for n in features.shape[1:]
        ]:
            return None
        stored = files.enter_context(h5py.File(path.parent / source.file_name, "r"))[source.dset_name]
        if stored.shape != (last - start + 1, *features.shape[1:]):
            return None
        blocks.append((start, last + 1, stored))
    return sorted(blocks, key=lambda block: block[0])


def copy_features(
    path: Path,
    features: h5py.Dataset,
    rows: Sequence[int],
    digest: ContentDigest,
    target: h5py.Dataset | None = None,
    offset: int = 0,
) -> None:
    """Feed ``rows`` of ``features`` (of the file ``path``) to ``digest`` in order and, with ``target``,
    write them there from row ``offset``. A row stored as one deflated chunk like ``target``'s is copied as
    it is (``read_direct_chunk`` / ``write_direct_chunk``) and inflated once for the digest, never
    compressed again; one stored otherwise (other chunks or filters) is read and written by h5py."""
    same = target is None or (
        _one_clip_deflate(target) and features.shape[1:] == target.shape[1:] and features.dtype == target.dtype
    )
    with contextlib.ExitStack() as files:
        blocks = (_stored_blocks(path, features, files) if same else None) or []
        starts = [block[0] for block in blocks]
        direct = [  # per block: its chunks can be copied as they are (and inflated by zlib)
            _one_clip_deflate(stored)
            and stored.dtype == features.dtype
            and (target is None or stored.compression_opts == target.compression_opts)
            for _, _, stored in blocks
        ]
        for k, i in enumerate(rows):
            row = None
            b = bisect.bisect_right(starts, i) - 1
            if b >= 0 and direct[b] and i < blocks[b][1]:
                row = _direct_row(blocks[b][2], i - blocks[b][0], target, offset + k)
            if row is None:  # another layout: decoded by h5py (and encoded again for target)
                row = features[i : i + 1]
                if target is not None:
                    target[offset + k] = row[0]
            digest.add(row)


def _direct_row(stored: h5py.Dataset, i: int, target: h5py.Dataset | None, at: int) -> np.ndarray | None:
    """Row ``i`` of ``stored`` copied as its stored chunk into row ``at`` of ``target`` (when given) and
    decoded; None when the chunk was never written (its rows read as the fill value)."""
    try:
        mask, chunk = stored.id.read_direct_chunk((i, 0, 0))
    except (OSError, KeyError, RuntimeError, ValueError):
        return None
    if target is not None:
        target.id.write_direct_chunk((at, 0, 0), chunk, mask)
    return _decoded_chunk(stored, chunk, mask)


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


ROW_COLUMNS = ("labels", "num_frames", "decoded_frames", "video_ids", "paths", "stamps")  # one value per row


def _copy_rows(output: Path, sources: list[tuple[Path, list[int] | None]]) -> int:
    """Write the chosen rows (None = all) of each source into ``output``, attributes from the first.

    Features are copied as their stored chunks where the layouts agree (``copy_features``), and their digest
    and finiteness recorded from the rows as they are copied."""
    with h5py.File(sources[0][0], "r") as first:
        attrs, max_frames, dim = dict(first.attrs), first["features"].shape[1], first["features"].shape[2]
    picks: list[np.ndarray] = []
    columns: list[dict[str, np.ndarray]] = []  # per source: the chosen rows' values of the columns it has
    for path, rows in sources:
        with h5py.File(path, "r") as f:
            check_joined(path, f)  # a joined file whose shard is gone or replaced would read zeros
            chosen = np.arange(f["labels"].shape[0]) if rows is None else np.asarray(rows, np.int64)
            picks.append(chosen)
            columns.append({name: f[name][:][chosen] for name in ROW_COLUMNS if name in f and len(chosen)})
    total = sum(len(chosen) for chosen in picks)

    def column(name: str, missing: Any) -> list | np.ndarray:  # as the output reads: absent values filled
        return np.concatenate(
            [c[name] if name in c else np.full(len(p), missing) for c, p in zip(columns, picks, strict=True)]
        )

    ids = [v.decode() if isinstance(v, bytes) else str(v) for v in column("video_ids", "")] if total else []
    digest = ContentDigest(attrs.get("settings_fingerprint", ""), ids, column("labels", 0), column("num_frames", 0))
    with writing(output) as out:
        ds = create_layout(out, total, max_frames, dim)
        out.attrs.update(attrs)
        offset, skipped = 0, []
        for (path, rows), chosen, values in zip(sources, picks, columns, strict=True):
            n = len(chosen)
            with h5py.File(path, "r") as f:
                copy_features(path, f["features"], chosen.tolist(), digest, ds["features"], offset)
                if rows is None:
                    skipped.extend(json.loads(f.attrs.get("skipped", "[]")))
            for name, value in values.items():
                ds[name][offset : offset + n] = value
            offset += n
        out.attrs.update({"num_videos": offset, "skipped": json.dumps(skipped), "num_skipped": len(skipped)})
        out.attrs["all_finite"] = digest.all_finite
    record_content(output, digest)
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
