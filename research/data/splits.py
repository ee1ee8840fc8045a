"""Splitting, in one place: every video's group, grouped and stratified folds, validation carved by group.

A group is what must never sit on both sides of a split (the clips of one source). ``video_groups``
reads it from a manifest column, the subcategory folder or a pattern over the video id;
``make_folds`` gives grouped test folds stratified by class (``StratifiedGroupKFold``, seeded);
``carve_validation`` takes validation groups from training folds only; ``source_split`` is one
train / val / test split of that kind, ``balanced_split`` the one among many (fold seeds x test folds)
that keeps every class closest to its intended shares (the pipeline's), and ``write_fold`` writes a
split's rows as feature files.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from research.config import CVConfig, ExtractConfig
from research.data.annotations import by_column
from research.data.dataset import FeatureDataset, split_path
from research.data.inputs import config_annotations, row_video_id
from research.errors import UserError, did_you_mean
from research.features.copying import subset

log = logging.getLogger(__name__)


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


# Above this many groups the folds are dealt by ``linear_grouped_folds`` (O(N log N)): sklearn's
# StratifiedGroupKFold tries every fold for every group in Python, ~0.3 ms a group (32 s a split at 10^5
# groups, ~5 min at 10^6, and the balanced split makes ~48 of them). Below it, sklearn's folds, as ever.
LINEAR_FOLDS_ABOVE = 1000


def group_codes(groups: list[str] | np.ndarray) -> np.ndarray:
    """``[N]`` int64: each video's group as a number (0 .. groups - 1, in sorted order of the names)."""
    return np.unique(np.asarray(groups), return_inverse=True)[1].astype(np.int64).ravel()


def _is_codes(groups: list[str] | np.ndarray) -> bool:
    """Whether ``groups`` are group codes (an integer array, the balanced split's) rather than names."""
    return isinstance(groups, np.ndarray) and groups.dtype.kind in "iu"


def linear_grouped_folds(labels: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices per fold, stratified by class and grouped, in O(N log N) for 10^5-10^6 groups.

    Groups in a seeded random order, the largest first. A large group (more than 1/(50 folds) of the clips)
    goes, one at a time, to the fold whose shares of the group's classes fall furthest below one fold's
    share (ties: the fold with fewer clips). The many small groups are dealt per class (the group's most
    common one, the rarest classes first): in random order, by their cumulative size, over the folds in
    proportion to what each fold still lacks of that class. Every fold's share of every class ends within
    about one small group of 1 / folds."""
    labels, codes = np.asarray(labels, dtype=np.int64), np.asarray(codes, dtype=np.int64)
    present = np.bincount(codes) > 0  # counting, not np.unique: its hashing takes 0.5 s at 10^6
    group = (np.cumsum(present) - 1)[codes]  # 0 .. groups - 1
    n_groups, num_classes = int(present.sum()), int(labels.max()) + 1
    if n_groups < folds:
        raise UserError(f"{n_groups} groups cannot fill {folds} folds")
    sizes = np.bincount(group, minlength=n_groups)
    pair_codes = np.sort(group * num_classes + labels)
    starts_of_pairs = np.flatnonzero(np.r_[True, pair_codes[1:] != pair_codes[:-1]])
    pairs = pair_codes[starts_of_pairs]  # sorted: group, then class
    pair_counts = np.diff(np.r_[starts_of_pairs, len(pair_codes)])
    pair_group, pair_class = pairs // num_classes, pairs % num_classes
    by_count = np.lexsort((pair_class, -pair_counts, pair_group))  # per group its most common class first
    first = by_count[np.r_[True, pair_group[by_count][1:] != pair_group[by_count][:-1]]]
    dominant = np.empty(n_groups, dtype=np.int64)
    dominant[pair_group[first]] = pair_class[first]

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_groups)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]  # the largest first, ties in random order
    totals = np.maximum(np.bincount(labels, minlength=num_classes), 1).astype(np.float64)
    counts = np.zeros((folds, num_classes))
    fold_of_group = np.full(n_groups, -1, dtype=np.int64)
    large = sizes > max(1.0, len(labels) / (50 * folds))
    for g in order[large[order]]:  # at most 50 x folds of them
        lo, hi = np.searchsorted(pair_group, [g, g + 1])
        classes, held = pair_class[lo:hi], pair_counts[lo:hi]
        shortfall = ((1 / folds - counts[:, classes] / totals[classes]) * held).sum(axis=1)
        best = max(range(folds), key=lambda f: (round(float(shortfall[f]), 12), -counts[f].sum()))
        fold_of_group[g] = best
        counts[best, classes] += held
    small = order[~large[order]]
    small = small[np.argsort(dominant[small], kind="stable")]  # per class, in the random order
    starts = np.searchsorted(dominant[small], np.arange(num_classes + 1))
    for c in np.argsort(totals, kind="stable"):  # the rarest classes first
        members = small[starts[c] : starts[c + 1]]
        if not len(members):
            continue
        need = np.clip(totals[c] / folds - counts[:, c], 0, None)
        need = need if need.sum() > 0 else np.ones(folds)
        member_sizes = sizes[members]
        edges = np.cumsum(need) / need.sum() * member_sizes.sum()
        middles = np.cumsum(member_sizes) - member_sizes / 2
        fold_of_group[members] = np.minimum(np.searchsorted(edges, middles, side="right"), folds - 1)
        dealt = ~large[pair_group] & (dominant[pair_group] == c)
        cells = fold_of_group[pair_group[dealt]] * num_classes + pair_class[dealt]
        counts += np.bincount(cells, pair_counts[dealt], minlength=folds * num_classes).reshape(folds, num_classes)
    fold_of_clip = fold_of_group[group]
    order_of_clips = np.argsort(fold_of_clip, kind="stable")
    bounds = np.searchsorted(fold_of_clip[order_of_clips], np.arange(folds + 1))
    return [order_of_clips[bounds[f] : bounds[f + 1]] for f in range(folds)]


def make_folds(labels: np.ndarray, groups: list[str] | np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices per fold: stratified by class, grouped, deterministic (``linear_grouped_folds`` above
    ``LINEAR_FOLDS_ABOVE`` groups, sklearn's ``StratifiedGroupKFold`` below)."""
    n_groups = int((np.bincount(groups) > 0).sum()) if _is_codes(groups) else len(set(groups))
    if n_groups < folds:
        raise UserError(f"{n_groups} groups cannot fill {folds} folds")
    if n_groups > LINEAR_FOLDS_ABOVE:
        return linear_grouped_folds(labels, groups if _is_codes(groups) else group_codes(groups), folds, seed)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def validation_carves(
    train_idx: np.ndarray, labels: np.ndarray, groups: list[str] | np.ndarray, fraction: float, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every way of splitting training-fold indices into (train, val) by group, stratified, never touching the
    test fold: one per validation fold of about ``1 / fraction`` grouped folds of the training part."""
    if _is_codes(groups):  # group codes (the balanced split's at 10^5-10^6 clips)
        sub_groups: list[str] | np.ndarray = groups[train_idx]
        n_sub = int((np.bincount(sub_groups) > 0).sum())
    else:
        sub_groups = [groups[i] for i in train_idx]
        n_sub = len(set(sub_groups))
    most_per_class = int(np.bincount(labels[train_idx]).max())
    k = max(2, min(round(1 / fraction), most_per_class, n_sub))  # small sets: a larger share
    if n_sub > LINEAR_FOLDS_ABOVE:
        codes = sub_groups if _is_codes(sub_groups) else group_codes(sub_groups)
        for val in linear_grouped_folds(labels[train_idx], codes, k, seed):
            kept = np.ones(len(train_idx), dtype=bool)
            kept[val] = False
            yield train_idx[kept], train_idx[np.sort(val)]
        return
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fit, val in splitter.split(np.zeros(len(train_idx)), labels[train_idx], sub_groups):
        yield train_idx[fit], train_idx[val]


def carve_validation(
    train_idx: np.ndarray, labels: np.ndarray, groups: list[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training-fold indices into (train, val) by group, stratified, never touching the test fold."""
    return next(validation_carves(train_idx, labels, groups, fraction, seed))


def source_split(
    labels: np.ndarray, groups: list[str], folds: int, val_fraction: float, seed: int, test_fold: int = 0
) -> dict[str, np.ndarray]:
    """Row indices of train / val / test: test is fold ``test_fold`` of ``folds`` grouped folds stratified by
    class, validation is carved by group from the rest (``research.engine.crossval``); no group on two sides."""
    labels = np.asarray(labels)
    check_fold_count(labels, folds)
    test = make_folds(labels, groups, folds, seed)[test_fold]
    rest = np.setdiff1d(np.arange(len(labels)), test)
    return _parts(*carve_validation(rest, labels, groups, val_fraction, seed), test, groups)


def check_fold_count(labels: np.ndarray, folds: int) -> None:
    most = int(np.bincount(labels).max())
    if most < folds:
        raise UserError(f"{len(labels)} clips, at most {most} of a class: too few for {folds} folds (cv.folds)")


def _parts(fit: np.ndarray, val: np.ndarray, test: np.ndarray, groups: list[str] | np.ndarray) -> dict[str, np.ndarray]:
    parts = {"train": np.sort(fit), "val": np.sort(val), "test": np.sort(test)}
    if _is_codes(groups):  # group codes: the same check, in numpy
        width = int(groups.max()) + 1
        train, val_side, test_side = (np.bincount(groups[rows], minlength=width) > 0 for rows in parts.values())
        assert not (train & val_side).any() and not (train & test_side).any() and not (val_side & test_side).any(), (
            "a group on two sides"
        )
        return parts
    sides = [{groups[i] for i in rows} for rows in parts.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]), "a group on two sides"
    return parts


def intended_shares(folds: int, val_fraction: float) -> dict[str, float]:
    """The share of every class each part should get: test one fold, validation its fraction of the rest."""
    test = 1 / folds
    return {"train": (1 - test) * (1 - val_fraction), "val": (1 - test) * val_fraction, "test": test}


def class_shares(labels: np.ndarray, parts: dict[str, np.ndarray], num_classes: int) -> np.ndarray:
    """``[parts, classes]``: the share of each class's clips that each part holds."""
    totals = np.maximum(np.bincount(labels, minlength=num_classes), 1)
    return np.stack([np.bincount(labels[rows], minlength=num_classes) / totals for rows in parts.values()])


def balanced_split(
    labels: np.ndarray, groups: list[str], folds: int, val_fraction: float, seed: int, candidates: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The grouped split whose per-class shares in train, val and test come closest to the intended ones.

    One grouped split is one draw: where one group holds most of a class, the greedy grouped folds put it in
    the first fold, so fold 0 with the first validation carve leaves the class almost only in test or in
    val. The candidates are every (test fold, validation fold) pair of ``candidates`` fold seeds (``seed``,
    ``seed + 1``, ...); the distance of a candidate is the largest gap, over classes and parts, between the
    share of a class's clips a part holds and the share it should hold (ties: the mean gap, then the first
    candidate). Returns the parts and the record of the choice (``split.json``'s ``balance``): the distance,
    the chosen seed and folds, and every class's shares.

    Above ``LINEAR_FOLDS_ABOVE`` groups (10^5-10^6 clips) the folds are dealt in O(N log N) by
    ``linear_grouped_folds`` and the candidates are compared on integer group codes instead of names
    (8 fold seeds, 200 candidates, ~45 s at 10^6 clips; after a fold seed whose best candidate is within 0.001
    of every intended share, the next seeds are not tried).
    """
    labels = np.asarray(labels)
    check_fold_count(labels, folds)
    close_enough = -1.0  # sklearn's folds: every candidate, as ever
    if len(set(groups)) > LINEAR_FOLDS_ABOVE:
        groups, close_enough = group_codes(groups), 1e-3
    num_classes = int(labels.max()) + 1
    intended = intended_shares(folds, val_fraction)
    target = np.array(list(intended.values()))[:, None]
    best: tuple[float, float] | None = None
    chosen: tuple[dict[str, np.ndarray], int, int, int] | None = None
    tried = 0
    for fold_seed in range(seed, seed + max(1, candidates)):
        for test_fold, test in enumerate(make_folds(labels, groups, folds, fold_seed)):
            rest = np.flatnonzero(~np.isin(np.arange(len(labels)), test, kind="table"))  # setdiff1d's, in O(N)
            for val_fold, (fit, val) in enumerate(validation_carves(rest, labels, groups, val_fraction, fold_seed)):
                parts = _parts(fit, val, test, groups)
                gaps = np.abs(class_shares(labels, parts, num_classes) - target)
                score, tried = (float(gaps.max()), float(gaps.mean())), tried + 1
                if best is None or score < best:
                    best, chosen = score, (parts, fold_seed, test_fold, val_fold)
        if best is not None and best[0] <= close_enough:  # dealt folds: no share can come meaningfully closer
            break
    assert best is not None and chosen is not None
    parts, fold_seed, test_fold, val_fold = chosen
    record = {
        "distance": round(best[0], 4),  # the largest gap between a class's share in a part and the intended
        "mean_gap": round(best[1], 4),
        "candidates": tried,
        "seed": fold_seed,
        "test_fold": test_fold,
        "val_fold": val_fold,
        "intended": {name: round(v, 4) for name, v in intended.items()},
        "shares": [[round(float(v), 4) for v in row] for row in class_shares(labels, parts, num_classes).T],
    }
    return parts, record


def starved_classes(
    labels: np.ndarray,
    groups: list[str],
    parts: dict[str, np.ndarray],
    classes: list[str],
    intended_train: float,
    need_test: bool = True,
) -> list[str]:
    """One line per class that keeps less than half its intended share in train, or (``need_test``: a split's
    one test part) no clip in test, naming the group that holds most of the class (why no grouped split could
    do better)."""
    labels = np.asarray(labels)
    lines = []
    for c, name in enumerate(classes):
        members = np.flatnonzero(labels == c)
        kept, tested = (int(np.isin(members, parts[p]).sum()) for p in ("train", "test"))
        if len(members) == 0 or (kept / len(members) >= intended_train / 2 and (tested or not need_test)):
            continue
        group, held = Counter(groups[i] for i in members).most_common(1)[0]
        what = (
            f"keeps {kept} of its {len(members)} clips in train ({kept / len(members):.0%}, intended "
            f"{intended_train:.0%})"
            if kept / len(members) < intended_train / 2
            else f"has no clip in test ({kept} of its {len(members)} in train)"
        )
        lines.append(
            f"class {name} {what}: group {group} holds {held} of them ({held / len(members):.0%}) and a group is "
            "never split, so no grouped split does better; its scores say little (cv.strict_split=true stops "
            "here instead)"
        )
    return lines


def write_fold(source: Path, fold_dir: Path, parts: dict[str, np.ndarray], multi_scale: bool) -> Path:
    """train/val/test feature files of one fold (subsets of the one extracted file)."""
    for split, rows in parts.items():
        subset(source, split_path(fold_dir, split, multi_scale), sorted(rows.tolist()))
    return fold_dir
