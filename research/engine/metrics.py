"""Classification metrics from labels and predictions (numpy; matches scikit-learn's definitions)."""

from __future__ import annotations

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


def _macro_f1_batch(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """macro-F1 for many resamples at once: ``labels``/``preds`` are ``[R, N]``."""
    f1s = []
    for c in range(num_classes):
        tp = ((preds == c) & (labels == c)).sum(1)
        fp = ((preds == c) & (labels != c)).sum(1)
        fn = ((preds != c) & (labels == c)).sum(1)
        denom = 2 * tp + fp + fn
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.mean(f1s, axis=0)


def bootstrap_difference(
    labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, num_classes: int, n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """95 % interval of mean-over-seeds macro-F1(b) - macro-F1(a), resampling test videos (paired)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    diffs = np.zeros(n)
    for pa, pb in zip(preds_a, preds_b, strict=True):  # seeds
        diffs += _macro_f1_batch(labels[idx], pb[idx], num_classes) - _macro_f1_batch(labels[idx], pa[idx], num_classes)
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

    per_group = [confusions(np.asarray(p)) for p in predictions]
    rng = np.random.default_rng(seed)
    scores = np.empty((len(predictions), n))
    rows = max(1, block // max(n_groups, 1))
    for start in range(0, n, rows):
        size = min(rows, n - start)
        # one resample at a time, as earlier versions drew them: the same seed gives the same interval
        weights = np.stack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups) for _ in range(size)])
        for k, conf in enumerate(per_group):
            cm = np.einsum("rg,sgk->srk", weights, conf).reshape(len(conf), size, num_classes, num_classes)
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
    labels: np.ndarray, preds: np.ndarray, num_classes: int, n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """95 % interval of macro-F1, resampling videos; ``preds`` is ``[N]`` (one model) or ``[S, N]`` (mean over S)."""
    preds = np.atleast_2d(preds)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    scores = np.mean([_macro_f1_batch(labels[idx], p[idx], num_classes) for p in preds], axis=0)
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def mean_pm(stat: dict[str, float]) -> str:
    """A ``{mean, std}`` summary as table text: ``0.812 ± 0.021``."""
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"
