"""Per-video predictions: which videos ``evaluate.py`` and ``--predict`` classify, and ``predictions.csv``.

One row per video, the same columns for both (``columns``):

    video_id, path, true_class, predicted_class, correct, p_<class>..., familiarity, error[, decision]

``decision`` (``accept`` or ``review``, ``research.engine.accept``) is there only where an accept rule was
given: a file written without one keeps the columns it always had, and every reader takes both.

``evaluate`` writes the probabilities of the row its report ends on (ensemble+TTA, or the
last row there is: ensemble, member+TTA, member), with the true class from the feature
file; ``--predict`` writes its ensemble's (with TTA unless ``--no-tta``), leaves
``true_class`` and ``correct`` empty (a folder name is not a label), and gives every video
that could not be classified its ``error`` instead of a class.

``--predict`` takes files and folders: a file named on the command line is always tried,
whatever its name; a folder contributes every file under it, recursively, whose extension
is a video container's (``VIDEO_EXTENSIONS``), in sorted order, hidden files and folders left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from research.errors import UserError, ensure_dir
from research.files import shown_path, write_text_atomic

FILE_NAME = "predictions.csv"

# Containers FFmpeg (PyAV) demuxes that cameras, screen recorders, games and the web write. The data
# root scan (``research.data.inputs.scan_split``) takes every file of a category folder, since a data root
# is laid out for the purpose; an arbitrary folder given to --predict holds sidecars (manifest.csv,
# thumbnails, subtitles) that must not be listed as failed videos.
VIDEO_EXTENSIONS = frozenset(
    {
        *(".3g2", ".3gp", ".asf", ".avi", ".divx", ".dv", ".f4v", ".flv", ".h264", ".hevc", ".m2t", ".m2ts"),
        *(".m2v", ".m4v", ".mjpeg", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".mts", ".mxf", ".nut", ".ogv"),
        *(".qt", ".rm", ".rmvb", ".ts", ".vob", ".webm", ".wmv", ".y4m"),
    }
)


@dataclass(frozen=True)
class Video:
    """One input of ``--predict``: its identity in the predictions file and its file."""

    video_id: str  # the path under the folder given, without extension; a file given: its path as typed
    path: Path


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def videos_to_predict(paths: Iterable[str | Path]) -> list[Video]:
    """Files as given; folders expanded to their video files, recursively. A folder without any is an error."""
    videos: list[Video] = []
    for given in map(Path, paths):
        if not given.is_dir():
            videos.append(Video(given.as_posix(), given))  # a missing or unreadable file fails as a video
            continue
        found = sorted(p for p in given.rglob("*") if p.is_file() and is_video_file(p) and not _hidden(p, given))
        if not found:
            shown = " ".join(sorted(VIDEO_EXTENSIONS)[:8])
            raise UserError(f"no video files under {given} (looked for {shown} ... recursively)")
        for path in found:
            rel = path.relative_to(given).with_suffix("").as_posix()
            videos.append(Video((given / rel).as_posix(), path))
    return videos


def columns(classes: list[str], decision: bool = False) -> list[str]:
    # familiarity: how much the clip looks like the training collection (research.engine.familiarity);
    # decision: accept or review under an accept rule (research.engine.accept), last so older columns keep their place
    head = ["video_id", "path", "true_class", "predicted_class", "correct"]
    return [*head, *[f"p_{c}" for c in classes], "familiarity", "error", *(["decision"] if decision else [])]


def prediction_row(
    video_id: str,
    path: str,
    probs: np.ndarray | None,
    classes: list[str],
    label: int | None = None,
    error: str = "",
    familiarity: float | None = None,
    decision: str | None = None,
) -> dict[str, Any]:
    """One row; ``probs`` None (with an ``error``) for a video that could not be classified. ``decision``
    (``accept``/``review``) gives the row that column; a video without a prediction gets it empty."""
    row: dict[str, Any] = dict.fromkeys(columns(classes, decision is not None), "")
    row |= {"video_id": video_id, "path": path, "error": error}
    if familiarity is not None:
        row["familiarity"] = f"{float(familiarity):.4f}"
    if label is not None and 0 <= label < len(classes):
        row["true_class"] = classes[label]
    if probs is not None:
        predicted = int(np.argmax(probs))
        row["predicted_class"] = classes[predicted]
        row |= {f"p_{c}": f"{float(p):.6f}" for c, p in zip(classes, probs, strict=True)}
        if row["true_class"]:
            row["correct"] = int(predicted == label)
        if decision is not None:
            row["decision"] = decision
    return row


def feature_file_rows(
    features: Path,
    probs: np.ndarray,
    classes: list[str],
    familiarity: np.ndarray | None = None,
    decisions: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows for every video of a feature file, in its row order (seed files without ids get their row number);
    ``decisions``: one ``accept``/``review`` per video (``research.engine.accept.decide``), else no such column."""
    with h5py.File(features, "r") as f:
        labels = f["labels"][:].astype(np.int64)
        ids = [_text(v) for v in f["video_ids"][:]] if "video_ids" in f else [str(i) for i in range(len(labels))]
        rel = [_text(v) for v in f["paths"][:]] if "paths" in f else [""] * len(labels)
        root = _text(f.attrs.get("data_dir", ""))
    paths = [shown_path(Path(root) / p) if root and p else p for p in rel]
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} probability rows for {len(labels)} videos in {features}")
    scores = [None] * len(labels) if familiarity is None else familiarity
    verdicts = [None] * len(labels) if decisions is None else decisions
    return [
        prediction_row(vid, path, p, classes, int(y), familiarity=s, decision=d)
        for vid, path, p, y, s, d in zip(ids, paths, probs, labels, scores, verdicts, strict=True)
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def predictions_csv(rows: list[dict[str, Any]], classes: list[str]) -> str:
    """The file's text: the ``decision`` column where any row has one (a row without it leaves it empty)."""
    buffer = io.StringIO()
    fields = columns(classes, any("decision" in row for row in rows))
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_predictions(out_dir: Path, rows: list[dict[str, Any]], classes: list[str]) -> Path:
    """``out_dir/predictions.csv``, written under a temporary name and renamed."""
    ensure_dir(out_dir)
    path = Path(out_dir) / FILE_NAME
    write_text_atomic(path, predictions_csv(rows, classes))
    return path
