"""What determines a feature sequence: one frozen ``FeatureSettings``, built once, stored verbatim.

Every setting that changes the numbers a video's features hold (the backbone or backbones,
each with its weights, image size and normalisation; frames per video, sampling and its
per-subcategory map, clip window, temporal scales) lives in one immutable object that is

- made from ``ExtractConfig`` in one place (``FeatureSettings.from_config``);
- written in one function (``record``): the feature file's attributes under the seed's
  names, which are also what a checkpoint stores under ``features`` and what keys an
  extraction's work folder;
- read back in one function (``FeatureSettings.from_record``), from a feature file's
  attributes or a checkpoint, older files included (``clip_seconds = -1`` for "no clip",
  no ``normalization`` before it was recorded);
- compared by THE compatibility rule, ``research.engine.checkpoints.check_compatible``, on records.

A file is one of two kinds made from the same CNN pass: ``single`` (the T sampled
frames) or ``multi`` (seed 000's temporal scales averaged). The kind decides which
scales a record names. This module imports no torch, so the config layer and
``--help`` stay fast.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from research.backbones.table import FUSION_SEPARATOR, IMAGENET_MEAN, IMAGENET_STD, backbone_parts, get_spec
from research.errors import ConfigError

# Bumped when the numbers a given config produces change (a fix in sampling, decoding, ...),
# so files from before are refused instead of silently mixed with new ones.
FEATURE_FORMAT = 2

SAMPLING_STRATEGIES = ("uniform", "center", "dense")
KINDS = ("single", "multi")


def scale_length(num_frames: int, scale: float) -> int:
    """Frames of one temporal scale: T itself at 1.0, else the seed's ``max(int(T*s), 5)``."""
    return num_frames if scale == 1.0 else max(int(num_frames * scale), 5)


def fingerprint(values: Any) -> str:
    """A short, order-independent digest of plain data (work-folder keys, file attributes)."""
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BackbonePart:
    """One CNN of a feature pass, with the preprocessing its frames get."""

    backbone: str
    weights: str  # the weights' name, or "random" for an untrained network (asked for, never a fallback)
    weights_file: str
    feature_dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def record(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "weights": self.weights,
            "feature_dim": self.feature_dim,
            "image_size": self.image_size,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }


def _joined(values: list[Any]) -> str:
    return FUSION_SEPARATOR.join(str(v) for v in values)


@dataclass(frozen=True)
class FeatureSettings:
    parts: tuple[BackbonePart, ...]  # one CNN, or several whose per-frame features are concatenated in order
    frames: int  # T sampled per video ("frames_per_video" in files)
    clip_seconds: float | None  # None: the whole video
    sampling: str
    sampling_per_subcategory: tuple[tuple[str, str], ...]  # sorted (subcategory, strategy) pairs
    scales: tuple[float, ...]  # the multi-scale file's temporal scales

    # ------------------------------------------------------------------ making

    @classmethod
    def from_config(cls, cfg: Any) -> FeatureSettings:
        """The settings an ``ExtractConfig`` asks for: each backbone at its own resolution and
        normalisation unless the config sets ``image_size`` / ``mean`` / ``std`` for all of them."""
        random = bool(cfg.random_weights)
        parts = []
        for name in backbone_parts(cfg.backbone):
            spec = get_spec(name)
            parts.append(
                BackbonePart(
                    backbone=name,
                    weights="random" if random else spec.weights_name,
                    weights_file="random" if random else spec.weights_file,
                    feature_dim=spec.feature_dim,
                    image_size=int(cfg.image_size) if cfg.image_size else spec.image_size,
                    mean=tuple(float(v) for v in cfg.mean) if cfg.mean else spec.mean,  # type: ignore[arg-type]
                    std=tuple(float(v) for v in cfg.std) if cfg.std else spec.std,  # type: ignore[arg-type]
                )
            )
        return cls(
            parts=tuple(parts),
            frames=int(cfg.frames),
            clip_seconds=None if cfg.clip_seconds is None else float(cfg.clip_seconds),
            sampling=cfg.sampling,
            sampling_per_subcategory=tuple(sorted(dict(cfg.sampling_per_subcategory).items())),
            scales=tuple(float(s) for s in cfg.scales),
        )

    # -------------------------------------------------------- the parts, summed

    @property
    def fused(self) -> bool:
        return len(self.parts) > 1

    @property
    def backbone(self) -> str:
        return _joined([p.backbone for p in self.parts])

    @property
    def weights(self) -> str:
        return _joined([p.weights for p in self.parts])

    @property
    def weights_file(self) -> str:
        return _joined([p.weights_file for p in self.parts])

    @property
    def feature_dim(self) -> int:
        return sum(p.feature_dim for p in self.parts)

    @property
    def image_sizes(self) -> tuple[int, ...]:
        """The distinct resolutions frames are decoded at, ascending (one per part at most)."""
        return tuple(sorted({p.image_size for p in self.parts}))

    @property
    def image_size(self) -> int | str:
        """As recorded: the one part's size, or the parts' sizes joined ("224+260")."""
        return self.parts[0].image_size if not self.fused else _joined([p.image_size for p in self.parts])

    @property
    def normalization(self) -> dict[str, list[float]] | list[dict[str, list[float]]]:
        """As recorded: the one part's mean and std, or a list of them, one per part."""
        norms = [{"mean": list(p.mean), "std": list(p.std)} for p in self.parts]
        return norms[0] if not self.fused else norms

    # ----------------------------------------------------------------- queries

    @property
    def pretrained(self) -> bool:
        return all(p.weights != "random" for p in self.parts)

    def sampling_for(self, subcategory: str | None) -> str:
        """The strategy for a video of ``subcategory`` (the per-subcategory map, else the default)."""
        return dict(self.sampling_per_subcategory).get(subcategory or "", self.sampling)

    def scales_for(self, kind: str) -> tuple[float, ...]:
        return self.scales if kind == "multi" else (1.0,)

    def sequence_length(self, kind: str, num_frames: int | None = None) -> int:
        """``max_frames`` of a file of ``kind`` (73 for multi-scale T=64); ``num_frames`` for other T."""
        t = self.frames if num_frames is None else num_frames
        return max(scale_length(t, s) for s in self.scales_for(kind))

    # ---------------------------------------------------------- writing, reading

    def record(self, kind: str) -> dict[str, Any]:
        """The attributes of a feature file of ``kind``, under the seed's names (JSON-able).

        A fused pass joins its parts' names, weights and sizes with "+" and lists their
        normalisations, so a member of one backbone is refused on it in one line naming both;
        ``parts`` records each CNN (name, weights, width, size, normalisation) in feature order.
        """
        record = {
            "backbone": self.backbone,
            "weights": self.weights,
            "weights_file": self.weights_file,
            "image_size": self.image_size,
            "frames_per_video": self.frames,
            "clip_seconds": self.clip_seconds,
            "sampling": self.sampling,
            "sampling_per_subcategory": dict(self.sampling_per_subcategory),
            "multi_scale": kind == "multi",
            "scales": list(self.scales_for(kind)),
            "normalization": self.normalization,
        }
        if self.fused:  # single-backbone records stay exactly as before, so their files stay valid
            record["parts"] = [p.record() for p in self.parts]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FeatureSettings:
        """Read back what ``record`` wrote: a feature file's attributes (as ``features.read_attrs`` decodes
        them) or a checkpoint's ``features``.

        Files from before normalisation was recorded used their backbone's (ImageNet) statistics.
        """
        clip = record.get("clip_seconds")
        clip = None if clip is None or float(clip) < 0 else float(clip)
        per_sub = record.get("sampling_per_subcategory") or {}
        scales = record.get("scales") or [1.0]
        if record.get("parts"):
            files = str(record.get("weights_file", "")).split(FUSION_SEPARATOR)
            parts = tuple(
                _part(p, files[i] if len(files) == len(record["parts"]) else "") for i, p in enumerate(record["parts"])
            )
        else:
            norm = normalization_of(record) or {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # the seed's statistics
            parts = (
                _part(
                    {**record, "normalization": norm, "feature_dim": record["feature_dim"]},
                    str(record.get("weights_file", "")),
                ),
            )
        return cls(
            parts=parts,
            frames=int(record["frames_per_video"]),
            clip_seconds=clip,
            sampling=str(record.get("sampling", "uniform")),
            sampling_per_subcategory=tuple(sorted(dict(per_sub).items())),
            scales=tuple(float(s) for s in scales),
        )


def _part(record: Mapping[str, Any], weights_file: str) -> BackbonePart:
    norm = record["normalization"]
    return BackbonePart(
        backbone=str(record["backbone"]),
        weights=str(record.get("weights", "")),
        weights_file=weights_file,
        feature_dim=int(record["feature_dim"]),
        image_size=int(record["image_size"]),
        mean=tuple(float(v) for v in norm["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in norm["std"]),  # type: ignore[arg-type]
    )


def normalization_of(record: Mapping[str, Any]) -> dict[str, list[float]] | None:
    """What a record's frames were normalised with: as recorded, or, for files and checkpoints from
    before it was recorded, their backbone's statistics (the only ones used then); None if unknown."""
    if "normalization" in record:
        return record["normalization"]
    try:
        spec = get_spec(str(record["backbone"]))
    except (KeyError, ConfigError):
        return None
    return {"mean": list(spec.mean), "std": list(spec.std)}


def kind_of(record: Mapping[str, Any]) -> str:
    """``multi`` or ``single``: which of the two files a record describes."""
    return "multi" if bool(record.get("multi_scale")) else "single"


def file_record(
    settings: FeatureSettings, kind: str, split: str, data_dir: str, mapping: Mapping[str, int]
) -> dict[str, Any]:
    """Everything that determines one feature file's numbers: its settings, split, inputs root, classes."""
    return {
        "format": FEATURE_FORMAT,
        "data_dir": data_dir,
        "split": split,
        "category_mapping": dict(mapping),
        **settings.record(kind),
    }


__all__ = [
    "FEATURE_FORMAT",
    "KINDS",
    "SAMPLING_STRATEGIES",
    "BackbonePart",
    "FeatureSettings",
    "file_record",
    "fingerprint",
    "kind_of",
    "normalization_of",
    "scale_length",
]
