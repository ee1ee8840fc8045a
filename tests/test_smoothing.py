"""The measures of a timeline (MS-TCN's), counted by hand, and the choice of smoothing settings on held-out
sequences, never on the one scored. The smoother itself is tested on real clips in tests/test_timeline.py."""

from __future__ import annotations

import numpy as np
import pytest

from research.config import EvalConfig
from research.engine.segment_metrics import edit_score, f1_at, frame_accuracy, runs, timeline_scores
from research.engine.smoothing import DEFAULT, NONE, Smoothing, choose_smoothing, resolve, smooth, stride_of
from research.errors import ConfigError


def test_edit_score_and_f1_count_segments_as_ms_tcn_does() -> None:
    truth = np.array([0] * 10 + [1] * 10)
    # one window of 1 inside the 0s: segments 0 1 0 1 against 0 1, two insertions over the longer 4
    flicker = truth.copy()
    flicker[4] = 1
    assert runs(flicker)[0].tolist() == [0, 1, 0, 1]
    assert frame_accuracy(flicker, truth) == pytest.approx(0.95)
    assert edit_score(flicker, truth) == pytest.approx(1 - 2 / 4)
    # F1@50: predicted 0[0,4) IoU 4/10 -> miss; 1[4,5) wrong class -> miss; 0[5,10) IoU 5/10 -> hit; 1[10,20) hit
    assert f1_at(flicker, truth, 0.5) == pytest.approx(2 * 2 / (2 * 2 + 2 + 0))
    assert f1_at(flicker, truth, 0.1) == pytest.approx(2 * 2 / (2 * 2 + 2 + 0))  # the second 0 finds its truth taken
    # a boundary two windows late: every segment is there (edit 1), F1@50 holds, accuracy pays
    late = np.array([0] * 12 + [1] * 8)
    assert edit_score(late, truth) == 1.0 and f1_at(late, truth, 0.5) == 1.0 and frame_accuracy(late, truth) == 0.9
    assert f1_at(late, truth, 0.9) == 0.0  # IoU 10/12 and 8/10: both below 0.9
    assert set(timeline_scores(late, truth)) == {"accuracy", "edit", "f1@10", "f1@25", "f1@50"}
    assert edit_score(np.array([2, 2]), np.array([0, 1])) == pytest.approx(0.0)  # substitute 1, insert 1: 2 of 2


def test_settings_are_chosen_on_held_out_sequences_and_resolved_command_first() -> None:
    """Noisy windows of long true segments: the choice smooths them (and beats raw on held-out sequences of
    the same kind); where every window is right, no smoothing is needed and the grid's first point wins."""
    rng = np.random.default_rng(0)

    def sequence(n: int = 200, flip: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
        truth = np.repeat(rng.integers(0, 3, n // 20), 20)
        top = np.where(rng.random(len(truth)) < flip, rng.integers(0, 3, len(truth)), truth)
        probs = np.full((len(truth), 3), 0.2)
        probs[np.arange(len(truth)), top] = 0.6
        return probs, truth

    tuning, scored = [sequence() for _ in range(4)], [sequence() for _ in range(4)]
    choice = choose_smoothing(tuning, stride=2.0)
    chosen = Smoothing.from_record(choice["smoothing"])
    assert not chosen.off and len(choice["grid"]) == 7 * 5
    for probs, truth in scored:
        raw, smoothed = timeline_scores(probs.argmax(1), truth), timeline_scores(smooth(probs, 2.0, chosen), truth)
        assert smoothed["edit"] > raw["edit"] and smoothed["f1@50"] > raw["f1@50"]
    clean = [(np.eye(3)[t] * 0.9 + 0.1 / 3, t) for _, t in tuning]
    assert Smoothing.from_record(choose_smoothing(clean, stride=2.0)["smoothing"]) == NONE

    # the command's settings first, then the classifier file's, then the default; --no-smooth: none at all
    record = {"segment_s": 40.0, "min_segment_s": 6.0}
    assert resolve(None, None, True, record) == Smoothing(40.0, 6.0)
    assert resolve(20.0, None, True, record) == Smoothing(20.0, 6.0)
    assert resolve(None, None, True, None) == DEFAULT and resolve(20.0, 3.0, False, record) == NONE
    assert stride_of(np.array([0.0, 5.0, 10.0, 12.0]), 10.0) == 5.0 and stride_of(np.array([0.0]), 10.0) == 10.0
    with pytest.raises(ConfigError, match="segment_s takes seconds > 0"):
        EvalConfig(segment_s=0.0).validate()
