"""The logistic-regression probe is scikit-learn's logistic regression, solved, on real extracted features."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from research.models.probe import C_GRID, choose_c, fit_logistic, fit_probe, pooled_mean
from studies.backbones import Pool, source_halves


@pytest.fixture(scope="module")
def pooled(tiny_features: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Masked means of real mobilenet_v2 features of the tiny videos, per split."""
    out = {}
    for split in ("train", "val", "test"):
        with h5py.File(tiny_features / f"{split}_features.h5") as f:
            out[split] = (pooled_mean(f["features"][()], f["num_frames"][()]), f["labels"][()])
    return out


def test_pooled_mean_ignores_the_padding() -> None:
    features = np.zeros((2, 4, 3), np.float32)
    features[0, :2] = [[1, 2, 3], [3, 4, 5]]
    features[1, :] = 7
    np.testing.assert_allclose(pooled_mean(features, np.array([2, 4])), [[2, 3, 4], [7, 7, 7]])


@pytest.mark.parametrize("c", [0.01, 1.0, 10.0])
def test_probe_equals_sklearn_logistic_regression(pooled: dict, c: float) -> None:
    """Same objective, same standardisation: the same predictions and (to solver tolerance) probabilities."""
    x, y = (
        np.concatenate([pooled["train"][0], pooled["val"][0]]),
        np.concatenate([pooled["train"][1], pooled["val"][1]]),
    )
    x_test = pooled["test"][0]
    probe = fit_logistic(x, y, 4, c)
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=c, max_iter=20000, tol=1e-10).fit(scaler.transform(x), y)
    for data in (x, x_test):
        expected = reference.predict_proba(scaler.transform(data))
        got = probe.predict_proba(data)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(probe.weight, reference.coef_, atol=1e-4)


def test_l2_strength_comes_from_the_training_videos_only(pooled: dict) -> None:
    x, y = pooled["train"]
    groups = [f"g{i // 1}" for i in range(len(y))]  # every video its own source
    c = choose_c(x, y, groups, 4, folds=3)
    assert c in C_GRID
    probe = fit_probe(x, y, groups, 4)
    assert probe.c == c  # deterministic: the same folds, the same choice
    assert fit_probe(x, y, groups, 4, c=0.5).c == 0.5


def test_source_halves_hold_out_half_of_each_classs_sources() -> None:
    labels = np.repeat(np.arange(4), 6)
    groups = [f"c{y}s{i % 3}" for i, y in enumerate(labels)]  # 3 sources per class, 2 clips each
    pool = Pool(np.zeros((24, 2)), labels, groups, ["a", "b", "c", "d"])
    tests = source_halves(pool, 10)
    assert len(tests) == 10 and len({tuple(t) for t in tests}) > 1  # different draws
    for test in tests:
        held = {groups[i] for i in test}
        kept = set(groups) - held
        assert len(held) == 4 and not held & kept  # one of 3 sources per class (3 // 2), never both sides
        assert sorted(labels[test].tolist()) == sorted(np.repeat(np.arange(4), 2).tolist())
