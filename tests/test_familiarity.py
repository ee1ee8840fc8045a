"""Familiarity and the calibration by familiarity band: scores on real features, bands kept only where they
transfer better, the coverage table, the AUROC."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from research.engine.calibration import with_temperature
from research.engine.classifier import pooled_file
from research.engine.familiarity import (
    Familiarity,
    HeldOut,
    auroc,
    band_edges,
    coverage,
    familiarity_calibration,
    with_band_temperatures,
)


def test_a_training_clip_is_its_own_nearest_and_a_file_round_trip_keeps_the_score(tiny_features: Path) -> None:
    x, _ = pooled_file(tiny_features / "train_features.h5")
    familiarity = Familiarity.fit(x)
    assert np.allclose(familiarity.score(x), 1.0, atol=1e-5)  # every training clip is a prototype
    other, _ = pooled_file(tiny_features / "test_features.h5")
    scores = familiarity.score(other)
    assert scores.shape == (len(other),) and np.all(scores <= 1.0 + 1e-6) and np.all(scores >= -1.0 - 1e-6)
    buffer = io.BytesIO()
    torch.save({"familiarity": familiarity.to_record()}, buffer)
    buffer.seek(0)
    record = torch.load(buffer, weights_only=True)["familiarity"]
    assert np.array_equal(Familiarity.from_record(record).score(other), scores)
    # a large training set is sampled, with a seed: the same clips give the same prototypes
    sampled = Familiarity.fit(x, max_prototypes=3)
    assert sampled.prototypes.shape[0] == 3
    assert np.array_equal(sampled.prototypes, Familiarity.fit(x, max_prototypes=3).prototypes)


def test_auroc_counts_ties_half_as_the_rank_statistic_does() -> None:
    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 5, 200).astype(float), rng.integers(0, 4, 150).astype(float)
    pairs = (positive[:, None] > negative[None]).mean() + 0.5 * (positive[:, None] == negative[None]).mean()
    assert abs(auroc(positive, negative) - pairs) < 1e-12
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0


def test_coverage_keeps_fewer_clips_at_higher_thresholds_with_their_accuracy() -> None:
    probs = np.array([[0.95, 0.05], [0.7, 0.3], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 0])
    rows = coverage(probs, labels, (0.5, 0.6, 0.9))
    assert [r["kept"] for r in rows] == [4, 3, 1]
    assert [r["accuracy"] for r in rows] == [0.75, 2 / 3, 1.0]


def held_out_kinds(separable: bool, n: int = 1500, seed: int = 0) -> dict[str, HeldOut]:
    """Two kinds of held-out clip from a calibrated model (top probability c, right with probability c), then
    distorted: the first over-confident (new kinds: raw = calibrated at T 0.5), the second under-confident
    (known kinds: T 2); familiarity tells them apart (``separable``) or is noise."""
    rng = np.random.default_rng(seed)
    kinds = {}
    for name, (distortion, mean_score) in {"family": (0.5, 0.3), "source": (2.0, 0.8)}.items():
        c = rng.uniform(0.3, 1.0, n)
        top = rng.integers(0, 4, n)
        calibrated = np.repeat(((1 - c) / 3)[:, None], 4, axis=1)
        calibrated[np.arange(n), top] = c
        labels = np.where(rng.random(n) < c, top, (top + rng.integers(1, 4, n)) % 4)
        score = rng.normal(mean_score if separable else 0.5, 0.05, n)
        raw = with_temperature(calibrated, distortion)
        kinds[name] = HeldOut(name, raw, labels, score, rng.integers(0, 3, n))
    return kinds


def test_bands_are_kept_where_familiarity_separates_and_bring_both_kinds_under_the_goal() -> None:
    result = familiarity_calibration(held_out_kinds(separable=True), bands=2)
    assert result["auroc"] > 0.99 and result["calibrated_by"] == "bands" and len(result["temperatures"]) == 2
    assert result["worst_ece"]["bands"] <= 0.05 < result["worst_ece"]["one_temperature"] and result["met"]
    low, high = result["temperatures"]
    assert abs(low - 2.0) < 0.3 and abs(high - 0.5) < 0.1  # each band's distortion undone
    for kind in result["kinds"].values():
        assert kind["ece"]["bands"] < kind["ece"]["uncalibrated"]
        assert [r["threshold"] for r in kind["coverage"]] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def test_noise_familiarity_keeps_one_temperature() -> None:
    result = familiarity_calibration(held_out_kinds(separable=False), bands=3)
    assert abs(result["auroc"] - 0.5) < 0.05
    assert result["calibrated_by"] == "one_temperature" and result["edges"] == [] and len(result["temperatures"]) == 1


def test_band_temperatures_apply_per_clip() -> None:
    probs = np.array([[0.8, 0.2], [0.8, 0.2]])
    out = with_band_temperatures(probs, np.array([0.1, 0.9]), [0.5], [2.0, 0.5])
    assert np.allclose(out[0], with_temperature(probs[:1], 2.0)[0])
    assert np.allclose(out[1], with_temperature(probs[1:], 0.5)[0])
    assert band_edges(np.arange(60.0), 3) == [29.5]  # 60 clips hold two bands (30 clips per band at least)
    assert band_edges(np.arange(59.0), 3) == []
