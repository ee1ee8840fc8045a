"""Rows of feature files copied as they are stored: ``subset`` (a split's or a fold's rows), ``merge``
(files made the same way, concatenated) and the join's chunk copy (``copy_features``).

One chunk is one clip (``research.features.writing.create_layout``): a row stored as one deflated chunk
is copied as its bytes (``read_direct_chunk`` / ``write_direct_chunk``), decompressed once for the
digest and never compressed again; a row stored otherwise (a seed file's chunks, other filters) is read
and written by h5py. The copy's content digest and ``all_finite`` are recorded from the rows as they are
copied (``research.features.digests``).

    python -m research.commands.features merge OUT.h5 A.h5 B.h5
"""

from __future__ import annotations

import bisect
import contextlib
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.compat import FEATURE_KEYS, check_compatible
from research.features.digests import ContentDigest, record_content
from research.features.hdf5 import read_attrs
from research.features.joined import check_joined, own_attrs
from research.features.writing import ROW_COLUMNS, create_layout, writing


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
    """Write the chosen rows (None = all) of each source into ``output``, attributes from the first (its own:
    ``joined.own_attrs``).

    Features are copied as their stored chunks where the layouts agree (``copy_features``), and their digest
    and finiteness recorded from the rows as they are copied."""
    with h5py.File(sources[0][0], "r") as first:
        attrs, max_frames, dim = own_attrs(first.attrs), first["features"].shape[1], first["features"].shape[2]
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


__all__ = ["copy_features", "merge", "subset"]
