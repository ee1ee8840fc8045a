"""The ready classifier: what ``--predict`` applies to new videos, how it is fitted, written and read.

One file, ``classifier.pt`` (plain data and tensors: ``torch.load(weights_only=True)`` reads it), of
one of two kinds:

- ``ensemble``: the member checkpoints (file names, beside the file), the TTA views, the members'
  temperature (cross-fitted by the pipeline; none: each member's own, in its checkpoint) and the
  temperature of their average;
- ``probe``: the logistic-regression probe (``research.models.probe``) on the masked mean of the
  single-scale frame features, fitted on the train split with its L2 strength ``C`` chosen on the
  validation split, and its temperature; the feature settings it needs are recorded.

The pipeline writes the kind that transfers better to unseen families (``research.engine.choice``);
``python evaluate.py --classifier runs/demo/classifier.pt --predict my_videos/`` applies it.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from research.engine.calibration import fit_temperature, with_temperature
from research.engine.checkpoints import save_checkpoint
from research.engine.metrics import classification_metrics
from research.errors import CheckpointError
from research.features.compat import feature_record
from research.features.hdf5 import read_attrs
from research.models.probe import C_GRID, LogisticProbe, fit_logistic, pooled_mean

log = logging.getLogger(__name__)
FILE_NAME = "classifier.pt"
KINDS = ("ensemble", "probe")


POOL_BLOCK_BYTES = 2**28  # frame features read at once (256 MB: ~1000 clips of 64 frames x 1280 float32)
MEANS_FLOAT64_BYTES = 2**30  # above this the means are kept in float32 (10^6 clips x 1280: 5 GB, not 10)


def pooled_file(
    path: Path, block_bytes: int = POOL_BLOCK_BYTES, float64_bytes: int = MEANS_FLOAT64_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """``(x [N, D], labels [N])``: each video's masked mean of its frame features (``pooled_mean``).

    Read in blocks of rows (``block_bytes`` of frame features at once), so memory holds the means, never
    the file: each video's mean is its own, the same number whatever the block. The means are float64
    (as ever) unless they alone would pass ``float64_bytes``; then float32, computed in float64."""
    with h5py.File(path, "r") as f:
        features = f["features"]
        n, length, dim = features.shape
        lengths, labels = f["num_frames"][()], f["labels"][()].astype(np.int64)
        rows = max(1, block_bytes // max(1, length * dim * features.dtype.itemsize))
        means = np.empty((n, dim), dtype=np.float64 if n * dim * 8 <= float64_bytes else np.float32)
        for start in range(0, n, rows):
            means[start : start + rows] = pooled_mean(features[start : start + rows], lengths[start : start + rows])
    return means, labels


@dataclass
class SplitProbe:
    """A probe fitted on a train split, with ``C`` and the temperature chosen on its validation split."""

    probe: LogisticProbe
    temperature: float
    val_macro_f1: dict[float, float]  # per C of the grid: what chose it

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return with_temperature(self.probe.predict_proba(x), self.temperature)


def fit_split_probe(train_file: Path, val_file: Path, grid: tuple[float, ...] = C_GRID) -> SplitProbe:
    """The probe of a train/val split: every ``C`` fitted on train and scored on val (macro-F1; ties go to
    the smaller ``C``, the stronger regularisation), then the winner's temperature fitted on val."""
    x, y = pooled_file(train_file)
    xv, yv = pooled_file(val_file)
    num_classes = int(max(y.max(), yv.max())) + 1
    scores: dict[float, float] = {}
    best: LogisticProbe | None = None
    for c in grid:
        probe = fit_logistic(x, y, num_classes, c)
        scores[c] = classification_metrics(yv, probe.predict(xv), num_classes)["macro_f1"]
        if best is None or scores[c] > scores[best.c] + 1e-12:
            best = probe
    assert best is not None
    return SplitProbe(best, fit_temperature(best.predict_proba(xv), yv), scores)


# ------------------------------------------------------------------- the file


def ensemble_file(
    members: list[Path],
    tta_modes: list[str],
    temperature: float,
    choice: dict[str, Any],
    member_temperature: float | None = None,
    folder: Path | None = None,
) -> dict[str, Any]:
    """An ensemble classifier: its members must lie in (or below) ``folder``, the folder the file is written to
    (default: the first member's). ``member_temperature`` replaces each member's own (1: the members' raw
    probabilities); ``temperature`` then scales their average."""
    folder = Path(folder or Path(members[0]).parent).resolve()
    return {
        "kind": "ensemble",
        "members": [Path(p).resolve().relative_to(folder).as_posix() for p in members],
        "member_digests": [file_digest(p) for p in members],
        "tta_modes": list(tta_modes),
        "member_temperature": member_temperature,
        "temperature": float(temperature),
        "choice": choice,
    }


def probe_file(
    fitted: SplitProbe, train_file: Path, choice: dict[str, Any], temperature: float | None = None
) -> dict[str, Any]:
    """A probe classifier; ``temperature`` (e.g. cross-fitted) replaces the one fitted on the validation split."""
    probe = fitted.probe
    attrs = read_attrs(train_file)
    return {
        "kind": "probe",
        "probe": {
            name: torch.from_numpy(np.asarray(getattr(probe, name), dtype=np.float64))
            for name in ("mean", "scale", "weight", "bias")
        }
        | {"c": float(probe.c)},
        "temperature": float(fitted.temperature if temperature is None else temperature),
        "features": feature_record(attrs),
        "choice": choice,
    }


def file_digest(path: Path) -> str:
    """A member file's digest: the classifier names its members by it, a job's result its checkpoint."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def write_classifier(record: dict[str, Any], path: Path) -> Path:
    """Write ``record`` unless the file already holds exactly it (a second pipeline run leaves it untouched)."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    if Path(path).is_file() and Path(path).read_bytes() == buffer.getvalue():
        log.info("ready classifier: %s is up to date", path)
        return path
    save_checkpoint(record, path)
    return path


def read_classifier(path: str | Path) -> dict[str, Any]:
    """A classifier file, checked: an ensemble's members must be the very files it was made with."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"classifier not found: {path} (the pipeline writes {FILE_NAME} beside its members)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is one line
        raise CheckpointError(f"{path} cannot be read as a classifier: {type(err).__name__}: {err}") from None
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        raise CheckpointError(f"{path} is not a classifier file (kind {KINDS}); the pipeline writes {FILE_NAME}")
    if record["kind"] == "ensemble":
        for name, digest in zip(record["members"], record["member_digests"], strict=True):
            member = path.parent / name
            if not member.is_file() or file_digest(member) != digest:
                raise CheckpointError(
                    f"{path} was made with another {member} (missing or re-trained since): run the pipeline again"
                )
    return record


def member_paths(record: dict[str, Any], path: Path) -> list[Path]:
    return [Path(path).parent / name for name in record["members"]]


def record_probe(record: dict[str, Any]) -> LogisticProbe:
    p = record["probe"]
    return LogisticProbe(*(p[k].numpy() for k in ("mean", "scale", "weight", "bias")), c=float(p["c"]))
