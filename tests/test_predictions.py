"""research.engine.predictions: which files --predict takes from a folder, and predictions.csv's rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from research.engine import predictions
from research.errors import UserError
from research.features.writing import write_features

CLASSES = ["animation", "flat_content", "gaming", "natural_content"]


def test_folders_give_their_video_files_recursively_and_files_are_always_tried(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    for name in ("a/b.mp4", "a/deeper/c.MKV", "z.webm", "a/.cache/hidden.mp4", ".d.mp4", "manifest.csv", "a/t.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    named = tmp_path / "odd_name.bin"  # named on the command line: tried whatever its extension
    named.write_bytes(b"x")
    videos = predictions.videos_to_predict([str(root), str(named), str(tmp_path / "missing.mp4")])
    assert [v.path for v in videos] == [
        root / "a/b.mp4",
        root / "a/deeper/c.MKV",
        root / "z.webm",
        named,
        tmp_path / "missing.mp4",  # fails as a video (listed), not as the command
    ]
    assert videos[1].video_id == f"{root.as_posix()}/a/deeper/c"
    assert videos[3].video_id == named.as_posix()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no video files under .*empty"):
        predictions.videos_to_predict([tmp_path / "empty"])


def test_rows_columns_and_csv() -> None:
    probs = np.array([0.1, 0.6, 0.2, 0.1])
    assert predictions.columns(CLASSES) == [
        "video_id",
        "path",
        "true_class",
        "predicted_class",
        "correct",
        *[f"p_{c}" for c in CLASSES],
        "familiarity",
        "error",
    ]
    right = predictions.prediction_row("v1", "/d/v1.mp4", probs, CLASSES, label=1, familiarity=0.91234)
    wrong = predictions.prediction_row("v2", "/d/v2.mp4", probs, CLASSES, label=3)
    unknown = predictions.prediction_row("v3", "/d/v3.mp4", probs, CLASSES)
    failed = predictions.prediction_row("v4", "/d/v4.mp4", None, CLASSES, error="cannot open")
    text = predictions.predictions_csv([right, wrong, unknown, failed], CLASSES)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["predicted_class"] for r in rows] == ["flat_content"] * 3 + [""]
    assert [r["true_class"] for r in rows] == ["flat_content", "natural_content", "", ""]
    assert [r["correct"] for r in rows] == ["1", "0", "", ""]
    assert float(rows[0]["p_flat_content"]) == pytest.approx(0.6) and rows[3]["p_gaming"] == ""
    assert rows[3]["error"] == "cannot open" and rows[0]["error"] == ""
    assert rows[0]["familiarity"] == "0.9123" and rows[1]["familiarity"] == ""  # unknown where not measured


def test_feature_file_rows_name_every_video_in_row_order(tmp_path: Path) -> None:
    path = tmp_path / "test_features.h5"
    attrs = {"category_mapping": json.dumps(dict(zip(CLASSES, range(4), strict=True))), "data_dir": "/data/demo"}
    ids = ["test/gaming/a/v1", "test/animation/b/v2"]
    write_features(path, [np.ones((3, 4), np.float32)] * 2, [2, 0], attrs, video_ids=ids)
    probs = np.array([[0.1, 0.1, 0.7, 0.1], [0.1, 0.8, 0.05, 0.05]])
    rows = predictions.feature_file_rows(path, probs, CLASSES)
    assert [r["video_id"] for r in rows] == ids
    assert [(r["true_class"], r["predicted_class"], r["correct"]) for r in rows] == [
        ("gaming", "gaming", 1),
        ("animation", "flat_content", 0),
    ]
    assert rows[0]["path"].startswith("/data/demo/")
    with pytest.raises(ValueError, match="1 probability rows for 2 videos"):
        predictions.feature_file_rows(path, probs[:1], CLASSES)
    out = predictions.write_predictions(tmp_path / "out", rows, CLASSES)
    assert out.name == "predictions.csv" and len(out.read_text().splitlines()) == 3


def test_a_decision_column_where_an_accept_rule_is_given(tmp_path: Path) -> None:
    assert predictions.columns(CLASSES, decision=True)[-3:] == ["familiarity", "error", "decision"]
    probs = np.array([0.1, 0.6, 0.2, 0.1])
    accepted = predictions.prediction_row("v1", "/d/v1.mp4", probs, CLASSES, decision="accept")
    failed = predictions.prediction_row("v2", "/d/v2.mp4", None, CLASSES, error="cannot open", decision="review")
    rows = list(csv.DictReader(io.StringIO(predictions.predictions_csv([accepted, failed], CLASSES))))
    assert [r["decision"] for r in rows] == ["accept", ""]  # no prediction, no decision
    # without a rule the file keeps the columns it always had
    plain = predictions.predictions_csv([predictions.prediction_row("v1", "/d/v1.mp4", probs, CLASSES)], CLASSES)
    assert plain.splitlines()[0].split(",") == predictions.columns(CLASSES) and "decision" not in plain
    path = tmp_path / "test_features.h5"
    attrs = {"category_mapping": json.dumps(dict(zip(CLASSES, range(4), strict=True))), "data_dir": "/data/demo"}
    write_features(path, [np.ones((3, 4), np.float32)] * 2, [2, 0], attrs, video_ids=["a", "b"])
    both = np.array([[0.1, 0.1, 0.7, 0.1], [0.3, 0.3, 0.2, 0.2]])
    written = predictions.feature_file_rows(path, both, CLASSES, decisions=["accept", "review"])
    assert [r["decision"] for r in written] == ["accept", "review"]
    assert "decision" not in predictions.feature_file_rows(path, both, CLASSES)[0]
