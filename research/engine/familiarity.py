"""How much a clip looks like the training collection, and temperatures that depend on it.

A classifier calibrated on held-out *families* treats every clip as a kind of video it has never seen,
and is under-confident on clips of kinds it knows; calibrated on held-out clips of known kinds, it is
over-confident on new kinds. ``Familiarity`` scores each clip by the cosine similarity of its pooled
frame feature (standardised and projected on the training clips' main directions) to its nearest
training clip: near 1 for a clip of a known source, lower for a kind never seen.

The calibration (``familiarity_calibration``) pools cross-fitted held-out predictions of two kinds
(held-out groups of the split's own grouping, e.g. families, and held-out sources of families that
stay in training), cuts the familiarity score into bands at its quantiles and fits one temperature
per band. How well that transfers is measured by cross-fitting again: each group's predictions are
calibrated by temperatures fitted without it, and the ECE is reported per kind, beside what one
temperature would give. The coverage table says, per confidence threshold, what share of clips a lab
would keep and how often those are right.

Cost: linear in the scored clips (``max_prototypes`` training clips, ``dims`` dimensions, in blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from research.engine.calibration import ece, fit_temperature, with_temperature

MAX_PROTOTYPES = 4096  # training clips compared with: all of a small collection, a seeded sample of a large one
DIMS = 128  # principal directions kept: the cosine of 1280-d means is dominated by a few directions anyway
BLOCK = 4096  # scored clips per block: memory [BLOCK, MAX_PROTOTYPES] float32 = 64 MB
MIN_BAND = 30  # held-out clips a band needs for a temperature of its own; fewer: bands are merged
BANDS_MARGIN = 0.01  # bands must lower the worst kind's ECE by this much: less is within ECE's own noise
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # the coverage table's confidence thresholds


@dataclass
class Familiarity:
    """The training clips' standardisation, projection and (normalised, projected) prototypes."""

    mean: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    basis: np.ndarray  # [D, K]
    prototypes: np.ndarray  # [M, K], unit rows

    @classmethod
    def fit(cls, x: np.ndarray, max_prototypes: int = MAX_PROTOTYPES, dims: int = DIMS, seed: int = 0) -> Familiarity:
        """From the training clips' pooled features ``x`` [N, D]."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) > max_prototypes:  # a seeded sample: the same collection gives the same score
            x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_prototypes, replace=False))]
        mean = x.mean(0)
        scale = x.std(0) + 1e-6
        z = (x - mean) / scale
        _, _, vt = np.linalg.svd(z, full_matrices=False)  # [min(N, D), D]: at most M x D, bounded
        basis = np.ascontiguousarray(vt[: min(dims, len(vt))].T)
        return cls(mean, scale, basis, _unit(z @ basis))

    def score(self, x: np.ndarray) -> np.ndarray:
        """``[N]`` cosine similarity of each clip to its nearest training clip (in blocks of ``BLOCK``)."""
        x = np.asarray(x, dtype=np.float32)
        out = np.empty(len(x), dtype=np.float64)
        for start in range(0, len(x), BLOCK):
            z = _unit(((x[start : start + BLOCK] - self.mean) / self.scale) @ self.basis)
            out[start : start + len(z)] = (z @ self.prototypes.T).max(1)
        return out

    def to_record(self) -> dict[str, torch.Tensor]:
        """Tensors for a classifier file (``torch.load(weights_only=True)`` reads them)."""
        return {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name))) for name in _FIELDS}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Familiarity:
        return cls(
            *(np.asarray(record[name].numpy() if hasattr(record[name], "numpy") else record[name]) for name in _FIELDS)
        )


_FIELDS = ("mean", "scale", "basis", "prototypes")


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


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


# ------------------------------------------------------------------ the calibration


@dataclass
class HeldOut:
    """Cross-fitted held-out predictions of one kind: each clip scored by a model that never saw its group."""

    what: str  # e.g. "held-out families"
    raw: np.ndarray  # [N, C] uncalibrated probabilities
    labels: np.ndarray  # [N]
    familiarity: np.ndarray  # [N], against the fold's own training clips
    clip_fold: np.ndarray  # [N] the fold (of the coarsest grouping) of each clip: what cross-fitting leaves out


def familiarity_calibration(kinds: dict[str, HeldOut], bands: int) -> dict[str, Any]:
    """Band edges and temperatures fitted on every kind's held-out predictions pooled, and, cross-fitted by
    ``clip_fold`` (the temperatures applied to a fold are fitted without it), each kind's ECE with the
    bands, with one pooled temperature, with the first kind's temperature alone (what a calibration on
    held-out groups alone does) and uncalibrated; each kind's coverage table; the score's AUROC between the
    last kind (most familiar) and the first."""
    names = list(kinds)
    raw = np.concatenate([kinds[k].raw for k in names])
    labels = np.concatenate([kinds[k].labels for k in names])
    scores = np.concatenate([kinds[k].familiarity for k in names])
    fold = np.concatenate([kinds[k].clip_fold for k in names])
    kind = np.concatenate([np.full(len(kinds[k].labels), i) for i, k in enumerate(names)])
    first = kind == 0
    banded, pooled, first_only = (np.zeros_like(raw) for _ in range(3))
    for f in np.unique(fold):
        held, rest = fold == f, fold != f
        edges = band_edges(scores[rest], bands)
        temps = fit_band_temperatures(raw[rest], labels[rest], scores[rest], edges)
        banded[held] = with_band_temperatures(raw[held], scores[held], edges, temps)
        pooled[held] = with_temperature(raw[held], fit_temperature(raw[rest], labels[rest]))
        first_only[held] = with_temperature(raw[held], fit_temperature(raw[rest & first], labels[rest & first]))
    edges = band_edges(scores, bands)
    per_kind = {}
    for i, name in enumerate(names):
        rows = kind == i
        per_kind[name] = {
            "what": kinds[name].what,
            "clips": int(rows.sum()),
            "accuracy": float((raw[rows].argmax(1) == labels[rows]).mean()),
            "familiarity_median": float(np.median(scores[rows])),
            "ece": {
                "bands": ece(banded[rows], labels[rows]),
                "one_temperature": ece(pooled[rows], labels[rows]),
                f"{names[0]}_temperature": ece(first_only[rows], labels[rows]),
                "uncalibrated": ece(raw[rows], labels[rows]),
            },
        }
    worst = {way: max(v["ece"][way] for v in per_kind.values()) for way in ("bands", "one_temperature")}
    # bands only where they transfer better than one temperature, cross-fitted: measured, not assumed
    use_bands = len(edges) > 0 and worst["bands"] < worst["one_temperature"] - BANDS_MARGIN
    shipped = banded if use_bands else pooled
    for i, name in enumerate(names):  # what a lab would keep at each threshold, calibrated as shipped
        per_kind[name]["coverage"] = coverage(shipped[kind == i], labels[kind == i])
    return {
        "score": "cosine similarity of a clip's pooled frame feature to its nearest training clip",
        "auroc": auroc(kinds[names[-1]].familiarity, kinds[names[0]].familiarity) if len(names) > 1 else None,
        "auroc_is": f"P(familiarity of a clip of {kinds[names[-1]].what} > of {kinds[names[0]].what})"
        if len(names) > 1
        else None,
        "calibrated_by": "bands" if use_bands else "one_temperature",
        "edges": edges if use_bands else [],
        "temperatures": fit_band_temperatures(raw, labels, scores, edges)
        if use_bands
        else [fit_temperature(raw, labels)],
        "bands_tried": bands,
        "kinds": per_kind,
        "goal": "ECE <= 0.05 on every kind at once (cross-fitted)",
        "worst_ece": worst,
        "met": min(worst.values()) <= 0.05,
    }
