"""Statistics that scale to 10^5-10^6 clips: intervals in blocks of resamples with the draws of one big draw,
the probe fitted from features streamed in blocks of rows, the balanced split's fast path at large sizes.

Every scalable path is checked against the code it replaced (kept here, verbatim, as the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from research.engine import calibration, metrics

# ------------------------------------------------------------- today's code, the references


def reference_macro_f1_batch(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    f1s = []
    for c in range(num_classes):
        tp = ((preds == c) & (labels == c)).sum(1)
        fp = ((preds == c) & (labels != c)).sum(1)
        fn = ((preds != c) & (labels == c)).sum(1)
        denom = 2 * tp + fp + fn
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
    return np.mean(f1s, axis=0)


def reference_bootstrap_interval(labels, preds, num_classes, n=2000, seed=0):
    preds = np.atleast_2d(preds)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    scores = np.mean([reference_macro_f1_batch(labels[idx], p[idx], num_classes) for p in preds], axis=0)
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def reference_bootstrap_difference(labels, preds_a, preds_b, num_classes, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), (n, len(labels)))
    diffs = np.zeros(n)
    for pa, pb in zip(preds_a, preds_b, strict=True):
        diffs += reference_macro_f1_batch(labels[idx], pb[idx], num_classes) - reference_macro_f1_batch(
            labels[idx], pa[idx], num_classes
        )
    diffs /= len(preds_a)
    return {"low": float(np.percentile(diffs, 2.5)), "high": float(np.percentile(diffs, 97.5))}


def reference_ece_interval(probs, labels, n=2000, seed=0, bins=calibration.BINS):
    probs, labels = np.asarray(probs), np.asarray(labels)
    if not len(labels):
        return {"low": 0.0, "high": 0.0}
    rng = np.random.default_rng(seed)
    scores = [calibration.ece(probs[idx], labels[idx], bins) for idx in rng.integers(0, len(labels), (n, len(labels)))]
    return {"low": float(np.percentile(scores, 2.5)), "high": float(np.percentile(scores, 97.5))}


def reference_grouped_resamples(labels, predictions, groups, num_classes, n=2000, seed=0, block=10_000_000):
    labels = np.asarray(labels)
    _, group_index = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group_index.max()) + 1
    cells = num_classes * num_classes

    def confusions(preds):
        codes = group_index * cells + labels * num_classes + np.atleast_2d(preds)
        return np.stack([np.bincount(c, minlength=n_groups * cells).reshape(n_groups, cells) for c in codes])

    per_group = [confusions(np.asarray(p)) for p in predictions]
    rng = np.random.default_rng(seed)
    scores = np.empty((len(predictions), n))
    rows = max(1, block // max(n_groups, 1))
    for start in range(0, n, rows):
        size = min(rows, n - start)
        weights = np.stack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups) for _ in range(size)])
        for k, conf in enumerate(per_group):
            cm = np.einsum("rg,sgk->srk", weights, conf).reshape(len(conf), size, num_classes, num_classes)
            scores[k, start : start + size] = metrics._macro_f1_from_confusions(cm).mean(0)
    return scores


def noisy_predictions(seed: int, n: int, num_classes: int, accuracy: float, seeds: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    preds = np.stack(
        [np.where(rng.random(n) < accuracy, labels, rng.integers(0, num_classes, n)) for _ in range(seeds)]
    )
    return labels, preds


# ------------------------------------------------------------------------ intervals


@pytest.mark.parametrize(("n_clips", "num_classes", "seeds"), [(381, 10, 1), (97, 3, 3), (1201, 12, 2), (5, 2, 1)])
def test_the_blocked_interval_is_todays_interval_on_the_same_seed(n_clips: int, num_classes: int, seeds: int) -> None:
    labels, preds = noisy_predictions(n_clips, n_clips, num_classes, 0.6, seeds)
    for seed in (0, 7):
        expected = reference_bootstrap_interval(labels, preds, num_classes, n=300, seed=seed)
        assert metrics.bootstrap_interval(labels, preds, num_classes, n=300, seed=seed) == expected
        # blocks of a few resamples (and of less than one resample) draw the same numbers
        for block in (n_clips * 7, 1):
            assert metrics.bootstrap_interval(labels, preds, num_classes, n=300, seed=seed, block=block) == expected
    assert metrics.bootstrap_interval(labels, preds[0], num_classes, n=300) == reference_bootstrap_interval(
        labels, preds[0], num_classes, n=300
    )


def test_the_blocked_difference_is_todays_difference_and_can_tell_two_models_apart() -> None:
    labels, a = noisy_predictions(1, 400, 6, 0.5, seeds=2)
    _, b = noisy_predictions(1, 400, 6, 0.9, seeds=2)
    b[:, :] = np.where(np.random.default_rng(2).random(b.shape) < 0.9, labels, b)
    expected = reference_bootstrap_difference(labels, a, b, 6, n=400, seed=3)
    got = metrics.bootstrap_difference(labels, a, b, 6, n=400, seed=3, block=1000)
    assert got == expected
    assert got["low"] > 0.2  # b is much better: the interval says so
    # a prediction outside the classes counts as no class's prediction, as the comparisons did
    odd = a.copy()
    odd[0, :20] = 6
    assert metrics.bootstrap_difference(labels, odd, b, 6, n=200) == reference_bootstrap_difference(
        labels, odd, b, 6, n=200
    )


@pytest.mark.parametrize(("n_clips", "num_classes"), [(381, 10), (64, 3), (2000, 5)])
def test_the_blocked_ece_interval_is_todays_interval(n_clips: int, num_classes: int) -> None:
    rng = np.random.default_rng(n_clips)
    logits = rng.normal(size=(n_clips, num_classes)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, num_classes, n_clips)
    for dtype in (np.float64, np.float32):
        expected = reference_ece_interval(probs.astype(dtype), labels, n=300, seed=5)
        assert calibration.ece_interval(probs.astype(dtype), labels, n=300, seed=5) == expected
        assert calibration.ece_interval(probs.astype(dtype), labels, n=300, seed=5, block=3 * n_clips) == expected
    assert calibration.ece_interval(probs[:0], labels[:0]) == {"low": 0.0, "high": 0.0}


@pytest.mark.parametrize("n_groups", [1, 37, 600])
def test_grouped_resamples_drawn_per_block_are_todays(n_groups: int) -> None:
    labels, preds = noisy_predictions(4, 600, 4, 0.7, seeds=2)
    groups = [f"g{k}" for k in np.random.default_rng(9).integers(0, n_groups, 600)]
    for block in (10_000_000, 1500, 1):
        expected = reference_grouped_resamples(labels, [preds, preds[0]], groups, 4, n=250, seed=1, block=block)
        got = metrics.grouped_resamples(labels, [preds, preds[0]], groups, 4, n=250, seed=1, block=block)
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------ the balanced split


def reference_balanced_split(labels, groups, folds, val_fraction, seed, candidates):
    """Today's ``balanced_split`` (sklearn's StratifiedGroupKFold for every fold seed and carve), condensed."""
    from sklearn.model_selection import StratifiedGroupKFold

    from research.data.splits import class_shares, intended_shares

    num_classes = int(labels.max()) + 1
    target = np.array(list(intended_shares(folds, val_fraction).values()))[:, None]
    best, chosen = None, None
    for fold_seed in range(seed, seed + max(1, candidates)):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=fold_seed)
        for test_fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            rest = np.setdiff1d(np.arange(len(labels)), test)
            sub_groups = [groups[i] for i in rest]
            most = int(np.bincount(labels[rest]).max())
            k = max(2, min(round(1 / val_fraction), most, len(set(sub_groups))))
            inner = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=fold_seed)
            for val_fold, (fit, val) in enumerate(inner.split(np.zeros(len(rest)), labels[rest], sub_groups)):
                parts = {"train": np.sort(rest[fit]), "val": np.sort(rest[val]), "test": np.sort(test)}
                gaps = np.abs(class_shares(labels, parts, num_classes) - target)
                score = (float(gaps.max()), float(gaps.mean()))
                if best is None or score < best:
                    best, chosen = score, (parts, fold_seed, test_fold, val_fold)
    return chosen, best


def demo_collection() -> tuple[np.ndarray, list[str]]:
    """benchmarks/real's clips as the demo groups them: by family, a clip without one by its source."""
    import csv

    from .test_demo import REAL

    with (REAL / "manifest.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["path"])
    classes = sorted({r["class"] for r in rows})
    return np.array([classes.index(r["class"]) for r in rows]), [r["family"] or r["source"] for r in rows]


def test_the_demos_balanced_split_is_todays() -> None:
    from research.data.splits import LINEAR_FOLDS_ABOVE, balanced_split

    labels, families = demo_collection()
    assert len(set(families)) < LINEAR_FOLDS_ABOVE  # the demo stays on sklearn's folds
    (expected, seed, test_fold, val_fold), best = reference_balanced_split(labels, families, 5, 0.2, 0, 2)
    parts, record = balanced_split(labels, families, 5, 0.2, 0, 2)  # 8 in the demo: the same path
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(parts[name], expected[name])
    assert (record["seed"], record["test_fold"], record["val_fold"]) == (seed, test_fold, val_fold)
    assert record["distance"] == round(best[0], 4) and record["candidates"] == 50


def long_tailed_groups(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` clips in groups of Zipf sizes (a few large, most of one or two clips), each mostly one class."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n), np.minimum(rng.zipf(2.2, n), n // 40))[:n]
    labels = (group * 7919 + (rng.random(n) < 0.2) * rng.integers(0, num_classes, n)) % num_classes
    return labels, [f"g{k}" for k in group]


@pytest.mark.parametrize("grouping", ["one group per clip", "long-tailed groups"])
def test_the_linear_split_at_many_groups_is_grouped_complete_and_close_to_the_intended_shares(grouping: str) -> None:
    from research.data.splits import (
        LINEAR_FOLDS_ABOVE,
        balanced_split,
        class_shares,
        intended_shares,
        make_folds,
    )

    n = 12_000
    if grouping == "one group per clip":
        labels = np.random.default_rng(1).integers(0, 7, n)
        groups = [f"clip{i}" for i in range(n)]
    else:
        labels, groups = long_tailed_groups(n, 7, 2)
    assert len(set(groups)) > LINEAR_FOLDS_ABOVE
    folds = make_folds(labels, groups, 5, 0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(n))  # every clip in exactly one fold
    fold_of = {g: k for k, rows in enumerate(folds) for i in rows for g in [groups[i]]}
    assert all(fold_of[groups[i]] == k for k, rows in enumerate(folds) for i in rows)  # no group in two folds
    for k, rows in enumerate(make_folds(labels, groups, 5, 0)):  # seeded: the same folds again
        np.testing.assert_array_equal(rows, folds[k])
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(folds, make_folds(labels, groups, 5, 1), strict=True))

    parts, record = balanced_split(labels, groups, 5, 0.2, 0, 8)
    sides = [{groups[i] for i in rows} for rows in parts.values()]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(rows) for rows in parts.values()) == n
    shares = class_shares(labels, parts, 7)
    intended = np.array(list(intended_shares(5, 0.2).values()))[:, None]
    tolerance = 0.01 if grouping == "one group per clip" else 0.06  # a group of n/40 clips moves a share that much
    assert np.abs(shares - intended).max() < tolerance, shares
    assert record["distance"] == pytest.approx(np.abs(shares - intended).max(), abs=1e-4)
    # fold seeds of 25 candidates (test folds x carves); one seed when the shares are within 0.001 already
    assert record["candidates"] == 25 if grouping == "one group per clip" else record["candidates"] % 25 == 0


# ------------------------------------------------------------------------ the probe, streamed


def test_the_streamed_probe_is_the_in_memory_probe_on_real_features(tiny_features: Path, tmp_path: Path) -> None:
    import shutil

    import h5py

    from research.engine.classifier import pooled_file
    from research.models.probe import choose_c, fit_logistic, pooled_mean, standardisation

    path = tmp_path / "train_features.h5"  # a copy: no means kept beside it yet, so these are computed
    shutil.copy(tiny_features / "train_features.h5", path)
    with h5py.File(path) as f:
        in_memory = pooled_mean(f["features"][()], f["num_frames"][()])
        labels = f["labels"][()]
    one_row_at_a_time, y = pooled_file(path, block_bytes=1)
    np.testing.assert_array_equal(one_row_at_a_time, in_memory)  # each video's mean is its own: the same numbers
    np.testing.assert_array_equal(y, labels)
    as_float32, _ = pooled_file(path, block_bytes=1, float64_bytes=0)  # past the size where float64 matters
    assert as_float32.dtype == np.float32
    np.testing.assert_allclose(as_float32, in_memory, rtol=1e-6, atol=1e-6)

    mean, scale = standardisation(in_memory)
    streamed_mean, streamed_scale = standardisation(as_float32, block_rows=3)
    np.testing.assert_allclose(streamed_mean, mean, atol=1e-6)
    np.testing.assert_allclose(streamed_scale, scale, rtol=1e-5)
    num_classes = int(y.max()) + 1
    for c in (0.01, 1.0):
        expected = fit_logistic(in_memory, y, num_classes, c)
        streamed = fit_logistic(as_float32, y, num_classes, c, block_rows=3)
        np.testing.assert_allclose(streamed.predict_proba(in_memory), expected.predict_proba(in_memory), atol=1e-4)
        assert (streamed.predict(in_memory) == expected.predict(in_memory)).all()
        np.testing.assert_allclose(streamed.weight, expected.weight, atol=1e-3)
        np.testing.assert_allclose(expected.logits(in_memory, block_rows=2), expected.logits(in_memory), atol=1e-12)
    # a wrong fit would not pass: a probe of shuffled labels predicts other classes
    wrong = fit_logistic(as_float32, np.roll(y, 1), num_classes, 1.0, block_rows=3)
    assert not np.allclose(wrong.predict_proba(in_memory), expected.predict_proba(in_memory), atol=1e-4)
    assert choose_c(in_memory, y, [f"v{i}" for i in range(len(y))], num_classes).c in (0.01, 0.03, 0.1, 0.3, 1.0, 3, 10)
