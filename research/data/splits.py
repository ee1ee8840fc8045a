"""Splitting, in one place: every video's group, grouped and stratified folds, validation carved by group.

A group is what must never sit on both sides of a split (the clips of one source). ``video_groups``
reads it from a manifest column, the subcategory folder or a pattern over the video id;
``make_folds`` gives grouped test folds stratified by class (``StratifiedGroupKFold``, seeded);
``carve_validation`` takes validation groups from training folds only; ``source_split`` is one
train / val / test split of that kind (the pipeline's), and ``write_fold`` writes a split's rows
as feature files.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from research.config import CVConfig, ExtractConfig
from research.data.annotations import by_column
from research.data.dataset import FeatureDataset, split_path
from research.data.inputs import config_annotations, row_video_id
from research.errors import UserError, did_you_mean
from research.features.hdf5 import subset

log = logging.getLogger(__name__)
TEST_FOLD = 0  # the pipeline's test part: this fold of the grouped folds (any would do; fixed, so it is one split)


def video_groups(ds: FeatureDataset, cfg: CVConfig, extract_cfg: ExtractConfig) -> list[str]:
    """The group of every video of ``ds`` (clips of one source must stay on one side of a fold).

    ``cfg.group_by`` names an annotation column (``group``, ``family`` or any other), ``subcategory``,
    ``regex:PATTERN`` over the video id, or, for a folder tree, a column of ``cfg.manifest``
    (default: the ``manifest.csv`` beside the data root). Every lookup is by key, never a scan.
    """
    if cfg.group_by == "subcategory":
        return [vid.split("/")[2] if vid.count("/") >= 3 else vid.split("/")[1] for vid in ds.video_ids]
    if cfg.group_by.startswith("regex:"):
        pattern = re.compile(cfg.group_by.removeprefix("regex:"))
        groups = [m.group(1) if (m := pattern.search(vid)) else None for vid in ds.video_ids]
        missing = [vid for vid, g in zip(ds.video_ids, groups, strict=True) if g is None]
        if missing:
            raise UserError(
                f"group pattern {pattern.pattern!r} does not match {len(missing)} video ids, e.g. {missing[0]}"
            )
        return groups  # type: ignore[return-value]
    if extract_cfg.annotations:
        return annotation_groups(ds.video_ids, cfg.group_by, extract_cfg)
    return manifest_groups(ds.video_ids, cfg, Path(extract_cfg.data_dir))


def grouping_column(cfg: CVConfig, extract_cfg: ExtractConfig) -> str:
    """The annotation column ``video_groups`` actually reads (``family`` falls back to ``group``; ``group``
    to none, each video alone), so a record never says ``family`` for a split made by source."""
    if not extract_cfg.annotations or cfg.group_by == "subcategory" or cfg.group_by.startswith("regex:"):
        return cfg.group_by
    offered = set(config_annotations(extract_cfg).columns)
    column = "group" if cfg.group_by == "family" and "family" not in offered else cfg.group_by
    return column if column in offered else "video"


def annotation_groups(video_ids: list[str], column: str, extract_cfg: ExtractConfig) -> list[str]:
    """Each video's value of an annotation column. Without a ``family`` column, ``family`` falls back to
    ``group``; without a ``group`` column, each video is its own group (both say so: the split is weaker)."""
    annotations = config_annotations(extract_cfg)
    offered = set(annotations.columns)
    if column == "family" and column not in offered:
        log.warning(
            "%s has no family column: grouped by its group column instead, so look-alike groups of one family "
            "(one program's or package's sources) may straddle the split",
            annotations.source,
        )
        column = "group"
    if column not in offered:
        if column != "group":
            raise UserError(
                f"group_by {column!r}: {annotations.source} has no such column{did_you_mean(column, offered)}; "
                f"it has {sorted(offered)}"
            )
        log.warning(
            "%s has no group column: each video is its own group, so near-duplicate clips (one source, one "
            "scene) may straddle the split and the scores read better than they are",
            annotations.source,
        )
        return list(video_ids)
    values = by_column(annotations, column)
    # an empty family is its row's group (never each clip alone: one source's clips would straddle the split)
    fallback = by_column(annotations, "group") if column == "family" and "group" in offered else [""] * len(values)
    by_id = {
        row_video_id(row): value or other or row_video_id(row)
        for row, value, other in zip(annotations.rows, values, fallback, strict=True)
    }
    missing = [vid for vid in video_ids if vid not in by_id]
    if missing:
        raise UserError(f"{len(missing)} extracted videos are not rows of {annotations.source}, e.g. {missing[0]}")
    return [by_id[vid] for vid in video_ids]


def manifest_groups(video_ids: list[str], cfg: CVConfig, data_dir: Path) -> list[str]:
    """A folder tree's groups from a manifest CSV whose ``path`` column names each clip (relative to any
    folder above it): matched on the longest path suffix the two share, by dictionary lookups."""
    manifest = Path(cfg.manifest) if cfg.manifest else data_dir.parent / "manifest.csv"
    if not manifest.is_file():
        raise UserError(f"--group-by {cfg.group_by}: no manifest at {manifest} (pass manifest=PATH)")
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or cfg.group_by not in rows[0] or "path" not in rows[0]:
        raise UserError(f"{manifest} needs the columns 'path' and {cfg.group_by!r}")
    by_suffix: dict[str, str] = {}  # every trailing part of every manifest stem -> its group
    for r in rows:
        parts = Path(r["path"]).with_suffix("").parts
        for k in range(len(parts)):
            by_suffix.setdefault("/".join(parts[k:]), r[cfg.group_by])
    groups = []
    for vid in video_ids:
        parts = Path(vid).parts
        found = next((by_suffix[key] for k in range(len(parts)) if (key := "/".join(parts[k:])) in by_suffix), None)
        if found is None:
            raise UserError(f"video {vid} is not listed in {manifest}")
        groups.append(found)
    return groups


def make_folds(labels: np.ndarray, groups: list[str], folds: int, seed: int) -> list[np.ndarray]:
    """Test indices per fold: stratified by class, grouped, deterministic."""
    n_groups = len(set(groups))
    if n_groups < folds:
        raise UserError(f"{n_groups} groups cannot fill {folds} folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def carve_validation(
    train_idx: np.ndarray, labels: np.ndarray, groups: list[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training-fold indices into (train, val) by group, stratified, never touching the test fold."""
    sub_groups = [groups[i] for i in train_idx]
    most_per_class = int(np.bincount(labels[train_idx]).max())
    k = max(2, min(round(1 / fraction), most_per_class, len(set(sub_groups))))  # small sets: a larger share
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fit, val = next(splitter.split(np.zeros(len(train_idx)), labels[train_idx], sub_groups))
    return train_idx[fit], train_idx[val]


def source_split(
    labels: np.ndarray, groups: list[str], folds: int, val_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices of train / val / test: test is one of ``folds`` grouped folds stratified by class,
    validation is carved by group from the rest (``research.engine.crossval``); no group on two sides."""
    labels = np.asarray(labels)
    most = int(np.bincount(labels).max())
    if most < folds:
        raise UserError(f"{len(labels)} clips, at most {most} of a class: too few for {folds} folds (cv.folds)")
    test = make_folds(labels, groups, folds, seed)[TEST_FOLD]
    rest = np.setdiff1d(np.arange(len(labels)), test)
    fit, val = carve_validation(rest, labels, groups, val_fraction, seed)
    parts = {"train": np.sort(fit), "val": np.sort(val), "test": np.sort(test)}
    sides = [{groups[i] for i in rows} for rows in parts.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]), "a source on two sides"
    return parts


def write_fold(source: Path, fold_dir: Path, parts: dict[str, np.ndarray], multi_scale: bool) -> Path:
    """train/val/test feature files of one fold (subsets of the one extracted file)."""
    for split, rows in parts.items():
        subset(source, split_path(fold_dir, split, multi_scale), sorted(rows.tolist()))
    return fold_dir
