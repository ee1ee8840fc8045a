"""Classification metrics from labels and predictions (numpy; matches scikit-learn's definitions)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts; rows are true classes, columns predictions."""
    return np.bincount(num_classes * np.asarray(y_true) + np.asarray(y_pred), minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1 (0 where undefined, like sklearn's zero_division=0)."""
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(0))
        recall = np.nan_to_num(tp / cm.sum(1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "confusion": cm.astype(int).tolist(),
    }


# Resamples are drawn in blocks of rows, at most this many indices at once (80 MB): memory does not grow
# with N x n. The generator's stream runs on across calls, so block after block draws exactly the numbers the
# one [n, N] draw did: the same seed gives the same interval at any block size.
RESAMPLE_BLOCK = 10_000_000


def _cell_codes(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Each clip's confusion cell, ``label * (C + 1) + prediction``; a prediction outside the classes goes to
    column C (it is no class's prediction: a false negative of its label and nothing else)."""
    preds = np.asarray(preds)
    predicted = np.where((preds >= 0) & (preds < num_classes), preds, num_classes)
    return np.asarray(labels, dtype=np.int64) * (num_classes + 1) + predicted.astype(np.int64)


def _class_f1_of_cells(codes: np.ndarray, idx: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, rows]``: every class's F1 on the resamples ``idx [rows, N]``, from the clips' cell codes (one
    bincount per block of resamples; earlier versions compared labels and predictions per class: the same
    counts and the same float operations). The caller averages over classes on the whole ``[C, n]`` array,
    as those versions did, so the numbers do not depend on the block size."""
    rows, cells = idx.shape[0], num_classes * (num_classes + 1)
    offsets = (np.arange(rows, dtype=np.int64) * cells)[:, None]
    cm = np.bincount((codes[idx] + offsets).ravel(), minlength=rows * cells).reshape(rows, num_classes, num_classes + 1)
    true, predicted = cm.sum(2), cm[:, :, :num_classes].sum(1)
    f1s = np.empty((num_classes, rows))
    for c in range(num_classes):
        tp = cm[:, c, c]
        fp, fn = predicted[:, c] - tp, true[:, c] - tp
        denom = 2 * tp + fp + fn
        f1s[c] = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1s


def _macro_f1_resamples(
    codes: list[np.ndarray], num_classes: int, rng: np.random.Generator, n: int, block: int
) -> np.ndarray:
    """``[len(codes), n]``: macro-F1 of each cell-code array on the same ``n`` resamples of the clips, drawn in
    blocks of at most ``block`` indices; the per-class F1s (``[C, n]`` each, small) are averaged at the end."""
    per_class = np.empty((len(codes), num_classes, n))
    for start, idx in _resample_blocks(rng, n, len(codes[0]), block):
        for k, c in enumerate(codes):
            per_class[k, :, start : start + len(idx)] = _class_f1_of_cells(c, idx, num_classes)
    return np.stack([np.mean(f1, axis=0) for f1 in per_class])


def _resample_blocks(
    rng: np.random.Generator, n: int, size: int, block: int = RESAMPLE_BLOCK
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, idx [rows, size])`` for ``n`` resamples of ``size`` items, ``rows * size <= block`` (at least
    one row): the rows of ``rng.integers(0, size, (n, size))``, drawn block by block."""
    rows = max(1, block // max(size, 1))
    for start in range(0, n, rows):
        yield start, rng.integers(0, size, (min(rows, n - start), size))


def bootstrap_difference(
    labels: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    num_classes: int,
    n: int = 2000,
    seed: int = 0,
    block: int = RESAMPLE_BLOCK,
) -> dict[str, float]:
    """95 % interval of mean-over-seeds macro-F1(b) - macro-F1(a), resampling test videos (paired).

    Linear memory: resamples in blocks of ``block`` indices, each scored from per-clip confusion codes."""
    labels = np.asarray(labels)
    pairs = list(zip(preds_a, preds_b, strict=True))  # seeds
    codes = [_cell_codes(labels, p, num_classes) for pair in pairs for p in pair]
    f1 = _macro_f1_resamples(codes, num_classes, np.random.default_rng(seed), n, block)
    diffs = np.zeros(n)
    for k in range(len(pairs)):  # in the order earlier versions summed them
        diffs += f1[2 * k + 1] - f1[2 * k]
    diffs /= len(preds_a)
    return {"low": float(np.percentile(diffs, 2.5)), "high": float(np.percentile(diffs, 97.5))}


def _macro_f1_from_confusions(cm: np.ndarray) -> np.ndarray:
    """macro-F1 of many ``[..., C, C]`` confusion matrices (2 TP / (true + predicted), 0 where both are 0)."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    denom = cm.sum(-1) + cm.sum(-2)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(-1)


def grouped_resamples(
    labels: np.ndarray,
    predictions: list[np.ndarray],
    groups: list[str] | np.ndarray,
    num_classes: int,
    n: int = 2000,
    seed: int = 0,
    block: int = 10_000_000,
) -> np.ndarray:
    """``[len(predictions), n]``: macro-F1 of each predictions array on ``n`` resamples of whole groups.

    An array of ``predictions`` is ``[N]`` or ``[S, N]`` (the mean over S members' scores, as the ``member``
    rows). Clips of one group (a source, a family) are not independent, so groups are what is drawn: each
    resample draws as many groups as there are, with replacement, the same groups for every array (paired).
    Linear in the clips: every group's confusion counts are made once, and a resample is its group counts
    times them, in blocks of ``block`` numbers so that memory does not grow with N x n.
    """
    labels = np.asarray(labels)
    _, group_index = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    cells = num_classes * num_classes

    def confusions(preds: np.ndarray) -> np.ndarray:  # [S, G, C*C]
        codes = group_index * cells + labels * num_classes + np.atleast_2d(preds)
        return np.stack([np.bincount(c, minlength=n_groups * cells).reshape(n_groups, cells) for c in codes])

    # [S, G, C*C] per array, as float64 (exact: counts stay far below 2**53), one integer copy at a time
    as_float = [confusions(np.asarray(p)).astype(np.float64) for p in predictions]
    rng = np.random.default_rng(seed)
    scores = np.empty((len(predictions), n))
    rows = max(1, block // max(n_groups, 1))
    for start in range(0, n, rows):
        size = min(rows, n - start)
        # the rows of one draw are the numbers earlier versions drew one resample at a time (the stream runs on)
        drawn = rng.integers(0, n_groups, (size, n_groups)) + (np.arange(size, dtype=np.int64) * n_groups)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=size * n_groups).reshape(size, n_groups).astype(np.float64)
        for k, conf in enumerate(as_float):
            cm = np.matmul(weights, conf).reshape(len(conf), size, num_classes, num_classes)
            scores[k, start : start + size] = _macro_f1_from_confusions(cm).mean(0)
    return scores


def grouped_bootstrap_difference(
    labels: np.ndarray,
    preds_a: np.ndarray,
    preds_b: np.ndarray,
    groups: list[str] | np.ndarray,
    num_classes: int,
    n: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """95 % interval of macro-F1(b) - macro-F1(a) over the same clips, resampling whole groups (paired)."""
    a, b = grouped_resamples(labels, [preds_a, preds_b], groups, num_classes, n, seed)
    return {"low": float(np.percentile(b - a, 2.5)), "high": float(np.percentile(b - a, 97.5))}


def grouped_bootstrap_interval(
    labels: np.ndarray,
    preds: np.ndarray,
    groups: list[str] | np.ndarray,
    num_classes: int,
    n: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """95 % interval of macro-F1, resampling whole groups; ``preds`` is ``[N]`` or ``[S, N]``."""
    (scores,) = grouped_resamples(labels, [preds], groups, num_classes, n, seed)
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def bootstrap_interval(
    labels: np.ndarray, preds: np.ndarray, num_classes: int, n: int = 2000, seed: int = 0, block: int = RESAMPLE_BLOCK
) -> dict[str, float]:
    """95 % interval of macro-F1, resampling videos; ``preds`` is ``[N]`` (one model) or ``[S, N]`` (mean over S).

    Linear memory: resamples in blocks of ``block`` indices, each scored from per-clip confusion codes."""
    labels, preds = np.asarray(labels), np.atleast_2d(preds)
    codes = [_cell_codes(labels, p, num_classes) for p in preds]
    scores = np.mean(_macro_f1_resamples(codes, num_classes, np.random.default_rng(seed), n, block), axis=0)
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def mean_pm(stat: dict[str, float]) -> str:
    """A ``{mean, std}`` summary as table text: ``0.812 ± 0.021``."""
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"
