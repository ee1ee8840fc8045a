"""Which classifier ``--predict`` gets: the probe or the ensemble's recipe, chosen by transfer to unseen groups.

On small collections a logistic-regression probe on frozen features can transfer to new kinds of
video better than a trained temporal ensemble, and which one does is a property of the data. The
pipeline therefore compares them, and never on its test split (that is scored once, for the
report): grouped K-fold CV over the development part (train + val) alone, grouped as the split
is (``cv.group_by``: at the family level, ``family``, this estimates transfer to kinds of video
the models never saw). Per fold:

- ``probe``: the logistic-regression probe (``research.models.probe``) fitted on the other folds,
  at the ``C`` of the probe the pipeline ships (chosen on its validation split);
- ``recipe``: one member of the ensemble's recipe (the first seed), trained on the other folds
  with validation carved from them by group, scored with TTA (an ensemble of several such
  members scores at least as well on average, so this is the recipe's conservative figure).

The probe replaces the seed's ensemble only when its pooled macro-F1 is higher beyond noise: the
paired interval of the difference, resampling whole groups, lies above 0. Otherwise the ensemble
stays. The record says by how much, with that interval, and whether the difference is noise.

The same held-out probabilities calibrate both candidates (``cross_fitted_calibration``): a
temperature fitted on every train+val video, each scored by a model that never saw its group, is
steadier than one fitted on the validation split's few groups (on the demo's train+val, the fold
members' own validation temperatures ranged 2.2-8.3 and gave held-out ECE 0.123; the cross-fitted
ones 2.25-2.37 and ECE 0.016).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from research.config import CVConfig, TrainConfig
from research.data.splits import carve_validation, make_folds
from research.engine.calibration import calibration_scores, fit_temperature, with_temperature
from research.engine.classifier import pooled_file
from research.engine.familiarity import Familiarity, HeldOut, familiarity_calibration
from research.engine.members import fold_members, score_member
from research.engine.metrics import bootstrap_interval, classification_metrics, grouped_bootstrap_difference
from research.models.probe import fit_logistic

log = logging.getLogger(__name__)
CANDIDATES = ("probe", "recipe")


def choose_classifier(
    pool: dict[bool, Path],
    dev: np.ndarray,
    groups: list[str],
    train_cfg: TrainConfig,
    cv: CVConfig,
    work_dir: Path,
    probe_c: float,
    fine_groups: list[str] | None = None,
) -> dict[str, Any]:
    """Score both candidates under ``cv.choice_folds`` grouped folds of the ``dev`` rows of the pooled
    feature files (``pool``: multi_scale -> path, the single-scale one required); returns the choice, its
    figures and each candidate's cross-fitted temperature (``cross_fitted_calibration``). ``probe_c`` is
    the L2 strength of the probe that will be shipped: every fold's probe uses it, so the probe measured
    and calibrated here is the one the report scores and ``--predict`` applies. ``fine_groups`` (e.g. each
    clip's source, where ``groups`` are families): the chosen candidate is also scored on held-out groups of
    that finer kind, for its calibration by familiarity (``research.engine.familiarity``)."""
    x, labels = pooled_file(pool[False])
    y = labels[dev]
    dev_groups = [groups[i] for i in dev]
    # a small collection gets as many folds as its train+val part can fill (at least 2), or no choice
    n_folds = min(cv.choice_folds, int(np.bincount(y).max()), len(set(dev_groups)))
    folds = make_folds(y, dev_groups, n_folds, cv.fold_seed) if n_folds >= 2 else []
    if not folds or _too_small(y, folds):
        reason = f"{len(dev)} train+val clips in {len(set(dev_groups))} groups are too few for grouped folds"
        log.warning("ready classifier: %s; the ensemble is kept without a comparison", reason)
        return {"chosen": "recipe", "skipped": reason, "grouped_by": cv.group_by, "videos": len(dev)}
    if n_folds < cv.choice_folds:
        log.warning("ready classifier: train+val fills %d folds, not cv.choice_folds=%d", n_folds, cv.choice_folds)
    num_classes = int(labels.max()) + 1
    seed = cv.seeds[0]
    source_file = pool[train_cfg.multi_scale]
    held_out = _held_out(
        source_file, x, labels, dev, folds, dev_groups, CANDIDATES, train_cfg, cv, work_dir, probe_c, "choice"
    )
    raw, familiarity, val_temperatures = held_out["raw"], held_out["familiarity"], held_out["val_temperatures"]
    preds = {name: p.argmax(1) for name, p in raw.items()}
    figures = {
        name: {
            "macro_f1": classification_metrics(y, p, num_classes)["macro_f1"],
            "macro_f1_95": bootstrap_interval(y, p, num_classes, n=cv.bootstrap),
            "calibration": cross_fitted_calibration(raw[name], y, folds),
        }
        for name, p in preds.items()
    }
    by_val = np.zeros_like(raw["recipe"])  # the alternative: each fold member's own validation temperature
    for held, t in zip(folds, val_temperatures, strict=True):
        by_val[held] = with_temperature(raw["recipe"][held], t)
    figures["recipe"]["calibration"]["val_split"] = {"temperatures": val_temperatures} | calibration_scores(by_val, y)
    # the probe replaces the seed's ensemble only when it transfers better beyond noise
    difference = grouped_difference(y, preds["recipe"], preds["probe"], dev_groups, num_classes, cv.bootstrap)
    chosen = "probe" if difference["low"] > 0 else "recipe"
    other = next(name for name in CANDIDATES if name != chosen)
    calibration = calibrate_by_familiarity(
        source_file,
        chosen,
        raw[chosen],
        familiarity,
        folds,
        x,
        labels,
        dev,
        dev_groups,
        fine_groups,
        train_cfg,
        cv,
        work_dir,
        probe_c,
    )
    if chosen == "recipe":  # the interval of recipe - probe: the same resamples, the other sign
        difference = {"low": -difference["high"], "high": -difference["low"]}
    return {
        "chosen": chosen,
        "grouped_by": cv.group_by,
        "folds": n_folds,
        "videos": len(dev),
        "groups": len(set(dev_groups)),
        "scored_on": "the train and val videos only (never the test split), each by models that never saw its group",
        "candidates": {
            "probe": figures["probe"]
            | {"what": f"logistic regression on the mean single-scale frame feature, C={probe_c:g}"},
            "recipe": figures["recipe"]
            | {"what": f"one {train_cfg.model} member (seed {seed}) of the ensemble's recipe per fold, with TTA"},
        },
        "familiarity": calibration,  # the chosen one's temperatures by how familiar a clip looks
        "difference": {
            "chosen_minus_other": figures[chosen]["macro_f1"] - figures[other]["macro_f1"],
            "paired_95": difference,  # resampling groups, not clips: the clips of one group err together
            "noise": difference["low"] <= 0.0 <= difference["high"],
        },
    }


def _held_out(
    source_file: Path,
    x: np.ndarray,
    labels: np.ndarray,
    dev: np.ndarray,
    folds: list[np.ndarray],
    dev_groups: list[str],
    candidates: tuple[str, ...],
    train_cfg: TrainConfig,
    cv: CVConfig,
    work_dir: Path,
    probe_c: float,
    purpose: str,
) -> dict[str, Any]:
    """Each candidate's uncalibrated held-out probabilities over ``folds`` of the ``dev`` rows, each held-out
    clip's familiarity against its fold's training clips, and each fold member's validation temperature."""
    y, num_classes, seed = labels[dev], int(labels.max()) + 1, cv.seeds[0]
    raw = {name: np.zeros((len(dev), num_classes)) for name in candidates}
    familiarity = np.zeros(len(dev))
    val_temperatures = []  # each fold member's own, fitted on its validation carve (what training does)
    for k, held in enumerate(folds):
        rest = np.setdiff1d(np.arange(len(dev)), held)
        familiarity[held] = Familiarity.fit(x[dev[rest]]).score(x[dev[held]])
        if "probe" in candidates:
            probe = fit_logistic(x[dev[rest]], y[rest], num_classes, probe_c)
            raw["probe"][held] = probe.predict_proba(x[dev[held]])
        if "recipe" not in candidates:
            continue
        fit, val = carve_validation(rest, y, dev_groups, cv.val_fraction, cv.fold_seed + k)
        parts = {"train": dev[fit], "val": dev[val], "test": dev[held]}
        (checkpoint,), test_file = fold_members(
            source_file,
            work_dir / (f"fold_{k}" if purpose == "choice" else f"{purpose}_fold_{k}"),
            parts,
            train_cfg,
            [seed],
            f"{train_cfg.ensemble}-{purpose}-fold{k}",
            tags={"fold": str(k), "purpose": purpose},
        )
        scored = score_member(checkpoint, test_file, calibrated=False)
        val_temperatures.append(scored["temperature"])
        raw["recipe"][held] = scored["tta"]["probs"]
    return {"raw": raw, "familiarity": familiarity, "val_temperatures": val_temperatures}


def calibrate_by_familiarity(
    source_file: Path,
    chosen: str,
    raw: np.ndarray,
    familiarity: np.ndarray,
    folds: list[np.ndarray],
    x: np.ndarray,
    labels: np.ndarray,
    dev: np.ndarray,
    dev_groups: list[str],
    fine_groups: list[str] | None,
    train_cfg: TrainConfig,
    cv: CVConfig,
    work_dir: Path,
    probe_c: float,
) -> dict[str, Any]:
    """The chosen candidate's temperatures by familiarity band (``research.engine.familiarity``), fitted on its
    held-out predictions of two kinds: held-out groups (``folds``, e.g. families) and, where ``fine_groups``
    differ, held-out finer groups (e.g. sources, most of whose families stay in training)."""
    y = labels[dev]
    clip_fold = np.zeros(len(dev), dtype=np.int64)
    for k, held in enumerate(folds):
        clip_fold[held] = k
    kinds = {cv.group_by: HeldOut(f"held-out {cv.group_by} groups", raw, y, familiarity, clip_fold)}
    fine = [fine_groups[i] for i in dev] if fine_groups is not None else None
    if fine is not None and len(set(fine)) > len(set(dev_groups)):  # finer groups than the split's: a second kind
        fine_folds = make_folds(y, fine, len(folds), cv.fold_seed)
        seen = _held_out(
            source_file, x, labels, dev, fine_folds, fine, (chosen,), train_cfg, cv, work_dir, probe_c, "calibration"
        )
        what = "held-out sources, most of whose families stay in training"
        kinds["source"] = HeldOut(what, seen["raw"][chosen], y, seen["familiarity"], clip_fold)
    return familiarity_calibration(kinds, cv.familiarity_bands)


def cross_fitted_calibration(raw: np.ndarray, labels: np.ndarray, folds: list[np.ndarray]) -> dict[str, Any]:
    """The temperature fitted on every held-out probability of train+val (what the classifier then uses), and
    how well temperatures fitted this way transfer to unseen groups: each fold scaled by the temperature of
    the other folds' held-out videos, then ECE, NLL and Brier pooled (``uncalibrated``: with none).

    A validation carve holds a handful of groups, whose difficulty differs from the next handful's; the
    held-out videos of all folds hold every group of train+val once.
    """
    scaled = np.zeros_like(raw)
    per_fold = []
    for held in folds:
        rest = np.setdiff1d(np.arange(len(labels)), held)
        per_fold.append(fit_temperature(raw[rest], labels[rest]))
        scaled[held] = with_temperature(raw[held], per_fold[-1])
    return {
        "temperature": fit_temperature(raw, labels),
        "per_fold": per_fold,
        **calibration_scores(scaled, labels),
        "uncalibrated": calibration_scores(raw, labels, interval=False),
    }


def _too_small(labels: np.ndarray, folds: list[np.ndarray]) -> bool:
    """A fold whose training part has no class with two clips leaves nothing to carve validation from."""
    return any(np.bincount(np.delete(labels, f)).max() < 2 for f in folds)


def grouped_difference(
    labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, groups: list[str], num_classes: int, n: int
) -> dict[str, float]:
    """95 % interval of macro-F1(b) - macro-F1(a) over the same clips, resampling whole groups (paired)."""
    return grouped_bootstrap_difference(labels, preds_a, preds_b, groups, num_classes, n)
