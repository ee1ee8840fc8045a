"""The headline: how well each classifier does on kinds of video it never saw, read off the out-of-fold predictions.

Every clip of the collection is scored once by fold members that never saw its family (the ``family``
kind of ``research.engine.oof``), so the rows below pool every clip:

    member, member+tta     one fold member per seed, its scores averaged over the seeds
    ensemble, ensemble+tta the fold's members averaged
    probe                  the logistic-regression probe fitted on the fold's training clips

Each row's macro-F1 has two 95 % intervals: ``macro_f1_95`` resamples whole groups (clips of one family
err together: the honest one), ``macro_f1_95_clips`` resamples clips. Each row's probabilities are
calibrated by a temperature cross-fitted on the other folds' clips (``research.engine.calibration``), so
its ECE, NLL and Brier score say how a temperature fitted on held-out groups transfers to new ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from research.engine.calibration import calibration_scores, cross_fitted
from research.engine.metrics import bootstrap_interval, classification_metrics, grouped_bootstrap_interval
from research.engine.oof import PROBE, OutOfFold, seed_row

ROWS = ("member", "member+tta", "ensemble", "ensemble+tta", PROBE)


def row_probabilities(oof: OutOfFold, row: str, kind: str = "family") -> list[np.ndarray]:
    """A row's uncalibrated probabilities of one kind: one array per seed for member rows, else one array."""
    if row.startswith("member"):
        return [oof.kinds[kind].raw[seed_row(s, row.endswith("+tta"))] for s in oof.seeds]
    return [oof.candidate(row, kind)]


def headline_rows(oof: OutOfFold, bootstrap: int = 2000) -> dict[str, dict[str, Any]]:
    """Every row of the table, pooled over the held-out families: scores, both intervals, calibration."""
    labels, groups = oof.labels_of("family"), oof.groups_of("family")
    fold = oof.kinds["family"].fold
    num_classes = len(oof.classes)
    out = {}
    for row in ROWS:
        probs = row_probabilities(oof, row)
        preds = np.stack([p.argmax(1) for p in probs])  # [S, N]: the member rows' scores are means over seeds
        metrics = [classification_metrics(labels, p, num_classes) for p in preds]
        scaled = [cross_fitted(p, labels, fold)[0] for p in probs]
        out[row] = {
            "macro_f1": float(np.mean([m["macro_f1"] for m in metrics])),
            "accuracy": float(np.mean([m["accuracy"] for m in metrics])),
            "macro_f1_95": grouped_bootstrap_interval(labels, preds, groups, num_classes, bootstrap),
            "macro_f1_95_clips": bootstrap_interval(labels, preds, num_classes, bootstrap),
            "f1": dict(zip(oof.classes, np.mean([m["f1"] for m in metrics], axis=0).tolist(), strict=True)),
            "fold_macro_f1": _per_fold(labels, preds, fold, num_classes),
            "calibration": _mean_scores([calibration_scores(p, labels) for p in scaled])
            | {"uncalibrated": _mean_scores([calibration_scores(p, labels, interval=False) for p in probs])},
        }
        if len(probs) == 1:  # one set of predictions: its confusion and per-class precision and recall
            m = metrics[0]
            out[row] |= {
                "precision": dict(zip(oof.classes, m["precision"], strict=True)),
                "recall": dict(zip(oof.classes, m["recall"], strict=True)),
                "confusion": m["confusion"],
            }
        else:
            out[row]["seeds_macro_f1"] = [m["macro_f1"] for m in metrics]
    return out


def _per_fold(labels: np.ndarray, preds: np.ndarray, fold: np.ndarray, num_classes: int) -> dict[str, float]:
    """Mean and standard deviation over folds of the row's macro-F1 (how much one test fold moves)."""
    scores = []
    for k in np.unique(fold):
        held = fold == k
        scores.append(
            float(np.mean([classification_metrics(labels[held], p[held], num_classes)["macro_f1"] for p in preds]))
        )
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0}


def _mean_scores(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Calibration scores of several seeds' rows averaged (one seed: as they are)."""
    if len(scores) == 1:
        return scores[0]
    out: dict[str, Any] = {}
    for key, value in scores[0].items():
        if isinstance(value, dict):
            out[key] = {k: float(np.mean([s[key][k] for s in scores])) for k in value}
        else:
            out[key] = float(np.mean([s[key] for s in scores]))
    return out
