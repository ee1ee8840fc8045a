"""Calibrated probabilities: temperature scaling, and the scores that say whether a probability can be trusted.

A classifier trained to 100 % training accuracy with label smoothing says 0.96 whether it is right
or wrong. Temperature scaling (Guo et al., 2017, "On calibration of modern neural networks")
divides the logits by one number ``T`` fitted on held-out videos (the validation split) to
minimise their negative log-likelihood: the predicted class never changes for one model, only
how sure it claims to be. ``T > 1`` softens an over-confident model.

Here ``T`` is applied to log-probabilities, which equals applying it to logits (they differ by a
constant per video), so it serves a member, a member with TTA and an averaged ensemble alike.

The scores, per report row and MLflow run:

- ``ece``: expected calibration error, 10 equal-width bins of the top probability; the mean gap
  between confidence and accuracy, weighted by the bin's share of videos (0 = calibrated);
- ``nll``: mean negative log-likelihood of the true class (lower is better);
- ``brier``: mean squared distance between the probability vector and the one-hot label, summed
  over classes (0 to 2; lower is better).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 10  # Guo et al.'s 15 bins leave most bins empty on the ~70 videos of a small test split
TINY = 1e-30  # probabilities are floored here before the log: float32 softmax underflows to 0
T_RANGE = (0.05, 20.0)  # the temperatures searched; a fit at either end says the validation split is degenerate


def log_probabilities(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), TINY, None))


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` per row: the calibrated probabilities (``T = 1`` returns ``probs`` renormalised)."""
    z = log_probabilities(probs) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=np.int64)
    return float(-log_probabilities(probs)[np.arange(len(labels)), labels].mean()) if len(labels) else 0.0


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` that minimises the NLL of ``with_temperature(probs, T)`` on these (held-out) videos.

    One parameter, a convex problem in ``1/T``: a bounded search over ``log T``. No videos: 1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return 1.0
    logp = log_probabilities(probs)

    def objective(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]).mean())

    result = minimize_scalar(objective, bounds=tuple(np.log(T_RANGE)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def cross_fitted(probs: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """``probs`` calibrated the way a new group would be: each fold's clips by the temperature fitted on the
    other folds' clips (``fold``: each clip's fold); returns them and the per-fold temperatures.

    A temperature fitted on the very clips it is scored on flatters the ECE; one fitted on held-out folds
    says how calibration transfers to groups it was not fitted on."""
    scaled = np.zeros_like(np.asarray(probs, dtype=np.float64))
    temperatures = []
    for k in np.unique(fold):
        held = fold == k
        temperatures.append(fit_temperature(probs[~held], labels[~held]))
        scaled[held] = with_temperature(probs[held], temperatures[-1])
    return scaled, temperatures


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of the top probability over ``bins`` equal-width bins."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if not len(labels):
        return 0.0
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = np.bincount(which, confidence - correct, minlength=bins)
    return float(np.abs(gap).sum() / len(labels))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    probs = np.asarray(probs, dtype=np.float64)
    if not len(probs):
        return 0.0
    onehot = np.eye(probs.shape[1])[np.asarray(labels, dtype=np.int64)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def ece_interval(
    probs: np.ndarray, labels: np.ndarray, n: int = 2000, seed: int = 0, bins: int = BINS, block: int = 10_000_000
) -> dict[str, float]:
    """95 % bootstrap interval of the ECE, resampling videos (on ~70 videos it is wide: say so).

    Linear memory: resamples in blocks of at most ``block`` indices (the generator's stream runs on across
    blocks: the same draws as one ``[n, N]`` draw). A resample's ECE is summed from each clip's bin and
    confidence - correctness, in the resample's order as ``ece`` sums them: the same numbers."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if not len(labels):
        return {"low": 0.0, "high": 0.0}
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap_of_clip = confidence - correct
    rng = np.random.default_rng(seed)
    size = len(labels)
    rows = max(1, block // size)
    scores = np.empty(n)
    for start in range(0, n, rows):
        idx = rng.integers(0, size, (min(rows, n - start), size))
        offsets = (np.arange(len(idx), dtype=np.int64) * bins)[:, None]
        gap = np.bincount((which[idx] + offsets).ravel(), gap_of_clip[idx].ravel(), minlength=len(idx) * bins)
        scores[start : start + len(idx)] = np.abs(gap.reshape(len(idx), bins)).sum(axis=1) / size
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def calibration_scores(probs: np.ndarray, labels: np.ndarray, interval: bool = True) -> dict[str, Any]:
    """``ece`` (with ``ece_95``), ``nll``, ``brier`` and the mean top probability of one set of probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    out: dict[str, Any] = {
        "ece": ece(probs, labels),
        "nll": nll(probs, labels),
        "brier": brier(probs, labels),
        "mean_confidence": float(probs.max(axis=1).mean()) if len(probs) else 0.0,
    }
    if interval:
        out["ece_95"] = ece_interval(probs, labels)
    return out


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per non-empty bin of the top probability: its range, videos, mean confidence and accuracy."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "videos": int((which == b).sum()),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def plot_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path, bins: int = BINS
) -> None:
    """A reliability diagram: accuracy against confidence per bin, one line per ``name: (probs, labels)``
    (e.g. before and after calibration), the diagonal for a calibrated model, bin sizes as marker areas."""
    import matplotlib  # only for this picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 4.8))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    for name, (probs, labels) in curves.items():
        points = reliability_bins(probs, labels, bins)
        ax.plot(
            [p["confidence"] for p in points],
            [p["accuracy"] for p in points],
            marker="o",
            label=f"{name} (ECE {ece(probs, labels, bins):.3f})",
        )
        ax.scatter(
            [p["confidence"] for p in points],
            [p["accuracy"] for p in points],
            s=[12 * p["videos"] for p in points],
            alpha=0.25,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
