"""The ready classifier's temperatures, fitted on its out-of-fold predictions of every kind of held-out clip.

A classifier calibrated on held-out *families* alone treats every clip as a kind of video it never saw,
and is under-confident on clips of kinds it knows; calibrated on clips of known kinds alone, it is
over-confident on new kinds. The out-of-fold predictions (``research.engine.oof``) hold all three kinds:
held-out families, held-out sources of trained families, held-out clips of trained sources. Here they are
pooled, and either one temperature is fitted on all of them, or one per familiarity band (the familiarity
score cut at its quantiles, ``research.engine.familiarity``), whichever transfers better.

How well each transfers is measured by cross-fitting: the clips of fold k are calibrated by temperatures
(and band edges) fitted on the other folds' clips only, and the ECE is reported per kind, beside the
held-out-families temperature alone and no temperature. Bands are shipped only where they lower the
worst kind's cross-fitted ECE by more than ``BANDS_MARGIN``; ``met`` says whether the *shipped* method
reaches the goal on every kind. The coverage table says, per confidence threshold, what share of clips a
lab would keep and how often those are right, calibrated as shipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from research.data.folds import KIND_WHAT
from research.engine.calibration import ece, fit_temperature, with_temperature
from research.engine.familiarity import band_edges, coverage, fit_band_temperatures, with_band_temperatures

BANDS_MARGIN = 0.01  # bands must lower the worst kind's ECE by this much: less is within ECE's own noise
ECE_GOAL = 0.05  # a calibrated classifier's ECE on every kind of new clip


def calibrate_kinds(
    raw: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    familiarity: dict[str, np.ndarray],
    fold: dict[str, np.ndarray],
    bands: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit the shipped temperatures on every kind's held-out predictions pooled, and measure them cross-fitted.

    Per kind: ``raw`` uncalibrated probabilities [n, C], ``labels`` [n], ``familiarity`` [n] (each clip's
    score against its fold's training clips), ``fold`` [n] (the fold that held it out: what cross-fitting
    leaves out). Returns the record (``report.json``'s ``calibration.held_out``) and each kind's cross-fitted
    probabilities calibrated the way the shipped classifier is (what coverage and thresholds read)."""
    names = list(raw)
    p = np.concatenate([raw[k] for k in names])
    y = np.concatenate([labels[k] for k in names])
    score = np.concatenate([familiarity[k] for k in names])
    where = np.concatenate([fold[k] for k in names])
    kind = np.concatenate([np.full(len(labels[k]), i) for i, k in enumerate(names)])
    first = kind == 0
    banded, pooled, first_only = (np.zeros_like(p) for _ in range(3))
    for f in np.unique(where):
        held, rest = where == f, where != f
        edges = band_edges(score[rest], bands)
        temps = fit_band_temperatures(p[rest], y[rest], score[rest], edges)
        banded[held] = with_band_temperatures(p[held], score[held], edges, temps)
        pooled[held] = with_temperature(p[held], fit_temperature(p[rest], y[rest]))
        first_only[held] = with_temperature(p[held], fit_temperature(p[rest & first], y[rest & first]))
    per_kind = {}
    for i, name in enumerate(names):
        rows = kind == i
        per_kind[name] = {
            "what": KIND_WHAT.get(name, name),
            "clips": int(rows.sum()),
            "accuracy": float((p[rows].argmax(1) == y[rows]).mean()),
            "familiarity_median": float(np.median(score[rows])),
            "ece": {
                "bands": ece(banded[rows], y[rows]),
                "one_temperature": ece(pooled[rows], y[rows]),
                f"{names[0]}_temperature": ece(first_only[rows], y[rows]),
                "uncalibrated": ece(p[rows], y[rows]),
            },
        }
    worst = {way: max(v["ece"][way] for v in per_kind.values()) for way in ("bands", "one_temperature")}
    edges = band_edges(score, bands)
    way, met = shipped_method(worst, len(edges) > 0)
    use_bands = way == "bands"
    shipped = banded if use_bands else pooled
    calibrated = {name: shipped[kind == i] for i, name in enumerate(names)}
    for name in names:  # what a lab would keep at each threshold, calibrated as shipped
        per_kind[name]["coverage"] = coverage(calibrated[name], labels[name])
    record = {
        "calibrated_by": way,
        "edges": edges if use_bands else [],
        "temperatures": fit_band_temperatures(p, y, score, edges) if use_bands else [fit_temperature(p, y)],
        "bands_tried": bands,
        "kinds": per_kind,
        "goal": f"ECE <= {ECE_GOAL} on every kind at once (cross-fitted)",
        "worst_ece": worst,
        "met": met,
    }
    return record, calibrated


def shipped_method(worst: dict[str, float], bands_possible: bool) -> tuple[str, bool]:
    """``bands`` only where they lower the worst kind's cross-fitted ECE by more than ``BANDS_MARGIN`` against one
    temperature (measured, not assumed), else ``one_temperature``; and whether the method *shipped* meets the
    goal (not the better of the two: a report must not claim a goal the shipped classifier misses)."""
    way = "bands" if bands_possible and worst["bands"] < worst["one_temperature"] - BANDS_MARGIN else "one_temperature"
    return way, worst[way] <= ECE_GOAL
