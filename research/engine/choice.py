"""Which classifier ``--predict`` gets: the probe or the ensemble, chosen by transfer to unseen groups.

On small collections a logistic-regression probe on frozen features can transfer to new kinds of
video better than a trained temporal ensemble, and which one does is a property of the data. The
two are compared on the same clips, each scored by models that never saw its group:

- under ``cv.headline_cv_below`` clips, on the out-of-fold predictions of the one cross-validation
  (``research.engine.oof``: every clip, held-out families): the fold ensembles with TTA against the
  fold probes;
- above it, on the one split's validation part: the members' ensemble with TTA against the probe
  fitted on the training part. The test part is never looked at before it is scored.

The probe replaces the ensemble only when its macro-F1 is higher beyond noise: the paired interval of
the difference, resampling whole groups, lies above 0. Otherwise the ensemble stays. The record says by
how much, with that interval, and whether the difference is noise. The headline a run reports is the
chosen one of these two, so it is the better of two only where the difference is beyond noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from research.engine.metrics import classification_metrics, grouped_bootstrap_difference, grouped_bootstrap_interval

CANDIDATES = ("ensemble", "probe")


def choose_classifier(
    labels: np.ndarray,
    groups: list[str],
    probabilities: dict[str, np.ndarray],
    num_classes: int,
    bootstrap: int,
    scored_on: str,
    what: dict[str, str],
) -> dict[str, Any]:
    """Compare ``probabilities`` (``ensemble`` and ``probe``, [N, C] of the same clips) by macro-F1 with group-
    resampled intervals, paired; returns the choice and its figures (``scored_on``: those clips in words,
    ``what``: each candidate in words)."""
    preds = {name: probabilities[name].argmax(1) for name in CANDIDATES}
    figures = {
        name: {
            "macro_f1": classification_metrics(labels, preds[name], num_classes)["macro_f1"],
            "macro_f1_95": grouped_bootstrap_interval(labels, preds[name], groups, num_classes, bootstrap),
            "what": what[name],
        }
        for name in CANDIDATES
    }
    # probe - ensemble over the same clips, whole groups resampled: the clips of one group err together
    difference = grouped_bootstrap_difference(labels, preds["ensemble"], preds["probe"], groups, num_classes, bootstrap)
    chosen = "probe" if difference["low"] > 0 else "ensemble"
    if chosen == "ensemble":  # the interval of ensemble - probe: the same resamples, the other sign
        difference = {"low": -difference["high"], "high": -difference["low"]}
    other = next(name for name in CANDIDATES if name != chosen)
    return {
        "chosen": chosen,
        "scored_on": scored_on,
        "clips": len(labels),
        "groups": len(set(groups)),
        "rule": "the probe replaces the ensemble only when its macro-F1 is higher beyond noise (paired 95 % "
        "interval of the difference, groups resampled, above 0)",
        "candidates": figures,
        "difference": {
            "chosen_minus_other": figures[chosen]["macro_f1"] - figures[other]["macro_f1"],
            "paired_95": difference,
            "noise": difference["low"] <= 0.0 <= difference["high"],
        },
    }
