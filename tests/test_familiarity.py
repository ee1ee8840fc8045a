"""Familiarity and the calibration by familiarity band: scores on real features, bands kept only where they
transfer better, the coverage table, the AUROC."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from research.engine.calibration import with_temperature
from research.engine.classifier import pooled_file
from research.engine.familiarity import (
    CANDIDATES,
    DEFAULT_METHOD,
    FAMILIES,
    SEEN,
    SOURCES,
    BakeoffFold,
    Candidate,
    Familiarity,
    auroc,
    bakeoff_markdown,
    band_edges,
    coverage,
    familiarity_bakeoff,
    grouped_auroc_resamples,
    imagenet_head,
    shared_reference_size,
    with_band_temperatures,
)


def test_a_training_clip_is_its_own_nearest_and_a_file_round_trip_keeps_the_score(tiny_features: Path) -> None:
    x, _ = pooled_file(tiny_features / "train_features.h5")
    familiarity = Familiarity.fit(x)
    assert familiarity.method == DEFAULT_METHOD and familiarity.reference_size == len(x)
    assert np.allclose(familiarity.score(x), 1.0, atol=1e-5)  # every training clip is a prototype
    other, _ = pooled_file(tiny_features / "test_features.h5")
    scores = familiarity.score(other)
    assert scores.shape == (len(other),) and np.all(scores <= 1.0 + 1e-6) and np.all(scores >= -1.0 - 1e-6)
    assert np.array_equal(Familiarity.from_record(saved(familiarity.to_record())).score(other), scores)
    # a classifier file written before the bake-off (its four arrays, no method) reads as the same scorer
    old = {
        k: torch.from_numpy(familiarity.arrays[k].astype(np.float32)) for k in ("mean", "scale", "basis", "prototypes")
    }
    legacy = Familiarity.from_record(saved(old))
    assert legacy.method == "cosine_pca" and np.allclose(legacy.score(other), scores, atol=1e-5)
    # a larger reference is sampled to exactly ``size`` clips, with a seed: the size is recorded and the same
    # clips give the same scorer
    sampled = Familiarity.fit(x, size=3)
    assert sampled.arrays["prototypes"].shape[0] == 3 == sampled.reference_size
    assert np.array_equal(sampled.score(other), Familiarity.fit(x, size=3).score(other))
    assert shared_reference_size([300, 120, 5000]) == 120 and shared_reference_size([10**6], most=4096) == 4096


def saved(record: dict) -> dict:
    """``record`` through a file as a classifier file holds it (``torch.load(weights_only=True)``)."""
    buffer = io.BytesIO()
    torch.save({"familiarity": record}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["familiarity"]


def test_every_scorer_round_trips_through_a_file_and_the_head_is_the_backbones_own(tiny_features: Path) -> None:
    """Each bake-off candidate, fitted on real mobilenet_v2 features (with their classes, and torchvision's
    ImageNet head), scores the same after a round trip through a classifier file; the head maps the frozen
    backbone's feature to the full classifier's logits (skimage's cat is a cat)."""
    from skimage.data import chelsea
    from torchvision import models

    from research.backbones.loading import create_backbone, load_classifier

    head = imagenet_head("mobilenet_v2")
    assert head is not None and head.weight.shape == (1000, 1280)
    preprocess = models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    image = preprocess(torch.from_numpy(chelsea()).permute(2, 0, 1))[None]
    with torch.inference_mode():
        logits = load_classifier("mobilenet_v2").eval()(image).double().numpy()
        feature = create_backbone("mobilenet_v2")(image).double().numpy()
    assert np.allclose(head.logits(feature), logits, atol=1e-3) and 281 <= head.logits(feature).argmax() <= 285
    assert imagenet_head("mobilenet_v2+efficientnet_lite0") is None  # a fused pass: no one head for its feature
    assert imagenet_head("mobilenet_v2", "random") is None  # an untrained head is no ImageNet head

    x, labels = pooled_file(tiny_features / "train_features.h5")
    other, _ = pooled_file(tiny_features / "test_features.h5")
    for candidate in CANDIDATES:
        scorer = Familiarity.fit(x, labels, candidate.method, candidate.params, head)
        scores = scorer.score(other)
        assert scores.shape == (len(other),) and np.isfinite(scores).all(), candidate.name
        back = Familiarity.from_record(saved(scorer.to_record()))
        assert (back.method, back.params, back.reference_size) == (candidate.method, candidate.params, len(x))
        assert np.allclose(back.score(other), scores, rtol=1e-9, atol=1e-9), candidate.name
    with pytest.raises(ValueError, match="needs the reference clips' classes"):
        Familiarity.fit(x, None, "mahalanobis")
    with pytest.raises(ValueError, match="has none"):
        Familiarity.fit(x, labels, "energy")


def test_the_bakeoff_pools_folds_per_pair_of_kinds_as_counted_by_hand() -> None:
    """Unit vectors at known angles from the one reference clip: k-NN (k = 1) scores are their cosines.
    Seen sources at 10 and 50 degrees, held-out sources at 30, unseen families at 30 and 70: seen beat
    families in 3 of 4 pairs; sources tie one family and beat the other (0.5 + 1 of 2); seen beat sources
    in 1 of 2. Two identical folds pool to the same AUROC; a head scorer without a head is absent."""

    def at(*degrees: float) -> np.ndarray:
        radians = np.radians(degrees)
        return np.stack([np.cos(radians), np.sin(radians)], 1)

    fold = BakeoffFold(
        at(0.0),
        np.array([0]),
        {SEEN: at(10, 50), SOURCES: at(30), FAMILIES: at(30, 70)},
        {SEEN: np.array(["a", "b"]), SOURCES: np.array(["a"]), FAMILIES: np.array(["c", "d"])},
    )
    candidates = (Candidate("nearest", "knn", {"k": 1}), Candidate("energy", "energy"))
    result = familiarity_bakeoff([fold, fold], candidates, resamples=200)
    assert result["absent"] == ["energy"] and result["winner"] == "nearest" and result["ties"] == []
    assert result["headline"] == "seen sources vs unseen families" and result["reference_size"] == 1
    pairs = result["candidates"][0]["pairs"]
    assert pairs["seen sources vs unseen families"]["auroc"] == pytest.approx(0.75)
    assert pairs["held-out sources vs unseen families"]["auroc"] == pytest.approx(0.75)
    assert pairs["seen sources vs held-out sources"]["auroc"] == pytest.approx(0.5)
    for pair in pairs.values():
        assert pair["low"] <= pair["auroc"] <= pair["high"]
    assert "**nearest**" in bakeoff_markdown(result) and "energy | absent" in bakeoff_markdown(result)


def test_grouped_auroc_resamples_weigh_each_clip_by_its_groups_draws() -> None:
    """Each resample equals the AUROC of the clips repeated as often as their group was drawn (the same draws:
    the generator's numbers), ties half; two scorers share the draws."""
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pos_groups, neg_groups = rng.integers(0, 7, 40).astype(str), rng.integers(3, 12, 30).astype(str)
    n = 50
    draws = grouped_auroc_resamples([(pos, neg), (-pos, -neg)], pos_groups, neg_groups, n, seed=5)
    names, code = np.unique(np.r_[pos_groups, neg_groups], return_inverse=True)
    replay = np.random.default_rng(5).integers(0, len(names), (n, len(names)))
    for b in range(n):
        counts = np.bincount(replay[b], minlength=len(names))[code]
        p, q = np.repeat(pos, counts[:40]), np.repeat(neg, counts[40:])
        assert draws[0, b] == pytest.approx(auroc(p, q)) and draws[1, b] == pytest.approx(auroc(-p, -q))


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


def test_band_temperatures_apply_per_clip() -> None:
    probs = np.array([[0.8, 0.2], [0.8, 0.2]])
    out = with_band_temperatures(probs, np.array([0.1, 0.9]), [0.5], [2.0, 0.5])
    assert np.allclose(out[0], with_temperature(probs[:1], 2.0)[0])
    assert np.allclose(out[1], with_temperature(probs[1:], 0.5)[0])
    assert band_edges(np.arange(60.0), 3) == [29.5]  # 60 clips hold two bands (30 clips per band at least)
    assert band_edges(np.arange(59.0), 3) == []
