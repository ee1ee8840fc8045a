"""Temperature scaling and the calibration scores, on cases whose calibration is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from research.engine.calibration import (
    brier,
    calibration_scores,
    ece,
    fit_temperature,
    nll,
    plot_reliability,
    reliability_bins,
    with_temperature,
)


@pytest.fixture(scope="module")
def known() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z): those probabilities are calibrated by construction. A model that
    reports softmax(3 z) is over-confident by exactly a temperature of 3."""
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 1.5, (20_000, 4))
    truth = softmax(z, axis=1)
    labels = (rng.random((len(z), 1)) > truth.cumsum(axis=1)).sum(axis=1)
    return truth, softmax(3 * z, axis=1), labels


def test_the_fitted_temperature_recovers_a_known_over_confidence(known) -> None:
    truth, over, labels = known
    t = fit_temperature(over, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(truth, labels) == pytest.approx(1.0, rel=0.05)  # a calibrated model is left alone
    calibrated = with_temperature(over, t)
    np.testing.assert_allclose(calibrated, truth, atol=0.03)
    assert ece(truth, labels) < 0.015 and ece(calibrated, labels) < 0.015 < 0.1 < ece(over, labels)
    assert nll(calibrated, labels) == pytest.approx(nll(truth, labels), abs=0.005)
    assert nll(calibrated, labels) < nll(over, labels)
    assert brier(calibrated, labels) < brier(over, labels)
    assert (calibrated.argmax(1) == over.argmax(1)).all()  # one model's predicted class never changes


def test_an_under_confident_model_is_sharpened(known) -> None:
    truth, _, labels = known
    under = with_temperature(truth, 2.0)  # softmax(z / 2)
    assert fit_temperature(under, labels) == pytest.approx(0.5, rel=0.05)


def test_scores_on_hand_cases() -> None:
    sure = np.array([[0.9, 0.1]] * 10)
    assert ece(sure, np.array([0] * 9 + [1])) == pytest.approx(0.0)  # 90 % sure, 90 % right
    assert ece(sure, np.array([0] * 5 + [1] * 5)) == pytest.approx(0.4)  # 90 % sure, 50 % right
    assert brier(np.eye(3), np.arange(3)) == 0.0
    assert brier(np.full((2, 2), 0.5), np.array([0, 1])) == pytest.approx(0.5)
    assert nll(np.full((4, 4), 0.25), np.arange(4)) == pytest.approx(np.log(4))
    scores = calibration_scores(sure, np.array([0] * 5 + [1] * 5))
    assert (
        scores["mean_confidence"] == pytest.approx(0.9) and scores["ece_95"]["low"] <= 0.4 <= scores["ece_95"]["high"]
    )
    (bin_,) = reliability_bins(sure, np.array([0] * 5 + [1] * 5))
    assert (bin_["low"], bin_["videos"], bin_["accuracy"]) == (0.9, 10, 0.5)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0  # no validation videos: nothing to fit


def test_the_reliability_diagram_is_drawn(known, tmp_path) -> None:
    truth, over, labels = known
    path = tmp_path / "reliability.png"
    plot_reliability({"over-confident": (over, labels), "calibrated": (truth, labels)}, "known", path)
    assert path.stat().st_size > 10_000
