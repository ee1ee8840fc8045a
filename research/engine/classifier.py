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

import contextlib
import glob
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
from research.errors import CheckpointError
from research.features.compat import feature_record
from research.features.hdf5 import content_fingerprint, read_attrs
from research.files import replaced_atomically
from research.models.probe import C_GRID, SUBSAMPLE_CLIPS, FitRecord, LogisticProbe, fit_split, pooled_mean, work

log = logging.getLogger(__name__)
FILE_NAME = "classifier.pt"
KINDS = ("ensemble", "probe")


POOL_BLOCK_BYTES = 2**28  # frame features read at once (256 MB: ~1000 clips of 64 frames x 1280 float32)
MEANS_FLOAT64_BYTES = 2**30  # above this the means are kept in float32 (10^6 clips x 1280: 5 GB, not 10)
# What the kept means were computed by: bumped whenever ``pooled_mean`` or the dtype rule changes its numbers, so
# that means kept by an older version are never read as this one's.
MEANS_VERSION = 1


def means_path(path: Path, digest: str, dtype: np.dtype) -> Path:
    """``NAME.means-DIGEST-DTYPE-vVERSION.npy`` beside the feature file ``NAME``: its masked frame means, named by
    everything that determines them (the file's content digest, their dtype, the arithmetic's version)."""
    path = Path(path)
    return path.with_name(f"{path.name}.means-{digest}-{np.dtype(dtype).name}-v{MEANS_VERSION}.npy")


def pooled_file(
    path: Path, block_bytes: int = POOL_BLOCK_BYTES, float64_bytes: int = MEANS_FLOAT64_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """``(x [N, D], labels [N])``: each video's masked mean of its frame features (``pooled_mean``).

    Computed once per file content: kept beside the file (``means_path``, keyed on its content digest,
    ``content_fingerprint``, which is recorded and cheap while the file is unchanged) and read back while the
    digest is the same. A file changed in place has a new digest: its means are computed again and the old
    ones removed. Nothing is kept when the file changed while its means were computed, or where its folder
    cannot be written (read-only, full): they are then computed on every call, as before.

    Computed in blocks of rows (``block_bytes`` of frame features at once), so memory holds the means, never
    the file: each video's mean is its own, the same number whatever the block. The means are float64 unless
    they alone would pass ``float64_bytes``; then float32, computed in float64."""
    path = Path(path)
    digest = content_fingerprint(path)
    with h5py.File(path, "r") as f:
        n, _, dim = f["features"].shape
        labels = f["labels"][()].astype(np.int64)
    dtype = np.dtype(np.float64 if n * dim * 8 <= float64_bytes else np.float32)
    kept = means_path(path, digest, dtype)
    with contextlib.suppress(OSError, ValueError):
        means = np.load(kept, allow_pickle=False)
        if means.shape == (n, dim) and means.dtype == dtype:
            return means, labels
    with h5py.File(path, "r") as f:
        features = f["features"]
        lengths = f["num_frames"][()]
        rows = max(1, block_bytes // max(1, features.shape[1] * dim * features.dtype.itemsize))
        means = np.empty((n, dim), dtype=dtype)
        for start in range(0, n, rows):
            means[start : start + rows] = pooled_mean(features[start : start + rows], lengths[start : start + rows])
    if content_fingerprint(path) == digest:  # unchanged while it was read (a change gives a new digest)
        _keep_means(path, kept, means)
    return means, labels


def _keep_means(path: Path, kept: Path, means: np.ndarray) -> None:
    """Write ``kept`` atomically and remove the means kept for other contents of ``path``; a folder that cannot
    be written keeps nothing (one line in the log)."""
    try:
        with replaced_atomically(kept) as tmp, open(tmp, "wb") as fh:
            np.save(fh, means, allow_pickle=False)
        for stale in kept.parent.glob(f"{glob.escape(Path(path).name)}.means-*.npy"):
            if stale != kept:
                stale.unlink(missing_ok=True)
    except OSError as err:
        log.info("pooled means of %s not kept (%s): computed again next time", path, err)


@dataclass
class SplitProbe:
    """A probe fitted on a train split, with ``C`` and the temperature chosen on its validation split, and the
    work that took: what the choice, the evaluation and the ready classifier re-use instead of fitting again."""

    probe: LogisticProbe
    temperature: float
    val_macro_f1: dict[float, float]  # per C of the grid: what chose it
    fits: tuple[FitRecord, ...] = ()  # every fit in order: the grid on the subsample, then the full fit (if any)
    train_clips: int = 0
    subsample_clips: int = 0  # the train clips the grid was fitted on (all of them up to ``max_clips``)
    val_clips: int = 0
    val_passes: int = 0  # passes over the validation means: one per C scored, one for the temperature

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return with_temperature(self.probe.predict_proba(x), self.temperature)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report or a log: C, the clips, and the fits and passes over the data."""
        return {
            "c": self.probe.c,
            "temperature": self.temperature,
            "val_macro_f1": {str(c): s for c, s in self.val_macro_f1.items()},
            "train_clips": self.train_clips,
            "subsample_clips": self.subsample_clips,
            "val_clips": self.val_clips,
            "val_passes": self.val_passes,
            **work(self.fits, self.train_clips),  # passes_over_rows: rows read / train clips
        }


def fit_split_probe(
    train_file: Path,
    val_file: Path,
    grid: tuple[float, ...] = C_GRID,
    max_clips: int = SUBSAMPLE_CLIPS,
    seed: int = 0,
    device: Any = "cpu",
) -> SplitProbe:
    """The probe of a train/val split, fitted once (``research.models.probe.fit_split``): ``C`` chosen on val
    with the grid fitted on a subsample of at most ``max_clips`` train clips (all of them below), then one fit
    on all of train at that ``C``, warm-started; then its temperature fitted on val. ``device``: where the fits
    run (CUDA: the torch objective). The result records every fit: callers re-use it instead of fitting again."""
    x, y = pooled_file(train_file)
    xv, yv = pooled_file(val_file)
    num_classes = int(max(y.max(), yv.max())) + 1
    fitted = fit_split(x, y, xv, yv, num_classes, grid, max_clips, seed, device)
    temperature = fit_temperature(fitted.probe.predict_proba(xv), yv)
    return SplitProbe(
        fitted.probe, temperature, fitted.scores, fitted.fits, len(y), fitted.subsample_clips, len(yv), len(grid) + 1
    )


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
