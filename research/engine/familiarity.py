"""How much a clip looks like the training collection, and temperatures that depend on it.

A classifier calibrated on held-out *families* treats every clip as a kind of video it has never seen,
and is under-confident on clips of kinds it knows; calibrated on held-out clips of known kinds, it is
over-confident on new kinds. ``Familiarity`` scores each clip's pooled single-scale frame feature
against a **reference set** of training clips (higher: more familiar). Several scorers share one
interface (``Familiarity.fit(x, labels, method=...)``, ``.score``, ``.to_record`` / ``from_record``):

- ``knn``: the cosine similarity to the k-th nearest reference clip, on L2-normalised features
  (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors", ICML);
- ``cosine_pca``: the cosine similarity to the nearest reference clip after standardisation and 128
  principal directions (the project's first score, kept for comparison and for older classifier files);
- ``vim_residual``: minus the norm of the feature outside the reference's top principal subspace, the
  residual that ViM scores (Wang et al. 2022, "ViM: Out-of-distribution with virtual-logit matching", CVPR);
- ``mahalanobis``: minus the smallest Mahalanobis distance to a class mean under one shared covariance
  (Lee et al. 2018, NeurIPS), optionally on L2-normalised features (Mahalanobis++: Mueller & Hein 2025,
  ICML) and relative to a class-agnostic Gaussian (Ren et al. 2021, "A simple fix to Mahalanobis distance
  for improving near-OOD detection"); the covariance is shrunk (Ledoit & Wolf 2004), as a reference of a few
  hundred clips in 1280 dimensions leaves it singular;
- with the backbone's frozen ImageNet head (``imagenet_head``; absent where the backbone has none):
  ``energy`` (logsumexp of the logits: Liu et al. 2020, NeurIPS), ``max_logit`` (Hendrycks et al. 2022,
  ICML) and ``vim`` (energy minus the scaled residual: Wang et al. 2022). The pooled feature through the
  linear head is the mean of the frame logits.

The reference is explicit and its size is part of the score: a nearest-neighbour similarity grows with
the number of reference clips. ``fit`` takes a seeded sample of exactly ``size`` clips where the reference
holds more, and records the size it used; scoring against one size at calibration (per CV fold) and at
prediction (the shipped classifier) needs the same ``size`` for both (``familiarity_bakeoff`` and the
pipeline pass the smallest fold's). ``familiarity_bakeoff`` measures every scorer on three kinds of
held-out clip (seen sources, held-out sources, unseen families): each pair's AUROC with an interval that
resamples groups.

The calibration by familiarity band (bands cut at the score's quantiles, one temperature per band, and how
well that transfers to every kind of held-out clip) is ``research.engine.temperatures``'.

Cost: linear in the scored clips (at most ``MAX_PROTOTYPES`` reference clips, in blocks of ``BLOCK``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from research.backbones.loading import load_classifier
from research.backbones.table import FUSION_SEPARATOR, get_spec
from research.engine.calibration import fit_temperature, with_temperature
from research.engine.metrics import RESAMPLE_BLOCK

MAX_PROTOTYPES = 4096  # reference clips compared with: all of a small collection, a seeded sample of a large one
DIMS = 128  # cosine_pca's principal directions: the cosine of 1280-d means is dominated by a few directions anyway
BLOCK = 2048  # scored clips per block: memory [BLOCK, MAX_PROTOTYPES] float64 = 64 MB
MIN_BAND = 30  # held-out clips a band needs for a temperature of its own; fewer: bands are merged
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # the coverage table's confidence thresholds
# The scorer the pipeline ships: the bake-off's winner on benchmarks/real (benchmarks/familiarity.py,
# benchmarks/RESULTS.md): seen sources against unseen families AUROC 0.955 [0.93, 0.98]; k-NN at k = 1 ties it
# (0.950), every other candidate is below it beyond noise (docs/evaluation.md, familiarity).
DEFAULT_METHOD, DEFAULT_PARAMS = "cosine_pca", {"dims": DIMS}


# ------------------------------------------------------------------ the frozen ImageNet head


@dataclass(frozen=True)
class ImageNetHead:
    """The backbone's own linear classifier over its pooled feature: ``logits = x @ weight.T + bias``."""

    weight: np.ndarray  # [K, D]
    bias: np.ndarray  # [K]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias

    @functools.cached_property
    def origin(self) -> np.ndarray:
        """``[D]``: the feature the head maps to zero logits (``-pinv(W) b``), ViM's origin; computed once per head
        (an SVD of the 1000 x D weight), however many folds fit a scorer with it."""
        return -np.linalg.pinv(self.weight) @ self.bias


def imagenet_head(backbone: str, weights: str = "") -> ImageNetHead | None:
    """The frozen ImageNet head of ``backbone`` (a table name: torchvision's or timm's EfficientNet-Lite), or
    None where there is none to use: a fused pass (several CNNs' features concatenated), a catalogue model (its
    head is dropped when it is built), random weights, or a head that is not one linear map of the feature."""
    if FUSION_SEPARATOR in backbone or weights == "random":
        return None
    spec = get_spec(backbone)
    if spec.catalogue:
        return None
    head = getattr(load_classifier(backbone, pretrained=True), spec.head)
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    if len(linear) != 1 or linear[0].in_features != spec.feature_dim:  # dropout + one linear map, nothing deeper
        return None
    return ImageNetHead(
        linear[0].weight.detach().double().numpy(),
        (linear[0].bias.detach() if linear[0].bias is not None else torch.zeros(linear[0].out_features))
        .double()
        .numpy(),
    )


# ------------------------------------------------------------------ scorers


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _blocks(x: np.ndarray, score: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``score`` over ``x`` in blocks of ``BLOCK`` rows (memory bounded whatever the number of clips)."""
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), BLOCK):
        out[start : start + BLOCK] = score(np.asarray(x[start : start + BLOCK], dtype=np.float64))
    return out


def _principal(z: np.ndarray, dims: int) -> np.ndarray:
    """``[D, min(dims, rank)]``: the top right singular vectors of ``z`` (at most N x D: bounded by the sample)."""
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return np.ascontiguousarray(vt[: min(dims, len(vt))].T)


def _residual(z: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The norm of each row of ``z`` outside the span of ``basis`` (orthonormal columns)."""
    inside = z @ basis
    return np.sqrt(np.maximum((z * z).sum(1) - (inside * inside).sum(1), 0.0))


def _whitening(centred: np.ndarray) -> np.ndarray:
    """``[D, D]`` ``A`` with ``A A^T`` the inverse of the Ledoit-Wolf shrunk covariance of ``centred``, so that
    ``|| (x - m) @ A ||^2`` is the Mahalanobis distance (shrinkage: a few hundred clips in 1280-d are singular).

    The shrunk covariance is ``(1 - a) S + a mu I`` with ``S = X^T X / n``: from the thin SVD of ``X`` (N x D,
    N << D) its inverse square root is ``V diag(values^-1/2 - (a mu)^-1/2) V^T + (a mu)^-1/2 I``, the same
    distances as an eigendecomposition of the D x D matrix at a fraction of the cost (D^2 N, not D^3)."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    n, d = centred.shape
    shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    mu = float((singular**2).sum() / n / d)  # trace(S) / D: the shrinkage target's scale
    floor = shrinkage * mu
    values = (1 - shrinkage) * singular**2 / n + floor
    if n >= d or floor <= 1e-12 * max(mu, 1e-300):  # full rank (or no shrinkage): the span is everything
        return vt.T / np.sqrt(np.maximum(values, 1e-12))[None, :]
    return vt.T @ (vt * (values**-0.5 - floor**-0.5)[:, None]) + np.eye(d) * floor**-0.5


def _fit_cosine_pca(x: np.ndarray, labels: Any, head: Any, dims: int = DIMS) -> dict[str, np.ndarray]:
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    basis = _principal(z, dims)
    return {"mean": mean, "scale": scale, "basis": basis, "prototypes": _unit(z @ basis)}


def _score_cosine_pca(a: dict[str, np.ndarray], x: np.ndarray, **_: Any) -> np.ndarray:
    return (_unit(((x - a["mean"]) / a["scale"]) @ a["basis"]) @ a["prototypes"].T).max(1)


def _fit_knn(x: np.ndarray, labels: Any, head: Any, k: int = 1) -> dict[str, np.ndarray]:
    return {"prototypes": _unit(x)}


def _score_knn(a: dict[str, np.ndarray], x: np.ndarray, k: int = 1) -> np.ndarray:
    similarity = _unit(x) @ a["prototypes"].T  # [B, N]
    k = min(k, similarity.shape[1])
    return -np.partition(-similarity, k - 1, axis=1)[:, k - 1]  # the k-th largest


def _fit_vim_residual(
    x: np.ndarray, labels: Any, head: Any, dims: int = 64, normalise: bool = False
) -> dict[str, np.ndarray]:
    x = _unit(x) if normalise else x
    origin = x.mean(0)
    return {"origin": origin, "basis": _principal(x - origin, dims)}


def _score_vim_residual(a: dict[str, np.ndarray], x: np.ndarray, dims: int = 64, normalise: bool = False) -> np.ndarray:
    return -_residual((_unit(x) if normalise else x) - a["origin"], a["basis"])


def _fit_mahalanobis(
    x: np.ndarray, labels: np.ndarray, head: Any, normalise: bool = True, relative: bool = False
) -> dict[str, np.ndarray]:
    x = _unit(x) if normalise else x
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(0) for c in classes])
    whitening = _whitening(x - means[np.searchsorted(classes, labels)])  # within-class: one shared covariance
    arrays = {"whitening": whitening, "means": means @ whitening}
    if relative:  # one Gaussian over every clip, whatever its class: what the class means add is scored
        mean = x.mean(0)
        background = _whitening(x - mean)
        arrays |= {"background": background, "background_mean": mean @ background}
    return arrays


def _score_mahalanobis(a: dict[str, np.ndarray], x: np.ndarray, normalise: bool = True, **_: Any) -> np.ndarray:
    x = _unit(x) if normalise else x
    z = x @ a["whitening"]
    # ||z - m||^2 = |z|^2 - 2 z.m + |m|^2, per class: [B, C] without a [B, C, D] array
    distances = (z * z).sum(1)[:, None] - 2 * z @ a["means"].T + (a["means"] * a["means"]).sum(1)[None, :]
    nearest = distances.min(1)
    if "background" in a:
        b = x @ a["background"] - a["background_mean"]
        nearest = nearest - (b * b).sum(1)
    return -nearest


def _head_of(a: dict[str, np.ndarray]) -> ImageNetHead:
    return ImageNetHead(a["weight"], a["bias"])


def _fit_head(x: np.ndarray, labels: Any, head: ImageNetHead) -> dict[str, np.ndarray]:
    return {"weight": head.weight, "bias": head.bias}


def _score_energy(a: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    logits = _head_of(a).logits(x)
    top = logits.max(1)
    return top + np.log(np.exp(logits - top[:, None]).sum(1))  # logsumexp: minus the free energy at T = 1


def _score_max_logit(a: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return _head_of(a).logits(x).max(1)


def _fit_vim(x: np.ndarray, labels: Any, head: ImageNetHead, dims: int = 64) -> dict[str, np.ndarray]:
    # ViM's origin: the point the head maps to zero logits (-pinv(W) b), its subspace of the features around it,
    # and alpha matching the residual's scale to the max-logit's on the reference (Wang et al. 2022, section 3)
    origin = head.origin
    basis = _principal(x - origin, dims)
    alpha = head.logits(x).max(1).mean() / max(_residual(x - origin, basis).mean(), 1e-12)
    return {"weight": head.weight, "bias": head.bias, "origin": origin, "basis": basis, "alpha": np.array([alpha])}


def _score_vim(a: dict[str, np.ndarray], x: np.ndarray, dims: int = 64) -> np.ndarray:
    return _score_energy(a, x) - float(a["alpha"][0]) * _residual(x - a["origin"], a["basis"])


@dataclass(frozen=True)
class Method:
    """One scorer: how it is fitted on the reference and how it scores (higher: more familiar)."""

    fit: Callable[..., dict[str, np.ndarray]]
    score: Callable[..., np.ndarray]
    what: str
    labels: bool = False  # needs the reference clips' classes
    head: bool = False  # needs the backbone's ImageNet head


METHODS: dict[str, Method] = {
    "knn": Method(_fit_knn, _score_knn, "cosine similarity to the k-th nearest reference clip (L2-normalised)"),
    "cosine_pca": Method(
        _fit_cosine_pca, _score_cosine_pca, "cosine similarity to the nearest reference clip (standardised, PCA)"
    ),
    "vim_residual": Method(
        _fit_vim_residual, _score_vim_residual, "minus the norm outside the reference's top principal subspace"
    ),
    "mahalanobis": Method(
        _fit_mahalanobis, _score_mahalanobis, "minus the Mahalanobis distance to the nearest class mean", labels=True
    ),
    "energy": Method(_fit_head, _score_energy, "logsumexp of the frozen ImageNet head's logits", head=True),
    "max_logit": Method(_fit_head, _score_max_logit, "the largest logit of the frozen ImageNet head", head=True),
    "vim": Method(_fit_vim, _score_vim, "ViM: the head's energy minus its scaled principal residual", head=True),
}


def shared_reference_size(sizes: list[int], most: int = MAX_PROTOTYPES) -> int:
    """The reference size every scorer of one calibration is fitted at: the smallest of ``sizes`` (each CV fold's
    reference, and the shipped classifier's), at most ``most``. A nearest-neighbour score rises with the number
    of reference clips; fitted at one size, the band edges fitted on the folds' scores apply to the shipped one."""
    return int(min(min(sizes), most))


@dataclass
class Familiarity:
    """A familiarity scorer fitted on a reference set of clips: ``method``, its ``params`` and its arrays."""

    method: str
    params: dict[str, Any]
    arrays: dict[str, np.ndarray]
    reference_size: int  # clips the scorer was fitted on (after sampling): part of what a score means
    seed: int = 0
    what: str = field(default="", compare=False)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: np.ndarray | None = None,
        method: str = DEFAULT_METHOD,
        params: dict[str, Any] | None = None,
        head: ImageNetHead | None = None,
        size: int = MAX_PROTOTYPES,
        seed: int = 0,
    ) -> Familiarity:
        """From the reference clips' pooled features ``x`` [N, D] (and classes ``labels`` [N], for the
        class-conditional scorers): a seeded sample of ``size`` of them where there are more. ``params``: the
        method's own (``k``, ``dims``, ...), ``DEFAULT_PARAMS`` for the default method."""
        kind = METHODS[method]
        if kind.labels and labels is None:
            raise ValueError(f"familiarity {method!r} needs the reference clips' classes")
        if kind.head and head is None:
            raise ValueError(f"familiarity {method!r} needs the backbone's ImageNet head, and it has none")
        params = dict(DEFAULT_PARAMS if params is None and method == DEFAULT_METHOD else params or {})
        x = np.asarray(x, dtype=np.float64)
        keep = np.arange(len(x))
        if len(x) > size:  # a seeded sample: the same reference gives the same score
            keep = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
        y = None if labels is None else np.asarray(labels)[keep]
        arrays = kind.fit(x[keep], y, head, **params)
        return cls(method, params, arrays, len(keep), seed, kind.what)

    def score(self, x: np.ndarray) -> np.ndarray:
        """``[M]`` familiarity of each clip's pooled feature (higher: more like the reference), in blocks."""
        score = METHODS[self.method].score
        return _blocks(np.asarray(x), lambda block: score(self.arrays, block, **self.params))

    def to_record(self) -> dict[str, Any]:
        """Plain data and tensors for a classifier file (``torch.load(weights_only=True)`` reads them)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "reference_size": int(self.reference_size),
            "seed": int(self.seed),
            "arrays": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays.items()},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Familiarity:
        """A record ``to_record`` wrote, or an older file's (``mean, scale, basis, prototypes``: ``cosine_pca``)."""

        def array(v: Any) -> np.ndarray:
            return np.asarray(v.numpy() if hasattr(v, "numpy") else v)

        if "method" not in record:  # written before the bake-off: the nearest cosine after PCA
            arrays = {k: array(record[k]) for k in ("mean", "scale", "basis", "prototypes")}
            return cls("cosine_pca", {}, arrays, len(arrays["prototypes"]), 0, METHODS["cosine_pca"].what)
        arrays = {k: array(v) for k, v in record["arrays"].items()}
        method = record["method"]
        return cls(
            method,
            dict(record["params"]),
            arrays,
            int(record["reference_size"]),
            int(record["seed"]),
            METHODS[method].what,
        )


# ------------------------------------------------------------------ bands and temperatures


def band_edges(scores: np.ndarray, bands: int) -> list[float]:
    """Inner edges cutting ``scores`` into ``bands`` equal parts, fewer where a part would hold under ``MIN_BAND``."""
    bands = max(1, min(bands, len(scores) // MIN_BAND))
    return [float(q) for q in np.quantile(scores, np.linspace(0, 1, bands + 1)[1:-1])]


def band_of(scores: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.digitize(np.asarray(scores), np.asarray(edges, dtype=np.float64))


def fit_band_temperatures(probs: np.ndarray, labels: np.ndarray, scores: np.ndarray, edges: list[float]) -> list[float]:
    """One temperature per band (``fit_temperature`` on that band's held-out clips)."""
    band = band_of(scores, edges)
    return [fit_temperature(probs[band == b], labels[band == b]) for b in range(len(edges) + 1)]


def with_band_temperatures(
    probs: np.ndarray, scores: np.ndarray, edges: list[float], temperatures: list[float]
) -> np.ndarray:
    """Each clip's probabilities under its familiarity band's temperature."""
    t = np.asarray(temperatures, dtype=np.float64)[band_of(scores, edges)]
    return with_temperature(probs, t[:, None]) if len(probs) else probs


# ------------------------------------------------------------------ what a lab reads


def coverage(probs: np.ndarray, labels: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per confidence threshold: the share of clips whose top probability reaches it, and their accuracy."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    rows = []
    for t in thresholds:
        kept = confidence >= t
        n = int(kept.sum())
        rows.append(
            {
                "threshold": t,
                "kept": n,
                "share": n / max(len(labels), 1),
                "accuracy": float(correct[kept].mean()) if n else None,
            }
        )
    return rows


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U), in O(N log N)."""
    n_pos, n_neg = len(positive), len(negative)
    if not n_pos or not n_neg:
        return float("nan")
    scores = np.concatenate([positive, negative]).astype(np.float64)
    order = scores.argsort(kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_scores))[0] + 1]  # runs of tied scores share their mean rank
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------ the bake-off

SEEN, SOURCES, FAMILIES = "seen sources", "held-out sources", "unseen families"  # most familiar first
KINDS = (SEEN, SOURCES, FAMILIES)
# Each pair: (the more familiar kind, the less familiar one); the first is the headline: a new recording of a
# kind the lab trained on against a kind it never saw.
PAIRS = ((SEEN, FAMILIES), (SOURCES, FAMILIES), (SEEN, SOURCES))
RESAMPLES = 2000  # group resamples per interval: the 2.5 % and 97.5 % percentiles settle to ~0.005 by then


@dataclass(frozen=True)
class Candidate:
    """A scorer tried in the bake-off: a name for the table, the method, its params and where it is published."""

    name: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("nearest cosine, standardised, PCA 128 (before)", "cosine_pca", {"dims": DIMS}, "this project"),
    Candidate("k-NN cosine, k=1", "knn", {"k": 1}, "Sun et al. 2022"),
    Candidate("k-NN cosine, k=2", "knn", {"k": 2}, "Sun et al. 2022"),
    Candidate("k-NN cosine, k=5", "knn", {"k": 5}, "Sun et al. 2022"),
    Candidate("k-NN cosine, k=10", "knn", {"k": 10}, "Sun et al. 2022"),
    Candidate("ViM residual, 16 dims", "vim_residual", {"dims": 16}, "Wang et al. 2022"),
    Candidate("ViM residual, 64 dims", "vim_residual", {"dims": 64}, "Wang et al. 2022"),
    Candidate(
        "ViM residual, 64 dims, L2-normalised", "vim_residual", {"dims": 64, "normalise": True}, "Wang et al. 2022"
    ),
    Candidate("Mahalanobis, class means, shared cov.", "mahalanobis", {"normalise": False}, "Lee et al. 2018"),
    Candidate("Mahalanobis++ (L2-normalised)", "mahalanobis", {"normalise": True}, "Mueller & Hein 2025"),
    Candidate(
        "relative Mahalanobis++", "mahalanobis", {"normalise": True, "relative": True}, "Ren et al. 2021 + M&H 2025"
    ),
    Candidate("energy (ImageNet head)", "energy", {}, "Liu et al. 2020"),
    Candidate("max-logit (ImageNet head)", "max_logit", {}, "Hendrycks et al. 2022"),
    Candidate("ViM, 64 dims (ImageNet head)", "vim", {"dims": 64}, "Wang et al. 2022"),
)


@dataclass
class BakeoffFold:
    """One CV fold: its reference (the training clips every scorer is fitted on) and its held-out queries of
    each kind (``KINDS``), with each query's group (what the interval resamples: e.g. its family)."""

    reference: np.ndarray  # [N, D] pooled single-scale features
    reference_labels: np.ndarray  # [N]
    queries: dict[str, np.ndarray]  # kind -> [M, D]
    groups: dict[str, np.ndarray]  # kind -> [M]


def grouped_auroc_resamples(
    scores: list[tuple[np.ndarray, np.ndarray]],
    positive_groups: np.ndarray,
    negative_groups: np.ndarray,
    n: int = RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """``[len(scores), n]``: the AUROC of each ``(positive, negative)`` score pair on ``n`` resamples of whole
    groups, the same resamples for every pair (paired: differences between scorers have intervals too).

    The groups of both sides are drawn together (a family can have clips on both sides: seen-source clips in
    one fold, unseen-family clips in another), as many as there are, with replacement; a clip counts as often
    as its group was drawn. Each scorer's clips are sorted once; a resample is then weighted sums over runs
    of tied scores (ties count half, as ``auroc``): linear in the clips, in blocks of ``RESAMPLE_BLOCK``."""
    names, code = np.unique(
        np.concatenate([np.asarray(positive_groups).astype(str), np.asarray(negative_groups).astype(str)]),
        return_inverse=True,
    )
    n_groups, n_pos = len(names), len(positive_groups)
    is_pos = np.arange(len(code)) < n_pos
    prepared = []
    for pos, neg in scores:
        s = np.concatenate([pos, neg]).astype(np.float64)
        order = np.argsort(s, kind="stable")
        prepared.append((order, np.r_[0, np.flatnonzero(np.diff(s[order])) + 1], is_pos[order]))
    out = np.empty((len(scores), n))
    rng = np.random.default_rng(seed)
    rows = max(1, RESAMPLE_BLOCK // max(len(code), n_groups))
    for start in range(0, n, rows):
        size = min(rows, n - start)
        drawn = rng.integers(0, n_groups, (size, n_groups)) + (np.arange(size, dtype=np.int64) * n_groups)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * n_groups).reshape(size, n_groups).astype(np.float64)
        weights = counts[:, code]  # [size, N]: each clip as often as its group was drawn
        for i, (order, runs, positive) in enumerate(prepared):
            w = weights[:, order]
            pos_runs = np.add.reduceat(w * positive, runs, axis=1)
            neg_runs = np.add.reduceat(w * ~positive, runs, axis=1)
            below = np.cumsum(neg_runs, axis=1) - neg_runs
            pairs = pos_runs.sum(1) * neg_runs.sum(1)
            wins = (pos_runs * (below + 0.5 * neg_runs)).sum(1)
            out[i, start : start + size] = np.where(pairs > 0, wins / np.maximum(pairs, 1e-300), np.nan)
    return out


def pair_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]} vs {pair[1]}"


def _interval(draws: np.ndarray) -> dict[str, float]:
    return {"low": float(np.nanpercentile(draws, 2.5)), "high": float(np.nanpercentile(draws, 97.5))}


def familiarity_bakeoff(
    folds: list[BakeoffFold],
    candidates: tuple[Candidate, ...] = CANDIDATES,
    head: ImageNetHead | None = None,
    size: int | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Every candidate fitted per fold on that fold's reference (a seeded sample of ``size`` clips: by default
    the smallest fold's reference, so that every fold's score means the same) and scored on its held-out
    queries; per pair of kinds (``PAIRS``) its AUROC pooled over folds, with a 95 % interval resampling groups.

    The winner is the best point AUROC on the headline pair (the first of ``PAIRS`` whose kinds are given);
    each other candidate's paired difference from it has an interval, and those whose interval holds 0 are
    ``ties`` (within noise). A candidate that needs the ImageNet head, without one, is listed as ``absent``."""
    size = shared_reference_size([len(f.reference) for f in folds]) if size is None else size
    kinds = [k for k in KINDS if any(k in f.queries for f in folds)]
    groups = {k: np.concatenate([np.asarray(f.groups[k]).astype(str) for f in folds if k in f.queries]) for k in kinds}
    scored: dict[str, dict[str, np.ndarray]] = {}
    absent = []
    for c in candidates:
        if METHODS[c.method].head and head is None:
            absent.append(c.name)
            continue
        parts: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
        for f in folds:
            scorer = Familiarity.fit(f.reference, f.reference_labels, c.method, c.params, head, size, seed)
            for k in kinds:
                if k in f.queries:
                    parts[k].append(scorer.score(f.queries[k]))
        scored[c.name] = {k: np.concatenate(v) for k, v in parts.items()}
    pairs = [p for p in PAIRS if p[0] in kinds and p[1] in kinds]
    names = list(scored)
    table: dict[str, dict[str, Any]] = {name: {} for name in names}
    draws: dict[str, np.ndarray] = {}
    for a, b in pairs:
        draws[pair_name((a, b))] = grouped_auroc_resamples(
            [(scored[name][a], scored[name][b]) for name in names], groups[a], groups[b], resamples, seed
        )
        for i, name in enumerate(names):
            table[name][pair_name((a, b))] = {"auroc": auroc(scored[name][a], scored[name][b])} | _interval(
                draws[pair_name((a, b))][i]
            )
    headline = pair_name(pairs[0]) if pairs else None
    winner, differences, ties = None, {}, []
    if headline and names:
        best = int(np.argmax([table[name][headline]["auroc"] for name in names]))
        winner = names[best]
        for i, name in enumerate(names):
            if i != best:
                differences[name] = _interval(draws[headline][best] - draws[headline][i])
                if differences[name]["low"] <= 0:
                    ties.append(name)
    by_name = {c.name: c for c in candidates}
    return {
        "reference_size": size,
        "folds": len(folds),
        "clips": {k: len(groups[k]) for k in kinds},
        "groups": {k: len(set(groups[k])) for k in kinds},
        "pairs": [pair_name(p) for p in pairs],
        "headline": headline,
        "auroc_is": "P(a clip of the first kind scores as more familiar than a clip of the second), ties half",
        "candidates": [
            {
                "name": name,
                "method": by_name[name].method,
                "params": dict(by_name[name].params),
                "source": by_name[name].source,
                "pairs": table[name],
                "headline_difference_from_winner": differences.get(name),
            }
            for name in names
        ],
        "absent": absent,
        "winner": winner,
        "ties": ties,
        "resamples": resamples,
    }


def bakeoff_markdown(result: dict[str, Any]) -> str:
    """The bake-off as a Markdown table: each candidate's AUROC [95 %] per pair, the headline pair first, and
    its headline difference from the winner (an interval holding 0: a tie within noise)."""
    pairs = result["pairs"]
    head = ["scorer", "source", *[f"{p} [95 %]" for p in pairs], "winner minus it [95 %]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(result["candidates"], key=lambda c: -c["pairs"][result["headline"]]["auroc"])
    for c in ranked:
        cells = [f"**{c['name']}**" if c["name"] == result["winner"] else c["name"], c["source"]]
        cells += [
            f"{c['pairs'][p]['auroc']:.3f} [{c['pairs'][p]['low']:.3f}, {c['pairs'][p]['high']:.3f}]" for p in pairs
        ]
        d = c["headline_difference_from_winner"]
        cells.append(
            "winner" if d is None else f"[{d['low']:+.3f}, {d['high']:+.3f}]" + (" tie" if d["low"] <= 0 else "")
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        f"| {name} | absent: the backbone has no ImageNet head |" + " |" * (len(head) - 2) for name in result["absent"]
    ]
    return "\n".join(lines) + "\n"
