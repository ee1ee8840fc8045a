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
- compared by THE compatibility rule, ``research.features.compat.check_compatible``, on records.

A file is one of two kinds made from the same CNN pass: ``single`` (the T sampled
frames) or ``multi`` (seed 000's temporal scales averaged). The kind decides which
scales a record names. This module imports no torch, so the config layer and
``--help`` stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from research.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from research.backbones.table import FUSION_SEPARATOR, backbone_parts, get_spec
from research.errors import ConfigError

# Bumped when the numbers a given config produces change (a fix in sampling, decoding, ...),
# so files from before are refused instead of silently mixed with new ones.
FEATURE_FORMAT = 2

SAMPLING_STRATEGIES = ("uniform", "center", "dense")
KINDS = ("single", "multi")
# What runs the CNN (research.backbones.runtime). Recorded in feature files, not compared: its features
# equal torch's within research.backbones.runtime.TOLERANCE, measured for every offline backbone.
RUNTIMES = ("auto", "torch", "onnxruntime")


def scale_length(num_frames: int, scale: float) -> int:
    """Frames of one temporal scale: T itself at 1.0, else the seed's ``max(int(T*s), 5)``."""
    return num_frames if scale == 1.0 else max(int(num_frames * scale), 5)


def fingerprint(values: Any) -> str:
    """A short, order-independent digest of plain data (work-folder keys, file attributes)."""
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True, order=True)
class CropView:
    """A model's own evaluation transform (``resize: crop``): the shorter side to ``size / crop_pct``, then
    the centre ``size`` x ``size`` crop, resized with ``interpolation``. A plain ``int`` view is the seed's
    squash: the whole frame resized to ``size`` x ``size`` whatever its aspect."""

    size: int
    crop_pct: float
    interpolation: str  # timm's / torchvision's name: bilinear, bicubic, ...


View = int | CropView
RESIZE_MODES = ("squash", "crop")


def view_pixels(view: View) -> int:
    """The side of the square a view gives."""
    return view.size if isinstance(view, CropView) else view


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
    resize: str = "squash"  # squash: the frame to image_size^2 (the seed's); crop: the model's eval transform
    crop_pct: float = 0.875  # crop: the centre crop's share of the shorter side
    interpolation: str = "bilinear"  # crop: how the shorter side is resized
    l2_normalized: bool = False  # the backbone's feature is L2-normalised (CLIP image embeddings)
    weights_stamp: str = ""  # size:mtime_ns of a local weights file: another file at the same path is other work

    @property
    def view(self) -> View:
        """How this part's frames are resized (research.video.decode): an int size, or a crop."""
        if self.resize == "crop":
            return CropView(self.image_size, self.crop_pct, self.interpolation)
        return self.image_size

    def record(self) -> dict[str, Any]:
        out = {
            "backbone": self.backbone,
            "weights": self.weights,
            "feature_dim": self.feature_dim,
            "image_size": self.image_size,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }
        return out | self.preprocessing()

    def preprocessing(self) -> dict[str, Any]:
        """What the seed's squash never needed to record (so squash records stay as they were)."""
        out: dict[str, Any] = {}
        if self.resize == "crop":
            out |= {"crop_pct": self.crop_pct, "interpolation": self.interpolation}
        if self.l2_normalized:
            out["l2_normalized"] = True
        if self.weights_stamp:
            out["weights_stamp"] = self.weights_stamp
        return out


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
        names = backbone_parts(cfg.backbone)
        stray = sorted(set(cfg.weights) - set(names))
        if stray:
            raise ConfigError(f"weights names {stray}, which are not parts of backbone {cfg.backbone!r}")
        parts = []
        for name in names:
            spec = get_spec(name)
            local = dict(cfg.weights).get(name)  # a local file stands for the catalogue's weights: recorded
            parts.append(
                BackbonePart(
                    backbone=name,
                    weights="random" if random else spec.weights_name,
                    weights_file="random" if random else (local or spec.weights_file),
                    feature_dim=spec.feature_dim,
                    image_size=int(cfg.image_size) if cfg.image_size else spec.image_size,
                    mean=tuple(float(v) for v in cfg.mean) if cfg.mean else spec.mean,  # type: ignore[arg-type]
                    std=tuple(float(v) for v in cfg.std) if cfg.std else spec.std,  # type: ignore[arg-type]
                    resize=cfg.resize,
                    crop_pct=float(cfg.crop_pct) if cfg.crop_pct else spec.crop_pct,
                    interpolation=cfg.interpolation or spec.interpolation,
                    l2_normalized=spec.l2_normalized,
                    weights_stamp=_stamp(local) if local and not random else "",
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
    def views(self) -> tuple[View, ...]:
        """The distinct ways frames are resized (one per part at most), each done once per decoded frame."""
        return tuple(sorted({p.view for p in self.parts}))

    @property
    def resize(self) -> str:
        return self.parts[0].resize

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
            "resize": self.resize,
        }
        if not self.fused:
            record |= self.parts[0].preprocessing()
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
        resize = str(record.get("resize", "squash"))  # files from before it was recorded: the seed's squash
        per_sub = record.get("sampling_per_subcategory") or {}
        scales = record.get("scales") or [1.0]
        if record.get("parts"):
            files = str(record.get("weights_file", "")).split(FUSION_SEPARATOR)
            parts = tuple(
                _part(p, files[i] if len(files) == len(record["parts"]) else "", resize)
                for i, p in enumerate(record["parts"])
            )
        else:
            norm = normalization_of(record) or {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # the seed's statistics
            parts = (
                _part(
                    {**record, "normalization": norm, "feature_dim": record["feature_dim"]},
                    str(record.get("weights_file", "")),
                    resize,
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


def _part(record: Mapping[str, Any], weights_file: str, resize: str = "squash") -> BackbonePart:
    norm = record["normalization"]
    return BackbonePart(
        backbone=str(record["backbone"]),
        weights=str(record.get("weights", "")),
        weights_file=weights_file,
        feature_dim=int(record["feature_dim"]),
        image_size=int(record["image_size"]),
        mean=tuple(float(v) for v in norm["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in norm["std"]),  # type: ignore[arg-type]
        resize=resize,
        crop_pct=float(record.get("crop_pct", 0.875)),
        interpolation=str(record.get("interpolation", "bilinear")),
        l2_normalized=bool(record.get("l2_normalized", False)),
        weights_stamp=str(record.get("weights_stamp", "")),
    )


def _stamp(path: str) -> str:
    """``size:mtime_ns`` of a file (empty when it is not there: loading it says so)."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


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
    "RUNTIMES",
    "SAMPLING_STRATEGIES",
    "BackbonePart",
    "FeatureSettings",
    "file_record",
    "fingerprint",
    "kind_of",
    "normalization_of",
    "scale_length",
]
