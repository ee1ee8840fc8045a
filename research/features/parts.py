"""The parts of a fused feature file: some of its backbones, as the file their own extraction writes.

A fused pass (``--backbone a+b+c``) runs every CNN on the same decoded frames and concatenates
their per-frame features in order; each part's columns equal, to float tolerance, the file an
extraction with that backbone alone writes (``tests/test_lite_backbones.py``). So one pass over
a collection serves a whole backbone comparison: ``select_parts`` writes the columns of the
chosen backbones with the attributes (settings record, fingerprints) extraction would give
them, and ``extract.py`` with those backbones then re-uses the file instead of recomputing it.

    python -m research.commands.features select OUT.h5 FUSED.h5 --backbone mobilenet_v2+efficientnet_lite2
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from research.backbones.table import backbone_parts
from research.errors import FeatureFileError
from research.features.digests import ContentDigest, record_content
from research.features.extraction import file_attrs
from research.features.hdf5 import read_attrs, stamps_in_file
from research.features.joined import own_attrs
from research.features.settings import FeatureSettings, file_record, kind_of
from research.features.writing import create_layout, writing

BLOCK_ROWS = 64  # rows read, cut to their columns and written at a time


def part_columns(settings: FeatureSettings, backbones: list[str]) -> np.ndarray:
    """Feature columns of ``backbones`` (in the order given) within a file of ``settings``."""
    offsets, start = {}, 0
    for part in settings.parts:
        offsets[part.backbone] = np.arange(start, start + part.feature_dim)
        start += part.feature_dim
    missing = [b for b in backbones if b not in offsets]
    if missing:
        raise FeatureFileError(f"the file holds the parts {list(offsets)}, not {missing}")
    return np.concatenate([offsets[b] for b in backbones])


def select_parts(source: str | Path, output: str | Path, backbone: str | list[str]) -> Path:
    """Write the columns of ``backbone`` ("a+b" or a list) of a fused file into ``output``."""
    source, output = Path(source), Path(output)
    attrs = read_attrs(source)
    if "settings" not in attrs:
        raise FeatureFileError(f"{source} records no settings (an older version): its parts are unknown")
    made_from = attrs["settings"]
    settings = FeatureSettings.from_record(made_from | {"feature_dim": attrs["feature_dim"]})
    names = backbone_parts(backbone)
    columns = part_columns(settings, names)
    by_name = {p.backbone: p for p in settings.parts}
    chosen = dataclasses.replace(settings, parts=tuple(by_name[n] for n in names))
    record = file_record(
        chosen, kind_of(made_from), made_from["split"], made_from["data_dir"], made_from["category_mapping"]
    )
    record["format"] = made_from["format"]  # the numbers are the source's: its format, not today's
    with h5py.File(source, "r") as f, writing(output) as out:
        n, length, _ = f["features"].shape
        ds = create_layout(out, n, length, len(columns))
        out.attrs.update({k: v for k, v in own_attrs(f.attrs).items() if k not in made_from})  # counts, skips, partial
        out.attrs.update(file_attrs(record, stamps_in_file(source)))
        out.attrs["feature_dim"] = len(columns)
        ids = (v.decode() for v in f["video_ids"][:])
        digest = ContentDigest(out.attrs.get("settings_fingerprint", ""), ids, f["labels"][:], f["num_frames"][:])
        for start in range(0, n, BLOCK_ROWS):  # every column must be inflated: in blocks of rows, not one by one
            block = f["features"][start : start + BLOCK_ROWS][:, :, columns]
            ds["features"][start : start + len(block)] = block
            digest.add(block)
        for name in ("labels", "num_frames", "decoded_frames", "video_ids", "paths", "stamps"):
            if n:
                ds[name][:] = f[name][:]
        out.attrs["all_finite"] = digest.all_finite
    record_content(output, digest)
    return output


__all__ = ["part_columns", "select_parts"]
