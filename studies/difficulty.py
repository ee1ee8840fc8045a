"""Results by difficulty: each test video's generator difficulty, read back from ``manifest.csv``, binned.

The demo generator (``videogen``, a tool beside this package) gives every video a difficulty in
[0, 1] that scales its confusers, overlays and compression, and writes it to the dataset's
``manifest.csv``. ``studies.results`` reads it back here to show accuracy per difficulty bin: a
curve over difficulty instead of one number. Data without that column simply has no such table.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DIFFICULTY_BINS = tuple(i / 10 for i in range(11))  # 0.1 wide: the demo spans [0.6, 1]: four bins


def difficulty_of(video_ids: list[str], data_dir: Path) -> list[float] | None:
    """Each video's generator difficulty from ``DATA_DIR/manifest.csv`` (None: no such column)."""
    manifest = data_dir / "manifest.csv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="") as fh:
        rows = {Path(r["path"]).with_suffix("").as_posix(): r.get("difficulty") for r in csv.DictReader(fh)}
    values = [rows.get(v) for v in video_ids]
    return None if any(v in (None, "") for v in values) else [float(v) for v in values]


def difficulty_bin(d: float) -> str:
    """The ``DIFFICULTY_BINS`` interval holding ``d``, as ``"0.25-0.50"``."""
    b = min(int(np.digitize(d, DIFFICULTY_BINS[1:-1])), len(DIFFICULTY_BINS) - 2)
    return f"{DIFFICULTY_BINS[b]:.2f}-{DIFFICULTY_BINS[b + 1]:.2f}"


def accuracy_by_difficulty(labels: list[int], preds: list[int], difficulty: list[float]) -> dict[str, float]:
    """Accuracy per difficulty bin, bins in order."""
    bins = [difficulty_bin(d) for d in difficulty]
    correct = np.asarray(labels) == np.asarray(preds)
    return {b: float(correct[[x == b for x in bins]].mean()) for b in sorted(set(bins))}
