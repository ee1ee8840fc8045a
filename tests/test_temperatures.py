"""The ready classifier's temperatures, fitted on every kind of held-out clip (``research.engine.temperatures``)."""

from __future__ import annotations

import numpy as np

from research.engine.calibration import with_temperature
from research.engine.temperatures import calibrate_kinds, shipped_method


def held_out_kinds(separable: bool, n: int = 1500, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Two kinds of held-out clip from a calibrated model (top probability c, right with probability c), then
    distorted: the first over-confident (new kinds: raw = calibrated at T 0.5), the second under-confident
    (known kinds: T 2); familiarity tells them apart (``separable``) or is noise."""
    rng = np.random.default_rng(seed)
    kinds: dict[str, dict[str, np.ndarray]] = {"raw": {}, "labels": {}, "familiarity": {}, "fold": {}}
    for name, (distortion, mean_score) in {"family": (0.5, 0.3), "source": (2.0, 0.8)}.items():
        c = rng.uniform(0.3, 1.0, n)
        top = rng.integers(0, 4, n)
        calibrated = np.repeat(((1 - c) / 3)[:, None], 4, axis=1)
        calibrated[np.arange(n), top] = c
        kinds["labels"][name] = np.where(rng.random(n) < c, top, (top + rng.integers(1, 4, n)) % 4)
        kinds["familiarity"][name] = rng.normal(mean_score if separable else 0.5, 0.05, n)
        kinds["raw"][name] = with_temperature(calibrated, distortion)
        kinds["fold"][name] = rng.integers(0, 3, n)
    return kinds


def test_bands_are_kept_where_familiarity_separates_and_bring_every_kind_under_the_goal() -> None:
    k = held_out_kinds(separable=True)
    result, calibrated = calibrate_kinds(k["raw"], k["labels"], k["familiarity"], k["fold"], bands=2)
    assert result["calibrated_by"] == "bands" and len(result["temperatures"]) == 2
    assert result["worst_ece"]["bands"] <= 0.05 < result["worst_ece"]["one_temperature"] and result["met"]
    low, high = result["temperatures"]
    assert abs(low - 2.0) < 0.3 and abs(high - 0.5) < 0.1  # each band's distortion undone
    for name, kind in result["kinds"].items():
        assert kind["ece"]["bands"] < kind["ece"]["uncalibrated"] and calibrated[name].shape == k["raw"][name].shape
        assert [r["threshold"] for r in kind["coverage"]] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def test_noise_familiarity_keeps_one_temperature() -> None:
    k = held_out_kinds(separable=False)
    result, _ = calibrate_kinds(k["raw"], k["labels"], k["familiarity"], k["fold"], bands=3)
    assert result["calibrated_by"] == "one_temperature" and result["edges"] == [] and len(result["temperatures"]) == 1


def test_the_goal_is_met_or_not_by_the_method_shipped_not_the_better_one() -> None:
    """Issue 48 (4.2): bands at 0.045 do not beat one temperature at 0.052 by the margin, so one temperature is
    shipped, and it misses the goal: ``met`` is False though the bands would have met it."""
    assert shipped_method({"bands": 0.045, "one_temperature": 0.052}, True) == ("one_temperature", False)
    assert shipped_method({"bands": 0.030, "one_temperature": 0.052}, True) == ("bands", True)
    assert shipped_method({"bands": 0.030, "one_temperature": 0.052}, False) == ("one_temperature", False)
