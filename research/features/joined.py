"""The rules of a joined file: a feature file whose features are read from shard files beside it.

``research.features.shards`` joins the shard files of a job array into one file; by default its features
are an HDF5 virtual dataset over them (no copy), and its attribute ``joined_from`` lists them
(``source_record``: their names relative to it, their fingerprints and runtime, and what they held when
joined: content digest and file identity). HDF5 reads zeros for a missing source and whatever
a replaced one holds, so every reader checks first (``check_joined``: ``read_attrs``, ``content_fingerprint``
and every copy call it) and refuses the file when a shard is gone or is no longer what was joined. A copy
of its rows (a subset, a merge, a selection of parts: ``research.features.copying``,
``research.features.parts``) stores its own features, and takes its attributes without that record
(``own_attrs``): it reads no shard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py

from research.errors import FeatureFileError
from research.features.digests import FINGERPRINT, recorded_fingerprint, scan_and_record
from research.files import stat_identity

JOINED_FROM = "joined_from"  # the attribute: JSON list of the shard files a joined file reads its features from


def own_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a file that stores its own features takes from a source file (a subset, a merge, a
    selection of parts): all but the record of the shard files the source reads from, which would send
    every reader of the copy looking for shards beside it."""
    return {key: value for key, value in attrs.items() if key != JOINED_FROM}


def virtual_files(path: Path, f: h5py.File) -> list[Path]:
    """The files a (virtual) features dataset reads its rows from; none for one stored in the file."""
    features = f["features"]
    if not features.is_virtual:
        return []
    names = dict.fromkeys(source.file_name for source in features.virtual_sources())
    return [path.parent / name for name in names]


def source_record(output: Path, shard: Path, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What a joined file records of one shard file it reads (an entry of ``joined_from``): its name relative
    to the joined file (the folder can move as a whole), its index, fingerprints and runtime, and what it
    holds (``content_fingerprint``) with the identity (size, mtime, ctime, inode) it had then, so that
    ``check_joined`` costs one ``stat`` per shard while nothing changed."""
    identity = stat_identity(shard)
    digest = _fingerprint(shard)
    if stat_identity(shard) != identity:
        raise FeatureFileError(f"{shard} changed while it was being joined: join again once its task has finished")
    return {
        "file": os.path.relpath(shard.resolve(), output.resolve().parent),
        "shard": int(attrs["shard_index"]),
        "settings_fingerprint": str(attrs["settings_fingerprint"]),
        "inputs_fingerprint": str(attrs["inputs_fingerprint"]),
        "runtime": str(attrs.get("runtime", "")),
        "precision": str(attrs.get("precision", "")),
        "device": str(attrs.get("device", "")),
        FINGERPRINT: digest,
        "identity": identity,
    }


def check_unchanged(sources: list[dict[str, Any]], shards: list[Path]) -> None:
    """Refuse a join whose shard files changed (a task still writing, extracted again) since ``source_record``
    took what they held: the joined file's digest was fed with rows that may no longer be theirs."""
    for source, shard in zip(sources, shards, strict=True):
        if stat_identity(shard) != source["identity"]:
            raise FeatureFileError(f"{shard} changed while it was being joined: join again once its task has finished")


def _fingerprint(shard: Path) -> str:
    """A shard file's content digest: recorded beside it (written by its task) while it is unchanged, else
    read in full and recorded again (a shard file reads no other file)."""
    recorded = recorded_fingerprint(shard)
    if recorded is not None:
        return recorded
    with h5py.File(shard, "r") as f:
        return scan_and_record(shard, f)


def check_joined(path: Path, f: h5py.File) -> None:
    """A file joined from shards reads its features from them: refuse it when one is gone or no longer holds
    what was joined (HDF5 would read zeros for a missing one, and a replaced one's numbers). A shard with
    the identity it had at the join costs one ``stat``; one touched, copied or extracted again is judged by
    its content digest (recorded beside it, or read in full once): the same content is read, other content
    refused."""
    if JOINED_FROM not in f.attrs:
        return
    how = "run the join again (python -m research.commands.features join), or join with --copy"
    for source in json.loads(f.attrs[JOINED_FROM]):
        shard = path.parent / source["file"]
        if not shard.is_file():
            raise FeatureFileError(f"{path} reads its features from {shard}, which is missing: {how}")
        if FINGERPRINT not in source:  # joined before digests were recorded: a change in place cannot be seen
            raise FeatureFileError(
                f"{path} was joined by an older version, which recorded too little of its shard files to check "
                f"them: {how}"
            )
        if stat_identity(shard) == source["identity"]:
            continue
        if _fingerprint(shard) != source[FINGERPRINT]:
            raise FeatureFileError(
                f"{path} reads its features from {shard}, which holds other features than when it was joined "
                f"(extracted again, or edited): {how}"
            )


__all__ = ["JOINED_FROM", "check_joined", "check_unchanged", "own_attrs", "source_record", "virtual_files"]
