"""THE compatibility rule between checkpoints, feature files and configs.

One rule, ``check_compatible``, used wherever two of {checkpoint, feature file, config} meet
(training's splits, evaluation's members and files, merging files, re-using extracted files):
every key of ``FEATURE_KEYS`` that both sides record must be equal. ``HARD_KEYS`` cannot be
waived (the numbers would be meaningless or the model cannot even run); the others may be, on
request, with a warning (e.g. a study of how a model trained at 32 frames copes with 8).
It lives with the features because it is about what determines them; checkpoints record the
same keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from research.errors import FeatureMismatchError
from research.features.settings import normalization_of

log = logging.getLogger(__name__)

# Everything that determines a feature sequence, named as in the feature file's attributes.
FEATURE_KEYS = (
    "feature_dim",
    "category_mapping",
    "multi_scale",
    "backbone",
    "weights",
    "image_size",
    "frames_per_video",
    "scales",
    "sampling",
    "sampling_per_subcategory",
    "clip_seconds",
    "normalization",
    "resize",
    "crop_pct",
    "interpolation",
    "l2_normalized",
    "weights_stamp",
)
# Never waived: the numbers would be meaningless (another network's features, other classes) or the model
# cannot even run. The rest (frames, resolution, sampling, clip, resizing) may be, for robustness studies.
HARD_KEYS = (
    "feature_dim",
    "category_mapping",
    "multi_scale",
    "backbone",
    "weights",
    "weights_stamp",
    "normalization",
    "l2_normalized",
)


def _normal(key: str, value: Any) -> Any:
    """One spelling per value: HDF5 gives numpy scalars, -1 stands for 'no clip', lists for tuples."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if key == "clip_seconds" and value is not None and float(value) < 0:
        return None
    if key == "multi_scale":
        return bool(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and value.is_integer() and key != "clip_seconds":
        return int(value)
    return value


def feature_record(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``FEATURE_KEYS`` a feature file's attributes (or a settings dict) record."""
    return {k: _normal(k, attrs[k]) for k in FEATURE_KEYS if k in attrs}


def _with_normalization(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record from before normalisation and resizing were recorded: its backbone's statistics and the
    seed's squash, the only ones used then (so a file made otherwise is never taken for an old one)."""
    norm = normalization_of(record)
    record = record if norm is None or "normalization" in record else {**record, "normalization": norm}
    return record if "resize" in record or "backbone" not in record else {**record, "resize": "squash"}


def feature_differences(
    expected: Mapping[str, Any], actual: Mapping[str, Any], keys: tuple[str, ...] | None = FEATURE_KEYS
) -> dict[str, tuple[Any, Any]]:
    """``{key: (expected, actual)}`` for keys both sides record and that differ (all shared keys if None).

    A side from before normalisation was recorded is compared with its backbone's statistics, the
    only ones used then, so a file of other statistics is never taken for an old one.
    """
    expected, actual = _with_normalization(expected), _with_normalization(actual)
    names = [k for k in (keys or sorted(set(expected) | set(actual))) if k in expected and k in actual]
    out = {}
    for k in names:
        a, b = _normal(k, expected[k]), _normal(k, actual[k])
        if a != b:
            out[k] = (a, b)
    return out


def describe(differences: dict[str, tuple[Any, Any]], left: str, right: str) -> str:
    return "; ".join(f"{k}: {a!r} ({left}) vs {b!r} ({right})" for k, (a, b) in differences.items())


def check_compatible(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    expected_name: str,
    actual_name: str,
    allow_mismatch: bool = False,
    keys: tuple[str, ...] = FEATURE_KEYS,
) -> dict[str, tuple[Any, Any]]:
    """Refuse when two feature descriptions differ; with ``allow_mismatch``, only warn on soft keys.

    Returns the differences that were allowed (empty when everything agrees).
    """
    diffs = feature_differences(expected, actual, keys)
    hard = {k: v for k, v in diffs.items() if k in HARD_KEYS}
    soft = {k: v for k, v in diffs.items() if k not in HARD_KEYS}
    if hard or (soft and not allow_mismatch):
        shown = diffs if not allow_mismatch else hard
        hint = (
            "; pass allow_feature_mismatch=true to score it anyway" if soft and not hard and not allow_mismatch else ""
        )
        raise FeatureMismatchError(
            f"{actual_name} does not match {expected_name}: {describe(shown, expected_name, actual_name)}. "
            f"Use features extracted with the same settings{hint}."
        )
    if soft:
        log.warning("%s differs from %s (allowed): %s", actual_name, expected_name, describe(soft, "a", "b"))
    return soft
