"""The rules of a joined file: a feature file whose features are read from shard files beside it.

``research.features.shards`` joins the shard files of a job array into one file; by default its features
are an HDF5 virtual dataset over them (no copy), and its attribute ``joined_from`` lists them (their
names relative to it and what they held when joined). HDF5 reads zeros for a missing source and whatever
a replaced one holds, so every reader checks first (``check_joined``: ``read_attrs``, ``content_fingerprint``
and every copy call it) and refuses the file when a shard is gone or is no longer what was joined.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py

from research.errors import FeatureFileError

JOINED_FROM = "joined_from"  # the attribute: JSON list of the shard files a joined file reads its features from


def virtual_files(path: Path, f: h5py.File) -> list[Path]:
    """The files a (virtual) features dataset reads its rows from; none for one stored in the file."""
    features = f["features"]
    if not features.is_virtual:
        return []
    names = dict.fromkeys(source.file_name for source in features.virtual_sources())
    return [path.parent / name for name in names]


def check_joined(path: Path, f: h5py.File) -> None:
    """A file joined from shards reads its features from them: refuse it when one is gone or is no longer
    the file that was joined (HDF5 would read zeros for a missing one, and a replaced one's numbers)."""
    if JOINED_FROM not in f.attrs:
        return
    for source in json.loads(f.attrs[JOINED_FROM]):
        shard = path.parent / source["file"]
        how = "run the join again (python -m research.commands.features join), or join with --copy"
        if not shard.is_file():
            raise FeatureFileError(f"{path} reads its features from {shard}, which is missing: {how}")
        with h5py.File(shard, "r") as s:
            now = [str(s.attrs.get(k, "")) for k in ("settings_fingerprint", "inputs_fingerprint")]
        if now != [source["settings_fingerprint"], source["inputs_fingerprint"]]:
            raise FeatureFileError(f"{path} reads its features from {shard}, which has changed since the join: {how}")


__all__ = ["JOINED_FROM", "check_joined", "virtual_files"]
