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
