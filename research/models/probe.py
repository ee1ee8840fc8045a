"""The textbook linear probe, done as the textbook does it: multinomial logistic regression.

On frozen features the baseline every recipe must beat is a logistic regression on the
(masked) mean of a video's frame features, standardised with the training videos'
statistics. Done right that is a convex problem with one answer, so it is solved, not
trained: full batch, L-BFGS (SciPy's, as scikit-learn's own solver) in float64, to a tight
gradient tolerance; the objective is scikit-learn's,

    sum_i CE(W x_i + b, y_i) + ||W||^2 / (2 C)          (the intercept is not penalised)

and the L2 strength ``C`` is chosen by an inner grouped cross-validation on the training
videos only (``choose_c``), never on the videos being scored. A test checks the fitted
probe's predictions against ``sklearn.linear_model.LogisticRegression`` on the same features.

The ``linear`` model family (``research.models.linear``) is a different thing: a trained
network head (AdamW, epochs, dropout, augmentation) for the recipe studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from research.engine.metrics import classification_metrics

# The L2 grid: sklearn's default C=1 in the middle, two decades either side (frozen 1280-d features
# of ~100 videos need strong regularisation; 2-10 k videos need little).
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

# Above this many numbers in ``x [N, D]`` (512 MB in float64: ~52 000 videos of 1280-d features) the probe is
# fitted, standardised and applied in blocks of rows: no float64 copy of ``x``, no SVD, memory that does not
# grow with N beyond ``x`` itself. Below it, the in-memory solution of earlier versions, number for number.
STREAM_ABOVE = 2**26
BLOCK_NUMBERS = 2**23  # a block of rows holds about this many numbers (64 MB in float64)


def pooled_mean(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[N, L, D]`` zero-padded sequences -> ``[N, D]`` means over each video's valid frames."""
    mask = np.arange(features.shape[1])[None, :] < np.asarray(lengths)[:, None]
    total = np.einsum("nld,nl->nd", features.astype(np.float64), mask.astype(np.float64))
    return total / np.maximum(mask.sum(axis=1, keepdims=True), 1)


@dataclass
class LogisticProbe:
    """A fitted probe: standardisation statistics and the weights, applied in ``predict_proba``."""

    mean: np.ndarray  # [D] of the training videos
    scale: np.ndarray  # [D], 1 where a feature is constant
    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    c: float

    def logits(self, x: np.ndarray, block_rows: int | None = None) -> np.ndarray:
        """``[N, C]``; above ``STREAM_ABOVE`` numbers (or with ``block_rows``) in blocks of rows."""
        if block_rows is None and x.size <= STREAM_ABOVE:
            return ((x - self.mean) / self.scale) @ self.weight.T + self.bias
        out = np.empty((x.shape[0], len(self.bias)))
        for rows in row_blocks(x.shape[0], block_rows or block_rows_for(x.shape[1])):  # no [N, D] float64 copy
            out[rows] = ((x[rows] - self.mean) / self.scale) @ self.weight.T + self.bias
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)


def row_blocks(n: int, rows: int) -> list[slice]:
    """Consecutive slices of ``rows`` rows (the last shorter) covering ``n`` rows."""
    return [slice(start, min(start + rows, n)) for start in range(0, n, max(1, rows))]


def block_rows_for(dim: int) -> int:
    return max(1, BLOCK_NUMBERS // max(1, dim))


def standardisation(x: np.ndarray, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature (``StandardScaler``'s: population std, 1 for constant features).

    Above ``STREAM_ABOVE`` numbers (or with ``block_rows``) in two passes over blocks of rows, in float64."""
    if block_rows is None and x.size <= STREAM_ABOVE:
        mean, std = x.mean(axis=0), x.std(axis=0)
        return mean, np.where(std > 0, std, 1.0)
    blocks = row_blocks(x.shape[0], block_rows or block_rows_for(x.shape[1]))
    mean = sum(x[rows].sum(axis=0, dtype=np.float64) for rows in blocks) / max(x.shape[0], 1)
    squares = sum(((x[rows] - mean) ** 2).sum(axis=0) for rows in blocks)
    std = np.sqrt(squares / max(x.shape[0], 1))
    return mean, np.where(std > 0, std, 1.0)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, num_classes: int, c: float = 1.0, block_rows: int | None = None
) -> LogisticProbe:
    """Solve the L2-regularised multinomial logistic regression on standardised ``x`` (full batch, L-BFGS).

    The optimum's weights lie in the row span of the training videos (the data term's gradient
    is ``G^T X``, and at the optimum ``W = -C G^T X``). With N videos of D >> N features the
    problem is therefore solved in an orthonormal basis ``V`` of that span (``X = U S V^T``):
    ``W = B V^T`` with ``||W|| = ||B||``, i.e. the same logistic regression on the N x rank
    coordinates ``X V``. Same solution, a fraction of the cost, equally well conditioned.

    Above ``STREAM_ABOVE`` numbers (or with ``block_rows``: rows per block) N > D, the span is the whole
    feature space, and the same problem is solved in it with the logits and gradients summed over blocks
    of rows (``_fit_streamed``): beside ``x`` only a block and [C, D] arrays are held.
    """
    with threadpool_limits(1):  # problems this small only lose to threads fighting over 2 cores
        if block_rows is None and x.size <= STREAM_ABOVE:
            return _fit(x, y, num_classes, c)
        return _fit_streamed(x, y, num_classes, c, block_rows or block_rows_for(x.shape[1]))


def _fit(x: np.ndarray, y: np.ndarray, num_classes: int, c: float) -> LogisticProbe:
    mean, scale = standardisation(x)
    xs = (x - mean) / scale
    _, sv, vt = np.linalg.svd(xs, full_matrices=False)
    basis = vt[sv > sv.max() * 1e-10].T if sv.size and sv.max() > 0 else np.zeros((xs.shape[1], 0))  # [D, r]
    coords = xs @ basis  # [N, r]
    onehot = np.eye(num_classes)[np.asarray(y, dtype=np.int64)]
    k, r = num_classes, basis.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * r].reshape(k, r), theta[k * r :]
        z = coords @ w.T + b
        lse = logsumexp(z, axis=1)
        loss = float((lse - (z * onehot).sum(axis=1)).sum() + (w * w).sum() / (2 * c))
        g = np.exp(z - lse[:, None]) - onehot  # [N, k]: d loss / d z
        return loss, np.concatenate([(g.T @ coords + w / c).ravel(), g.sum(axis=0)])

    result = minimize(
        objective,
        np.zeros(k * r + k),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-13},
    )
    w, bias = result.x[: k * r].reshape(k, r), result.x[k * r :]
    return LogisticProbe(mean, scale, w @ basis.T, bias, c)


def _fit_streamed(x: np.ndarray, y: np.ndarray, num_classes: int, c: float, block_rows: int) -> LogisticProbe:
    """``_fit``'s objective in the standardised feature space itself, summed over blocks of rows of ``x``
    (each block standardised in float64 as it is used): the same optimum (the problem is strictly convex)."""
    mean, scale = standardisation(x, block_rows)
    y = np.asarray(y, dtype=np.int64)
    k, d = num_classes, x.shape[1]
    blocks = row_blocks(x.shape[0], block_rows)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * d].reshape(k, d), theta[k * d :]
        loss, grad_w, grad_b = (w * w).sum() / (2 * c), w / c, np.zeros(k)
        for rows in blocks:
            xs = (x[rows] - mean) / scale
            z = xs @ w.T + b
            lse = logsumexp(z, axis=1)
            picked = np.arange(len(z)), y[rows]
            loss += float((lse - z[picked]).sum())
            g = np.exp(z - lse[:, None])  # d loss / d z, less the one-hot below
            g[picked] -= 1.0
            grad_w = grad_w + g.T @ xs
            grad_b += g.sum(axis=0)
        return float(loss), np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(
        objective,
        np.zeros(k * d + k),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-13},
    )
    return LogisticProbe(mean, scale, result.x[: k * d].reshape(k, d), result.x[k * d :], c)


def choose_c(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    num_classes: int,
    grid: Sequence[float] = C_GRID,
    folds: int = 3,
    seed: int = 0,
) -> float:
    """The ``C`` of ``grid`` with the best pooled macro-F1 over an inner grouped CV of these (training) videos.

    Ties go to the smaller ``C`` (the stronger regularisation). With fewer groups than folds the
    folds shrink; with fewer than two groups per class there is nothing to validate on and C=1.
    """
    y = np.asarray(y)
    k = min(folds, len(set(groups)), int(np.bincount(y, minlength=num_classes)[np.unique(y)].min()))
    if k < 2:
        return 1.0
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = list(splitter.split(x, y, list(groups)))
    best_c, best = grid[0], -1.0
    for c in grid:
        predicted = np.empty_like(y)
        for fit, held in splits:
            predicted[held] = fit_logistic(x[fit], y[fit], num_classes, c).predict(x[held])
        score = classification_metrics(y, predicted, num_classes)["macro_f1"]
        if score > best + 1e-12:
            best_c, best = c, score
    return best_c


def fit_probe(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], num_classes: int, c: float | None = None, seed: int = 0
) -> LogisticProbe:
    """The probe for these training videos: ``C`` from the inner grouped CV unless given."""
    chosen = choose_c(x, y, groups, num_classes, seed=seed) if c is None else c
    return fit_logistic(x, y, num_classes, chosen)


__all__ = [
    "C_GRID",
    "STREAM_ABOVE",
    "LogisticProbe",
    "choose_c",
    "fit_logistic",
    "fit_probe",
    "pooled_mean",
    "standardisation",
]
