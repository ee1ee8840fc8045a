"""Video content classification from frozen-CNN frame features, arranged by job.

    research/config/        one config dataclass per stage (stages.py), read from YAML + command line (loading.py)
    research/data/          inputs (folders, seed .pt files), the feature-file dataset, splitting
    research/video/         PyAV decoding, frame sampling, the keyframe decode plan
    research/features/      settings, frames -> CNN -> scales, extraction, the HDF5 format
    research/backbones/     the backbone table, building, offline weights
    research/models/        temporal models behind one registry; the linear probes
    research/engine/        training, evaluation, TTA, members, checkpoints, metrics, cross-validation
    research/tuning/        Optuna studies
    research/tracking/      MLflow runs and the links into its UI
    research/commands/      the ``python -m`` command lines (the pipeline, cv, ablation, features, backbones)
    errors, files, distributed, launcher, interrupts, cli: the small core every stage shares

Modules that moved when the package was arranged by job are listed in ``MOVED``: importing (or
``python -m``) an old name fails at once with an ImportError that names the new one.
"""

from __future__ import annotations

import importlib.abc
import sys

MOVED = {
    "research.ablation": "research.commands.ablation",
    "research.backbone_specs": "research.backbones.table",
    "research.backbone_study": "studies.backbones",
    "research.checkpoints": "research.engine.checkpoints",
    "research.config_io": "research.config",
    "research.crossval": "research.engine.crossval",
    "research.cv": "research.commands.cv",
    "research.data.difficulty": "studies.difficulty",
    "research.decode_plan": "research.video.plan",
    "research.demo": "research.commands.pipeline",
    "research.evaluation": "research.engine.evaluation",
    "research.extraction": "research.features.extraction",
    "research.feature_parts": "research.features.parts",
    "research.feature_summary": "research.features.hdf5",
    "research.frames": "research.features.frames",
    "research.inputs": "research.data.inputs",
    "research.members": "research.engine.members",
    "research.metrics": "research.engine.metrics",
    "research.mlflow_links": "research.tracking.links",
    "research.predictions": "research.engine.predictions",
    "research.probe": "research.models.probe",
    "research.real_footage": "studies.real_footage",
    "research.results": "studies.results",
    "research.search": "research.tuning.search",
    "research.search_space": "research.tuning.space",
    "research.settings": "research.features.settings",
    "research.study_storage": "research.tuning.storage",
    "research.timestamps": "research.features.timestamps",
    "research.training": "research.engine.training",
    "research.tta": "research.engine.tta",
}


class _MovedModules(importlib.abc.MetaPathFinder):
    """Answers an old module name with an ImportError naming where it went (``python -m`` prints it)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in MOVED:
            new = MOVED[name]
            hint = f"python -m {new}" if new.startswith(("research.commands.", "studies.")) else f"import {new}"
            raise ImportError(f"{name} moved to {new} ({hint}); see docs/architecture.md")
        return None


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
