"""The textbook linear probe, done as the textbook does it: multinomial logistic regression.

On frozen features the baseline every recipe must beat is a logistic regression on the
(masked) mean of a video's frame features, standardised with the training videos'
statistics. Done right that is a convex problem with one answer, so it is solved, not
trained: full batch, L-BFGS (SciPy's L-BFGS-B, as scikit-learn's own solver) in float64, to a
tight gradient tolerance. The objective is scikit-learn's divided by the number of training videos N
(the same optimum),

    (1/N) sum_i CE(W x_i + b, y_i) + ||W||^2 / (2 C N)          (the intercept is not penalised)

so that one gradient tolerance (``GTOL``, on the mean loss) asks the same accuracy per video at 100 videos
and at 10^6: on the summed loss a fixed tolerance is 10^4 times stricter at 10^6 videos than at 100, and
the old fit met it only by running into its ``ftol``. A test checks the fitted probe against
``sklearn.linear_model.LogisticRegression`` on the same features.

The work is done once and re-used (issue 49):

- a training set is made ready once (``Problem``: its standardisation, and for N < D its span) and solved
  at any ``C``, each solve warm-started from another probe (``init``, re-expressed in this set's
  standardisation), so a grid of ``C`` is walked from the strongest regularisation to the weakest, each fit
  starting where the previous one stopped;
- ``C`` is chosen on a seeded subsample of whole groups (``grouped_subsample``, at most ``SUBSAMPLE_CLIPS``
  clips), by an inner grouped cross-validation on the training videos only (``choose_c``), never on the
  videos being scored; the one fit on every video then starts from the subsample's solution (``warm_start``);
- every fit counts its work (``FitRecord``: iterations, evaluations, passes over the rows), and a choice
  the sum of its fits' (``CChoice``), so a caller reports and a test checks counts, not times;
- the loss and gradient are computed in numpy on the CPU (BLAS on the process's threads; one thread for
  tiny problems) and in torch on a CUDA device (``TorchObjective``: the features moved to the GPU once),
  both in float64 arithmetic, both minimised by the same L-BFGS-B.

The ``linear`` model family (``research.models.linear``) is a different thing: a trained
network head (AdamW, epochs, dropout, augmentation) for the recipe studies.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_info, threadpool_limits

from research.engine.metrics import classification_metrics

log = logging.getLogger(__name__)

# The L2 grid: sklearn's default C=1 in the middle, two decades either side (frozen 1280-d features
# of ~100 videos need strong regularisation; 2-10 k videos need little).
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

# Above this many numbers in ``x [N, D]`` (512 MB in float64: ~52 000 videos of 1280-d features) the probe is
# fitted, standardised and applied in blocks of rows: no float64 copy of ``x``, no SVD, memory that does not
# grow with N beyond ``x`` itself. Below it a standardised float64 copy is solved in memory.
STREAM_ABOVE = 2**26
BLOCK_NUMBERS = 2**23  # a block of rows holds about this many numbers (64 MB in float64) for the one-off passes
# The objective's blocks are smaller: a block's float64 copy (2 MB) stays in a core's L2 cache (2 MB here) between
# the logits' product and the gradient's, which read it one after the other, and ~200 rows of 1280 features are
# still enough work per block that the ~10 numpy calls around it do not dominate (of 2^16 to 2^22, 2^18 used the
# least CPU time per evaluation on 50 000 x 1280, in a side-by-side run on this machine).
FIT_BLOCK_NUMBERS = 2**18
DEVICE_BLOCK_NUMBERS = 2**25  # per block of rows on a GPU (a 256 MB float64 temporary): few kernel launches
STAGE_NUMBERS = 2**24  # per pinned staging buffer on the way to a GPU (64 MB in float32); two of them
# Below this many numbers in the matrix a fit's products read (32 MB in float64: ~3 300 videos of 1280 features;
# N x N for N < 1280 videos, solved in their span) BLAS runs on one thread, as the old probe always did: each
# product (4 columns, one per class) then takes milliseconds, and threads that share it out wait for each other
# (on a shared machine, threads that wait for a busy core make a small fit slower, not faster). Above, the
# process's threads (OMP_NUM_THREADS, or every core): the products are long reads of memory that more cores speed.
ONE_THREAD_BELOW = 2**22
# L-BFGS stops when the largest component of the mean loss's gradient (standardised features) is below GTOL, or the
# mean loss moves by less than FTOL in an iteration. At 1e-9 the probabilities were within 5e-7 of the optimum on
# the real benchmark's means, 1e-7 on 15 000 of the scale benchmark's clips, and equal to a fit at 1e-14 on the
# tests' features (tests/test_probe.py asserts 1e-6); 1e-8 left 1e-6 to 6e-6, for a quarter fewer iterations. The
# old fit's 1e-9 on the summed loss asked 1e-9 / N per video: 1e-15 at 10^6 videos, below what float64 resolves.
GTOL = 1e-9
FTOL = 1e-15  # a relative change of 1e-15 of a mean loss of ~1: float64's resolution, never the binding one
MAX_ITER = 5000  # iterations (~200 are needed from zero); a fit that stops here says so (``FitRecord.converged``)
# C is chosen on at most this many clips (issue 49's bound): each of the grid's fits then reads at most 50 000
# rows per evaluation whatever N is, and the one fit on all N starts from the subsample's solution. The real
# benchmark's 381 clips lie within it (the same C as the full grid; tests/test_probe.py).
SUBSAMPLE_CLIPS = 50_000


# ------------------------------------------------------------------- the fitted probe and its record


@dataclass(frozen=True)
class FitRecord:
    """The work one fit did, counted (not timed): what a caller reports and a test checks."""

    rows: int  # videos it was fitted on
    iterations: int  # L-BFGS iterations
    evaluations: int  # evaluations of the loss and its gradient: each reads every row once
    passes: int  # passes over the rows in all: the evaluations, plus the standardisation's 2 (and the span's 1)
    # when this fit was the first on its rows (a grid walk pays them once)
    converged: bool  # False: stopped short of GTOL (the iteration cap, a stuck line search); a warning says so
    warm: bool  # started from another probe's solution
    backend: str  # where the loss and gradient were computed: "numpy", or "torch (DEVICE)"
    threads: int  # BLAS (or torch) threads it ran on; 0 on a GPU

    def rows_read(self) -> int:
        """Rows read over all its passes: summed over fits and divided by N, the passes over N rows."""
        return self.rows * self.passes


@dataclass
class LogisticProbe:
    """A fitted probe: standardisation statistics and the weights, applied in ``predict_proba``."""

    mean: np.ndarray  # [D] of the training videos
    scale: np.ndarray  # [D], 1 where a feature is constant
    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    c: float
    record: FitRecord | None = None  # how it was fitted (None: read from a file)
    choice: CChoice | None = None  # how its C was chosen (``fit_probe``; None: C was given)

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

    def in_statistics(self, mean: np.ndarray, scale: np.ndarray) -> LogisticProbe:
        """The same logits on features standardised by ``(mean, scale)`` (another set's): a warm start there."""
        a_w, a_b = self.raw()
        return LogisticProbe(mean, scale, a_w * scale, a_b + a_w @ mean, self.c)

    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A [C, D], a [C])`` with ``logits(x) = x A^T + a``: the probe on unstandardised features, the form
        in which probes fitted on different rows (other statistics) are compared, averaged or re-expressed."""
        a_w = self.weight / self.scale
        return a_w, self.bias - a_w @ self.mean


def from_raw(weight: np.ndarray, bias: np.ndarray, c: float) -> LogisticProbe:
    """The probe ``x A^T + a`` on unstandardised features (mean 0, scale 1): e.g. an average of probes."""
    d = weight.shape[1]
    return LogisticProbe(np.zeros(d), np.ones(d), weight, bias, c)


def pooled_mean(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[N, L, D]`` zero-padded sequences -> ``[N, D]`` means over each video's valid frames."""
    mask = np.arange(features.shape[1])[None, :] < np.asarray(lengths)[:, None]
    total = np.einsum("nld,nl->nd", features.astype(np.float64), mask.astype(np.float64))
    return total / np.maximum(mask.sum(axis=1, keepdims=True), 1)


def row_blocks(n: int, rows: int) -> list[slice]:
    """Consecutive slices of ``rows`` rows (the last shorter) covering ``n`` rows."""
    return [slice(start, min(start + rows, n)) for start in range(0, n, max(1, rows))]


def block_rows_for(dim: int, numbers: int = BLOCK_NUMBERS) -> int:
    return max(1, numbers // max(1, dim))


def standardisation(x: np.ndarray, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature (``StandardScaler``'s: population std, 1 for constant features).

    Above ``STREAM_ABOVE`` numbers (or with ``block_rows``) in two passes over blocks of rows, in float64."""
    if block_rows is None and x.size <= STREAM_ABOVE:
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        return mean, np.where(std > 0, std, 1.0)
    blocks = row_blocks(x.shape[0], block_rows or block_rows_for(x.shape[1]))
    mean = sum(x[rows].sum(axis=0, dtype=np.float64) for rows in blocks) / max(x.shape[0], 1)
    squares = sum(((x[rows] - mean) ** 2).sum(axis=0) for rows in blocks)
    std = np.sqrt(squares / max(x.shape[0], 1))
    return mean, np.where(std > 0, std, 1.0)


@contextlib.contextmanager
def blas_threads(numbers: int) -> Iterator[int]:
    """One BLAS thread for products over fewer than ``ONE_THREAD_BELOW`` numbers, else the process's; yields the
    count in force (what ``FitRecord.threads`` reports)."""
    with threadpool_limits(1 if numbers < ONE_THREAD_BELOW else None, user_api="blas"):
        yield max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1)


# ------------------------------------------------------------------- one training set, solved at any C


class Problem:
    """The logistic regression of one training set, ready to be solved at any ``C`` (``fit``).

    Made ready once: the standardisation (2 passes over ``x``) and, for a standardised float64 copy small
    enough to hold (``STREAM_ABOVE``), that copy; with N videos of D > N features also an orthonormal basis
    ``V`` of the rows' span (``X = U S V^T``). The optimum's weights lie in that span (the data term's
    gradient is ``G^T X``, and at the optimum ``W = -C G^T X``), so the problem is solved there, ``W = B V^T``
    with ``||W|| = ||B||``: the same solution, a fraction of the cost. Above ``STREAM_ABOVE`` numbers the loss
    and gradient are summed over blocks of rows of ``x`` itself, the standardisation folded into the weights
    (``x A^T + a``): beside ``x`` only a block and [C, D] arrays are held.

    ``backend``: where the loss and gradient are computed, ``"numpy"`` (``NumpyObjective``) or ``"torch"``
    (``TorchObjective``, on ``device``); ``"auto"``: torch on a CUDA device that holds ``x``, numpy otherwise.
    Either way SciPy's L-BFGS-B minimises it (``fit``).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        block_rows: int | None = None,
        device: Any = "cpu",
        backend: str = "auto",
    ) -> None:
        self.n, self.d = x.shape
        self.k = num_classes
        self.y = np.asarray(y, dtype=np.int64)
        self.backend = _backend(backend, device, x)
        self.device = str(device)
        self._unpaid = 2  # the standardisation's passes, charged to the first fit
        self.basis: np.ndarray | None = None
        if self.backend == "torch":
            self.objective = TorchObjective(x, self.y, num_classes, device, block_rows)
            self.mean, self.scale = self.objective.mean, self.objective.scale
            return
        with blas_threads(x.size):
            self.mean, self.scale = standardisation(x, block_rows)
            if block_rows is None and x.size <= STREAM_ABOVE:
                xs = x - self.mean  # float64: the one copy of the rows this path holds
                xs /= self.scale
                if self.n < self.d:
                    _, sv, vt = np.linalg.svd(xs, full_matrices=False)
                    keep = sv > sv.max() * 1e-10 if sv.size and sv.max() > 0 else np.zeros(sv.shape, bool)
                    self.basis = vt[keep].T  # [D, r]
                    xs = xs @ self.basis  # [N, r]
                    self._unpaid += 1
                self.objective = NumpyObjective(xs, self.y, num_classes, None, None, [slice(0, self.n)])
            else:
                rows = block_rows or block_rows_for(self.d, FIT_BLOCK_NUMBERS)
                self.objective = NumpyObjective(x, self.y, num_classes, self.mean, self.scale, row_blocks(self.n, rows))

    def fit(self, c: float, init: LogisticProbe | None = None) -> LogisticProbe:
        """The probe at ``c``, L-BFGS started from ``init``'s solution (re-expressed in this set's
        standardisation: the same logits) or from zero."""
        if init is None:
            w0, b0 = np.zeros((self.k, self.d)), np.zeros(self.k)
        else:
            start = init.in_statistics(self.mean, self.scale)
            w0, b0 = start.weight, start.bias
        if self.basis is not None:
            w0 = w0 @ self.basis
        evaluations = 0

        def counted(theta: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal evaluations
            evaluations += 1
            return self.objective(theta, c)

        with blas_threads(self.objective.numbers) as threads:
            result = minimize(
                counted,
                np.concatenate([w0.ravel(), b0]),
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": MAX_ITER, "maxfun": 3 * MAX_ITER, "gtol": GTOL, "ftol": FTOL},
            )
        # converged: a tolerance met; or a line search that could not go further with the gradient already within
        # 10 x GTOL (float64's floor near the optimum); not: the iteration or evaluation cap, or a search stuck
        converged = bool(result.success) or float(np.abs(result.jac).max()) <= 10 * GTOL
        if not converged:
            log.warning("probe: L-BFGS stopped short of GTOL at C=%g (N=%d): %s", c, self.n, result.message)
        width = result.x.size // self.k - 1
        w, bias = result.x[: self.k * width].reshape(self.k, width), result.x[self.k * width :]
        if self.basis is not None:
            w = w @ self.basis.T
        if self.backend == "torch":
            threads, backend = self.objective.threads(), f"torch ({self.device})"
        else:
            backend = "numpy"
        record = FitRecord(
            self.n,
            int(result.nit),
            evaluations,
            evaluations + self._unpaid,
            converged,
            init is not None,
            backend,
            threads,
        )
        self._unpaid = 0
        return LogisticProbe(self.mean, self.scale, w, bias, float(c), record)


def _backend(backend: str, device: Any, x: np.ndarray) -> str:
    """``"auto"``: torch where ``device`` is CUDA and its free memory holds ``x`` (with room for the blocks),
    else numpy (the same optimum, on the CPU; a warning says why)."""
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"probe backend is auto, numpy or torch, got {backend!r}")
    if backend != "auto":
        return backend
    if not str(device).startswith("cuda"):
        return "numpy"

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if x.nbytes + 2**30 > free:  # x itself and 1 GB for blocks, parameters and L-BFGS's history
        log.warning(
            "probe: %s has %.1f GB free for %.1f GB of features: fitted on the CPU", device, free / 1e9, x.nbytes / 1e9
        )
        return "numpy"
    return "torch"


class NumpyObjective:
    """The mean loss and its gradient in float64 over blocks of rows: of the standardised rows themselves
    (``mean`` None) or of raw rows, the standardisation folded into the weights (``x A^T + a``, ``A = W / s``,
    ``a = b - A m``; the gradient ``G^T x / s - (sum G) m / s``), so no block is standardised."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        k: int,
        mean: np.ndarray | None,
        scale: np.ndarray | None,
        blocks: list[slice],
    ) -> None:
        self.x, self.y, self.k, self.mean, self.scale, self.blocks = x, y, k, mean, scale, blocks
        self.n = x.shape[0]
        self.numbers = x.size  # what each evaluation reads (``blas_threads``)

    def __call__(self, theta: np.ndarray, c: float) -> tuple[float, np.ndarray]:
        k, d = self.k, self.x.shape[1]
        w, b = theta[: k * d].reshape(k, d), theta[k * d :]
        if self.mean is None:
            a_w, a_b = w, b
        else:
            a_w = w / self.scale
            a_b = b - a_w @ self.mean
        loss, grad, total = 0.0, np.zeros((k, d)), np.zeros(k)
        for rows in self.blocks:
            xb = np.asarray(self.x[rows], dtype=np.float64)
            z = xb @ a_w.T + a_b
            lse = logsumexp(z, axis=1)
            picked = np.arange(len(z)), self.y[rows]
            loss += float((lse - z[picked]).sum())
            g = np.exp(z - lse[:, None])  # d loss / d z, less the one-hot below
            g[picked] -= 1.0
            grad += g.T @ xb
            total += g.sum(axis=0)
        if self.mean is not None:
            grad = grad / self.scale - np.outer(total, self.mean / self.scale)
        n = max(self.n, 1)
        loss = loss / n + float((w * w).sum()) / (2 * c * n)
        return loss, np.concatenate([((grad + w / c) / n).ravel(), total / n])


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """``x`` as a tensor on ``device``: shared with numpy on the CPU (no copy); on CUDA copied once, block by
    block through two pinned buffers, each reused only once its previous copy has finished (an event)."""
    x = np.ascontiguousarray(x)
    if device.type != "cuda":
        return torch.from_numpy(x)
    out = torch.empty(x.shape, dtype=torch.from_numpy(x[:0]).dtype, device=device)
    rows = block_rows_for(x.shape[1], STAGE_NUMBERS)
    staging = [torch.empty((rows, x.shape[1]), dtype=out.dtype, pin_memory=True) for _ in range(2)]
    copied: list[torch.cuda.Event | None] = [None, None]
    stream = torch.cuda.current_stream(device)
    for i, part in enumerate(row_blocks(x.shape[0], rows)):
        slot = i % 2
        if copied[slot] is not None:
            copied[slot].synchronize()  # the buffer's previous block has reached the device
        buffer = staging[slot][: part.stop - part.start]
        buffer.numpy()[...] = x[part]
        out[part].copy_(buffer, non_blocking=True)
        copied[slot] = torch.cuda.Event()
        copied[slot].record(stream)
    stream.synchronize()  # before the staging buffers are freed
    return out


class TorchObjective:
    """``NumpyObjective``'s loss and gradient (raw rows, the standardisation folded into the weights) in torch,
    on ``device``: what a CUDA device computes, tested on the CPU against the numpy one (tests/test_probe.py).

    The arithmetic is float64, as on the CPU: the features stay on the device in the dtype they came in
    (float32 above the pooled means' threshold: 5 GB at 10^6 clips x 1280) and each block is widened as it is
    used. Not float32: a float32 gradient summed over 10^6 rows is exact to ~1e-6 of its terms, so it could
    not be driven to ``GTOL``; and the products have one column per class (4), so they are bound by reading
    the features, not by arithmetic: float64 costs about what float32 does, even on a GPU with slow float64
    (TF32 never applies: it is a float32 mode). Its standardisation is computed on the device (2 passes).

    L-BFGS itself stays SciPy's (5 k parameters: its own arithmetic is nothing beside a pass over the rows; a
    call moves theta and the gradient, 40 kB each way): the same iterations as on the CPU. torch's own
    ``torch.optim.LBFGS`` (strong Wolfe, history 10) took 1 295 iterations where L-BFGS-B took 234 on the real
    benchmark's means at C=10, and stopped short of ``GTOL``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, k: int, device: Any, block_rows: int | None) -> None:
        self.device = torch.device(device)
        self.x = to_device(x, self.device)
        self.y = torch.as_tensor(y, dtype=torch.int64).to(self.device, non_blocking=True)
        self.n, self.d = x.shape
        self.k = k
        self.numbers = x.size
        numbers = DEVICE_BLOCK_NUMBERS if self.device.type == "cuda" else FIT_BLOCK_NUMBERS
        self.blocks = row_blocks(self.n, block_rows or block_rows_for(self.d, numbers))
        f64 = torch.float64
        total = torch.zeros(self.d, dtype=f64, device=self.device)
        for rows in self.blocks:
            total += self.x[rows].to(f64).sum(0)
        mean = total / max(self.n, 1)
        squares = torch.zeros(self.d, dtype=f64, device=self.device)
        for rows in self.blocks:
            squares += ((self.x[rows].to(f64) - mean) ** 2).sum(0)
        std = torch.sqrt(squares / max(self.n, 1))
        scale = torch.where(std > 0, std, torch.ones_like(std))
        self._mean, self._scale = mean, scale
        self.mean, self.scale = mean.cpu().numpy(), scale.cpu().numpy()
        longest = max((r.stop - r.start for r in self.blocks), default=0)
        self._minus_one = -torch.ones((longest, 1), dtype=f64, device=self.device)

    def __call__(self, theta: np.ndarray, c: float) -> tuple[float, np.ndarray]:
        """The mean loss and its gradient at ``theta`` (``[W.ravel(), b]``, standardised features), as
        ``probe.NumpyObjective`` returns them: what SciPy's L-BFGS-B reads (5 k numbers each way per call)."""
        k, d, f64 = self.k, self.d, torch.float64
        theta_t = torch.from_numpy(theta).to(self.device, non_blocking=True)
        w, b = theta_t[: k * d].view(k, d), theta_t[k * d :]
        a_w = w / self._scale
        a_b = b - a_w @ self._mean
        loss = torch.zeros((), dtype=f64, device=self.device)
        grad = torch.zeros((k, d), dtype=f64, device=self.device)
        total = torch.zeros(k, dtype=f64, device=self.device)
        for rows in self.blocks:
            xb, yb = self.x[rows].to(f64), self.y[rows, None]
            z = torch.addmm(a_b, xb, a_w.T)
            lse = torch.logsumexp(z, dim=1)
            loss += (lse - z.gather(1, yb)[:, 0]).sum()
            g = torch.exp(z - lse[:, None])  # d loss / d z, less the one-hot below
            g.scatter_add_(1, yb, self._minus_one[: len(yb)])
            grad.addmm_(g.T, xb)
            total += g.sum(0)
        grad = grad / self._scale - torch.outer(total, self._mean / self._scale)
        n = max(self.n, 1)
        loss = loss / n + (w * w).sum() / (2 * c * n)
        out = torch.cat([((grad + w / c) / n).reshape(-1), total / n]).cpu().numpy()
        return float(loss), out

    def threads(self) -> int:
        """torch's CPU threads it runs on; 0 on a GPU."""
        return 0 if self.device.type == "cuda" else torch.get_num_threads()


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    c: float = 1.0,
    init: LogisticProbe | None = None,
    block_rows: int | None = None,
    device: Any = "cpu",
    backend: str = "auto",
) -> LogisticProbe:
    """Solve the L2-regularised multinomial logistic regression on standardised ``x`` (full batch, L-BFGS),
    started from ``init``'s solution if given (e.g. the same set at a neighbouring ``C``, or a subsample's
    fit at this ``C``): the same optimum, fewer iterations. The returned probe's ``record`` counts the work.

    ``block_rows``: rows per block (forces the blocked path); ``device``, ``backend``: see ``Problem``."""
    return Problem(x, y, num_classes, block_rows, device, backend).fit(c, init)


# ------------------------------------------------------------------- choosing C


@dataclass
class CChoice:
    """How ``C`` was chosen: the inner CV's score per ``C`` on a subsample, and the work it took."""

    c: float
    scores: dict[float, float]  # pooled macro-F1 of the inner folds, per C of the grid
    clips: int  # clips of the subsample it was chosen on
    of_clips: int  # clips it was given
    groups: int  # whole groups in the subsample
    folds: int  # inner folds (0: too few groups or clips per class; C = 1)
    fits: tuple[FitRecord, ...] = ()  # every fit, in order: fold by fold, the grid from the smallest C
    starts: dict[float, LogisticProbe] = field(default_factory=dict, repr=False)  # per C: the folds' average
    fold_rows: int = 0  # clips a fold's fits were fitted on (on average)

    def start(self, rows: int) -> LogisticProbe | None:
        """The full fit's warm start at ``c`` on ``rows`` clips (``warm_start`` of the folds' averages)."""
        return warm_start(self.starts, self.c, rows, self.fold_rows) if self.starts else None

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report: C, its scores, the subsample, fits and passes."""
        return {
            "c": self.c,
            "scores": {str(c): s for c, s in self.scores.items()},
            "clips": self.clips,
            "of_clips": self.of_clips,
            "groups": self.groups,
            "folds": self.folds,
            **work(self.fits, self.of_clips),
        }


def work(fits: Sequence[FitRecord], rows: int) -> dict[str, Any]:
    """Fits, iterations, evaluations and passes of ``fits``; ``passes_over_rows``: rows read / ``rows``."""
    return {
        "fits": len(fits),
        "iterations": sum(f.iterations for f in fits),
        "evaluations": sum(f.evaluations for f in fits),
        "passes": sum(f.passes for f in fits),
        "passes_over_rows": sum(f.rows_read() for f in fits) / max(rows, 1),
        "converged": all(f.converged for f in fits),
    }


def grouped_subsample(
    y: np.ndarray, groups: Sequence[str] | np.ndarray | None, max_clips: int, seed: int = 0
) -> np.ndarray:
    """Sorted indices of whole groups holding at most ``max_clips`` clips in all, drawn with ``seed``; all of
    them when there are no more. Groups are taken in a random order, first one per class (each group counted
    in its most common class), so every class is present and each keeps about its share; a class whose every
    group is bigger than what is left still gets its smallest (the only case that passes ``max_clips``).
    ``groups`` None: each clip its own group (a stratified random subsample)."""
    y = np.asarray(y)
    n = len(y)
    if n <= max_clips:
        return np.arange(n)
    inverse = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    sizes = np.bincount(inverse)
    counts = np.zeros((len(sizes), int(y.max()) + 1), np.int64)
    np.add.at(counts, (inverse, y), 1)
    majority = counts.argmax(axis=1)
    order = np.random.default_rng(seed).permutation(len(sizes))
    chosen = np.zeros(len(sizes), bool)
    budget = max_clips
    for cls in np.unique(majority):
        candidates = order[majority[order] == cls]
        fitting = candidates[sizes[candidates] <= budget]
        pick = fitting[0] if len(fitting) else candidates[np.argmin(sizes[candidates])]
        chosen[pick] = True
        budget -= int(sizes[pick])
    for g in order:
        if budget <= 0:
            break
        if not chosen[g] and sizes[g] <= budget:
            chosen[g] = True
            budget -= int(sizes[g])
    return np.flatnonzero(chosen[inverse])


def choose_c(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    num_classes: int,
    grid: Sequence[float] = C_GRID,
    folds: int = 3,
    seed: int = 0,
    max_clips: int = SUBSAMPLE_CLIPS,
    device: Any = "cpu",
) -> CChoice:
    """The ``C`` of ``grid`` with the best pooled macro-F1 over an inner grouped CV of these (training) videos.

    On a seeded subsample of at most ``max_clips`` clips of whole groups (``grouped_subsample``); on each inner
    fold the grid is walked from the smallest ``C`` (the strongest regularisation) to the largest, each fit
    warm-started from the previous ``C``'s solution on that fold. Ties go to the smaller ``C``. With fewer
    groups than folds the folds shrink; with fewer than two groups per class there is nothing to validate on
    and C=1. The returned record holds every fit's work and, at the chosen ``C``, the folds' average probe:
    the full fit's warm start (``fit_probe``)."""
    y = np.asarray(y)
    groups = np.asarray(groups)
    sub = grouped_subsample(y, groups, max_clips, seed)
    xs, ys, gs = x[sub], y[sub], groups[sub]  # a copy of at most max_clips rows
    made = {"clips": len(sub), "of_clips": len(y), "groups": len(np.unique(gs))}
    present = np.bincount(ys, minlength=num_classes)[np.unique(ys)]
    k = min(folds, made["groups"], int(present.min()))
    if k < 2:
        return CChoice(1.0, {}, folds=0, **made)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = list(splitter.split(xs, ys, gs))
    grid = sorted(grid)
    predicted = {c: np.empty_like(ys) for c in grid}
    raw: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in grid}
    fits: list[FitRecord] = []
    for fit, held in splits:
        problem = Problem(xs[fit], ys[fit], num_classes, device=device)
        previous = None
        for c in grid:
            previous = problem.fit(c, previous)
            predicted[c][held] = previous.predict(xs[held])
            raw[c].append(previous.raw())
            fits.append(previous.record)
    scores = {c: classification_metrics(ys, predicted[c], num_classes)["macro_f1"] for c in grid}
    starts = {c: from_raw(*(np.mean(parts, axis=0) for parts in zip(*raw[c], strict=True)), c) for c in grid}
    fold_rows = round(np.mean([len(fit) for fit, _ in splits]))
    return CChoice(best_c(scores), scores, folds=k, fits=tuple(fits), starts=starts, fold_rows=fold_rows, **made)


def best_c(scores: dict[float, float]) -> float:
    """The ``C`` with the best score; ties (within 1e-12) go to the smaller ``C``, the stronger regularisation."""
    best = min(scores)
    for c in sorted(scores):
        if scores[c] > scores[best] + 1e-12:
            best = c
    return best


def warm_start(solutions: dict[float, LogisticProbe], c: float, rows: int, fitted_rows: int) -> LogisticProbe:
    """Of ``solutions`` (per ``C``, fitted on ``fitted_rows`` rows), the start for a fit at ``c`` on ``rows``
    rows: the one whose ``C`` is nearest (in log) ``c * rows / fitted_rows``, where the regularisation per clip,
    ``||W||^2 / (2 C N)``, is the full fit's; the mean loss over clips is alike in both. Measured on 10^5
    fabricated clips (the scale benchmark's, a subsample of 25 000) at C=10: 74 evaluations from the solution
    at 40 against 101 from the one at 10 (benchmarks/scale.py's probe stage reports its own)."""
    target = math.log(c * rows / max(fitted_rows, 1))
    return solutions[min(solutions, key=lambda s: abs(math.log(s) - target))]


@dataclass
class SplitFit:
    """A probe fitted on training videos with ``C`` chosen on held-out ones (``fit_split``), and its work."""

    probe: LogisticProbe
    scores: dict[float, float]  # held-out macro-F1 per C of the grid: what chose it
    fits: tuple[FitRecord, ...]  # every fit in order: the grid on the subsample, then the full fit (if any)
    clips: int  # training clips
    subsample_clips: int  # the training clips the grid was fitted on (all of them up to ``max_clips``)


def fit_split(
    x: np.ndarray,
    y: np.ndarray,
    x_held: np.ndarray,
    y_held: np.ndarray,
    num_classes: int,
    grid: Sequence[float] = C_GRID,
    max_clips: int = SUBSAMPLE_CLIPS,
    seed: int = 0,
    device: Any = "cpu",
) -> SplitFit:
    """The probe of ``(x, y)`` with ``C`` chosen on held-out videos ``(x_held, y_held)``, fitted once.

    The grid is fitted on a seeded subsample of at most ``max_clips`` training clips (``grouped_subsample``,
    every class present; clips, not whole groups: the held-out videos' groups are held out already), walked
    from the smallest ``C`` to the largest, each fit warm-started from the previous one, each scored on all the
    held-out videos (macro-F1; ties go to the smaller ``C``). Up to ``max_clips`` training clips the subsample
    is all of them and the winner is the probe; above, one fit on all of them at the winning ``C``, started
    from the subsample's solution (``warm_start``)."""
    y = np.asarray(y)
    sub = grouped_subsample(y, None, max_clips, seed)
    whole = len(sub) == len(y)
    # a copy of <= max_clips rows, released (the walk returns) before the full fit
    scores, solutions = _walk_grid(
        Problem(x if whole else x[sub], y[sub], num_classes, device=device), grid, x_held, y_held
    )
    best = best_c(scores)
    fits = [solutions[c].record for c in sorted(grid)]
    probe = solutions[best]
    if not whole:
        probe = fit_logistic(x, y, num_classes, best, init=warm_start(solutions, best, len(y), len(sub)), device=device)
        fits.append(probe.record)
    return SplitFit(probe, scores, tuple(fits), len(y), len(sub))


def _walk_grid(
    problem: Problem, grid: Sequence[float], x_held: np.ndarray, y_held: np.ndarray
) -> tuple[dict[float, float], dict[float, LogisticProbe]]:
    """Every C of ``grid`` from the smallest, each fit warm-started from the last, scored (macro-F1) on the held-out
    clips: the scores and the solutions per C."""
    scores: dict[float, float] = {}
    solutions: dict[float, LogisticProbe] = {}
    previous: LogisticProbe | None = None
    for c in sorted(grid):
        previous = solutions[c] = problem.fit(c, previous)
        scores[c] = classification_metrics(y_held, previous.predict(x_held), problem.k)["macro_f1"]
    return scores, solutions


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    num_classes: int,
    c: float | None = None,
    seed: int = 0,
    max_clips: int = SUBSAMPLE_CLIPS,
    device: Any = "cpu",
) -> LogisticProbe:
    """The probe for these training videos: ``C`` from the inner grouped CV (``choose_c``) unless given, then
    one fit on every video, warm-started from the folds' solution at that ``C``. ``probe.choice`` is how
    ``C`` was chosen (its fits), ``probe.record`` the full fit's work."""
    choice = choose_c(x, y, groups, num_classes, seed=seed, max_clips=max_clips, device=device) if c is None else None
    probe = fit_logistic(
        x, y, num_classes, choice.c if choice else c, init=choice.start(len(y)) if choice else None, device=device
    )
    probe.choice = choice
    return probe


__all__ = [
    "C_GRID",
    "GTOL",
    "STREAM_ABOVE",
    "SUBSAMPLE_CLIPS",
    "CChoice",
    "FitRecord",
    "LogisticProbe",
    "Problem",
    "SplitFit",
    "TorchObjective",
    "best_c",
    "choose_c",
    "fit_logistic",
    "fit_probe",
    "fit_split",
    "from_raw",
    "grouped_subsample",
    "pooled_mean",
    "standardisation",
    "warm_start",
    "work",
]
