"""Shard files of a job array, and their join into the file one process would have written.

``extract.py --shard K/N`` (``research.features.extraction``) extracts the K-th contiguous block of
every split's inputs, in a process of its own with no rendezvous, into

    OUT_DIR/shards/{split}_features[_multiscale].shard000K-of-000N.h5

a feature file like any other (written by the same ``assemble``), whose attributes carry the full
settings record and fingerprint, the block's own ``inputs_fingerprint``, and ``SHARD_ATTRS``: its index,
the count, the fingerprint and length of the whole split's listing it was cut from (``inputs.Listing``:
identities and labels in order, computed without a ``stat``, so a task stats its own block's files
alone), and how its CNN ran (precision, device; the runtime is an attribute of every file).

``join_shards`` makes ``{split}_features[_multiscale].h5`` of N shard files: the rows of shard 0, then
shard 1, ..., which is the order one process writes (the blocks are contiguous), with the attributes one
process writes (settings, skipped and partial inputs, and the inputs fingerprint of the whole split,
assembled from the stamps each shard recorded of its own block). By
default its features are an HDF5 virtual dataset over the shard files (no copy; the shard files must
stay beside it: the join records each one's content digest and identity, and ``joined.check_joined``
refuses the file when one is gone or holds other features, extracted again or edited); ``copy=True``
copies the compressed chunks as they are (``read_direct_chunk`` / ``write_direct_chunk``: nothing
inflated or compressed again) into one self-contained file. Either way the joined file's content digest
and ``all_finite`` are recorded from the shards' rows as they are joined (``copying.copy_features``; a virtual
file's record also holds its shard files' identities). It refuses shards made with other settings,
from other inputs, or by another runtime or precision (a GPU task's bfloat16 autocast beside a CPU task's
float32), and names every missing shard index.

    python -m research.commands.features join features/demo          # every split and kind in features/demo/shards
    python -m research.commands.features join OUT.h5 SHARD.h5 ...    # one file of the given shards
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from research.data.inputs import Listing, inputs_fingerprint
from research.errors import FeatureFileError
from research.features.compat import describe, feature_differences
from research.features.copying import copy_features
from research.features.digests import ContentDigest, record_content
from research.features.hdf5 import feature_filename, read_attrs, stamps_in_file
from research.features.joined import JOINED_FROM, check_unchanged, source_record
from research.features.writing import ROW_COLUMNS, create_layout, row_attrs, writing

if TYPE_CHECKING:  # research.distributed imports torch: the join needs none
    from research.distributed import Shard

SHARDS_DIR = "shards"
# Attributes only a shard file has: the joined file leaves them out (and so equals one process's file).
SHARD_ATTRS = ("shard_index", "shard_count", "collection_fingerprint", "collection_videos", "precision", "device")
_NAME = re.compile(r"^(?P<stem>.+)\.shard(?P<index>\d+)-of-(?P<count>\d+)\.h5$")


def shard_path(out_dir: str | Path, split: str, kind: str, shard: Shard) -> Path:
    """Where shard ``shard`` of a split's file of ``kind`` is written."""
    stem = feature_filename(split, kind).removesuffix(".h5")
    return Path(out_dir) / SHARDS_DIR / f"{stem}.{shard.tag}.h5"


def shard_attrs(shard: Shard, listing: Listing, precision: str, device: str) -> dict[str, Any]:
    """A shard file's own attributes: which shard of how many, the listing of the whole split it was cut from
    (its fingerprint and length: computed from the listing alone, no task stats another's files), and how
    its CNN ran besides the runtime every file records (``precision``: ``float32`` or ``bfloat16 autocast``;
    ``device``: ``cpu``, ``cuda``), which the join compares."""
    return {
        "shard_index": shard.index,
        "shard_count": shard.count,
        "collection_fingerprint": listing.fingerprint,
        "collection_videos": listing.videos,
        "precision": precision,
        "device": device,
    }


def _check_same_runtime(shards: list[tuple[Path, dict[str, Any]]], output: Path) -> None:
    """Refuse shards whose CNN ran in other runtimes or precisions: one process's file has one. bfloat16
    autocast on a GPU moves features by far more than the runtimes' tolerance (``runtime.TOLERANCE``)."""
    ran = {}
    for _, attrs in shards:
        how = str(attrs.get("runtime", "?")) + (f", {attrs['precision']}" if attrs.get("precision") else "")
        ran.setdefault(how, []).append(int(attrs["shard_index"]))
    if len(ran) > 1:
        mixture = "; ".join(f"shard(s) {', '.join(map(str, sorted(k)))} by {how}" for how, k in ran.items())
        raise FeatureFileError(
            f"cannot join {output.name}: its shards ran their CNN differently ({mixture}): one file "
            "must come from one runtime and precision; extract the others again (--shard K/N --overwrite) with "
            "the same runtime and amp settings, then join again"
        )


def _check_alike(shards: list[tuple[Path, dict[str, Any]]]) -> int:
    """Refuse shards of other settings, counts or inputs than the first; returns the shard count."""
    for path, attrs in shards:
        if "shard_index" not in attrs:
            raise FeatureFileError(f"{path} is not a shard file (extract.py --shard K/N writes them)")
    ref_path, ref = shards[0]
    redo = "extract that shard again with the same settings as the others (--overwrite), then join again"
    for path, attrs in shards[1:]:
        changed = feature_differences(ref["settings"], attrs["settings"], keys=None)
        if changed or attrs.get("settings_fingerprint") != ref.get("settings_fingerprint"):
            what = describe(changed, ref_path.name, path.name) or (
                f"settings fingerprint {ref.get('settings_fingerprint')} vs {attrs.get('settings_fingerprint')}"
            )
            raise FeatureFileError(f"{path} was extracted with other settings than {ref_path}: {what}; {redo}")
        if attrs["shard_count"] != ref["shard_count"]:
            raise FeatureFileError(
                f"{path} is a shard of {attrs['shard_count']}, {ref_path} of {ref['shard_count']}: "
                "join the shards of one run"
            )
        if attrs["collection_fingerprint"] != ref["collection_fingerprint"]:
            raise FeatureFileError(
                f"{path} was cut from other inputs than {ref_path} ({attrs['collection_videos']} vs "
                f"{ref['collection_videos']} videos: the collection changed between the tasks); {redo}"
            )
    return int(ref["shard_count"])


def _in_order(shards: list[tuple[Path, dict[str, Any]]], count: int, output: Path) -> list[tuple[Path, dict]]:
    """The shards by index; refuse duplicates and name every missing index."""
    by_index: dict[int, tuple[Path, dict]] = {}
    for path, attrs in shards:
        k = int(attrs["shard_index"])
        if k in by_index:
            raise FeatureFileError(f"shard {k} of {count} is given twice: {by_index[k][0]} and {path}")
        by_index[k] = (path, attrs)
    missing = [k for k in range(count) if k not in by_index]
    if missing:
        raise FeatureFileError(
            f"cannot join {output.name}: shard(s) {', '.join(map(str, missing))} of {count} missing "
            f"(have {', '.join(map(str, sorted(by_index)))}); run extract.py --shard K/{count} for each with the "
            "same settings, then join again"
        )
    return [by_index[k] for k in range(count)]


def join_shards(output: str | Path, shards: list[str | Path], copy: bool = False) -> int:
    """Join shard files into ``output`` (virtual features, or ``copy``: chunks copied); returns its rows."""
    output = Path(output)
    if not shards:
        raise FeatureFileError(f"no shard files to join into {output}")
    given = [(Path(p), read_attrs(p)) for p in shards]
    ordered = _in_order(given, _check_alike(given), output)
    _check_same_runtime(ordered, output)
    stamps: dict[str, str] = {}  # each input's stamp, as the shard that read it recorded it
    for path, _ in ordered:
        stamps |= stamps_in_file(path)
    ref = ordered[0][1]
    if len(stamps) != int(ref["collection_videos"]):  # the blocks must cover the listed split exactly
        raise FeatureFileError(
            f"the shards of {output.name} hold {len(stamps)} inputs, not the {ref['collection_videos']} they were "
            "cut from: extract them again (--overwrite)"
        )
    sizes, skipped, skipped_ids, partial = [], [], {}, []
    ids, labels, lengths = [], [], []  # what the joined file's digest is fed first
    max_frames, dim = int(ref["max_frames"]), int(ref["feature_dim"])
    for path, attrs in ordered:
        with h5py.File(path, "r") as f:
            sizes.append(f["labels"].shape[0])
            if f["features"].shape[1:] != (max_frames, dim):
                shape = f["features"].shape[1:]
                raise FeatureFileError(f"{path}: features of {shape} per video, not {(max_frames, dim)}")
            ids += [v.decode() for v in f["video_ids"][:]]
            labels.append(f["labels"][:])
            lengths.append(f["num_frames"][:])
        skipped += attrs["skipped"]
        skipped_ids |= attrs.get("skipped_ids", {})
        partial += attrs["partial"]
    total = sum(sizes)
    copy = copy or not total  # no rows: nothing to point at
    # a virtual file records what each shard holds, taken before its rows are read: a reader refuses the file
    # once a shard holds something else, and a shard changed while being joined is refused below
    sources = None if copy else [source_record(output, path, attrs) for path, attrs in ordered]
    digest = ContentDigest(ref.get("settings_fingerprint", ""), ids, np.concatenate(labels), np.concatenate(lengths))
    with writing(output) as out:
        layout = None
        if not copy:
            layout = h5py.VirtualLayout((total, max_frames, dim), np.float32)
            offset = 0
            for (path, _), n in zip(ordered, sizes, strict=True):
                if n:  # relative to the joined file: the folder can move as a whole
                    name = os.path.relpath(path.resolve(), output.resolve().parent)
                    layout[offset : offset + n] = h5py.VirtualSource(name, "features", (n, max_frames, dim))
                offset += n
        ds = create_layout(out, total, max_frames, dim, virtual=layout)
        offset = 0
        for (path, _), n in zip(ordered, sizes, strict=True):
            with h5py.File(path, "r") as f:  # copied as stored chunks, or (virtual) read for the digest alone
                copy_features(path, f["features"], range(n), digest, ds["features"] if copy else None, offset)
                for name in ROW_COLUMNS:
                    if n:
                        ds[name][offset : offset + n] = f[name][:]
                if path == ordered[0][0]:  # the settings, as the first shard (all alike) records them
                    out.attrs.update({k: v for k, v in f.attrs.items() if k not in SHARD_ATTRS})
            offset += n
        out.attrs.update(row_attrs(total, max_frames, dim, skipped, skipped_ids, partial))
        out.attrs["inputs_fingerprint"] = inputs_fingerprint(stamps)
        if sources is not None:
            check_unchanged(sources, [path for path, _ in ordered])
            out.attrs[JOINED_FROM] = json.dumps(sources)
        out.attrs["all_finite"] = digest.all_finite
    record_content(output, digest, [] if copy else [path for path, _ in ordered])
    return total


def shard_groups(out_dir: str | Path) -> dict[Path, list[Path]]:
    """``{joined file: its shard files}`` for every split and kind whose shards lie in ``OUT_DIR/shards``."""
    out_dir = Path(out_dir)
    groups: dict[Path, list[Path]] = {}
    for path in sorted((out_dir / SHARDS_DIR).glob("*.shard*-of-*.h5")):
        match = _NAME.match(path.name)
        if match:
            groups.setdefault(out_dir / f"{match['stem']}.h5", []).append(path)
    if not groups:
        raise FeatureFileError(f"no shard files in {out_dir / SHARDS_DIR} (extract.py --shard K/N writes them)")
    return groups


def join_folder(out_dir: str | Path, copy: bool = False) -> dict[Path, int]:
    """Join every split and kind of ``OUT_DIR/shards`` into ``OUT_DIR``; ``{file: rows}``. Every group is
    checked (missing shards named) before any file is written."""
    groups = shard_groups(out_dir)
    for output, shards in groups.items():
        given = [(p, read_attrs(p)) for p in shards]
        _check_same_runtime(_in_order(given, _check_alike(given), output), output)
    return {output: join_shards(output, shards, copy) for output, shards in groups.items()}


__all__ = ["SHARD_ATTRS", "join_folder", "join_shards", "shard_attrs", "shard_groups", "shard_path"]
