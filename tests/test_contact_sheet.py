"""The contact sheet of misclassified clips (``research.engine.contact_sheet``), its command, and the sheet an
evaluation writes and logs: on real clips of benchmarks/real and real feature files, never a mock."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from research.config import EvalConfig
from research.engine import contact_sheet, predictions
from research.engine.contact_sheet import NOT_FOUND, SheetRow, png_size, row_strip, write_contact_sheet
from research.engine.evaluation import evaluate
from research.engine.training import train

from .conftest import ROOT, run_entry_point
from .test_training import tiny_train_config

REAL = Path("benchmarks/real")  # relative to the checkout, as an evaluation run there stores it
CLASSES = ["animation", "flat_content", "gaming", "natural_content"]


class ClipTable(HTMLParser):
    """The rows of the sheet's table: each ``<tr>``'s class and video id, the text of its cells and of the
    verdict's values by class (``true``, ``predicted``, ``probability``, ...; ``wrong`` where marked)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.images: list[str] = []
        self._cell: list[str] = []  # the open td's class, then the open span's

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-video-id" in a:
            self.rows.append({"status": a["class"] or "", "id": a["data-video-id"] or ""})
        elif tag in ("td", "span") and self.rows:
            classes = (a.get("class") or "").split()
            self._cell.append(classes[0] if classes else "")
            self.rows[-1][self._cell[-1]] = ""
            if "wrong" in classes:
                self.rows[-1]["wrong"] = self._cell[-1]
        elif tag == "img":
            self.images.append(a["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "span") and self._cell:
            self._cell.pop()

    def handle_data(self, data: str) -> None:
        if self._cell and self._cell[-1]:
            self.rows[-1][self._cell[-1]] += data


def parse(page: Path) -> ClipTable:
    table = ClipTable()
    table.feed(page.read_text())
    return table


def real_clips(n: int) -> list[str]:
    """``n`` clips of benchmarks/real, one per source, classes in turn."""
    with (ROOT / REAL / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_class: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for row in rows:
        if row["source"] not in seen:
            seen.add(row["source"])
            by_class.setdefault(row["class"], []).append(row)
    picked = [by_class[c][i] for i in range(n) for c in CLASSES if i < len(by_class[c])][:n]
    return [(REAL / r["path"]).as_posix() for r in picked]


def write_rows(path: Path, clips: list[tuple[str, str, int, list[float]]]) -> Path:
    """A predictions file as evaluate writes it: (path, true class, predicted index from probs, probs)."""
    rows = []
    for video, true, _, probs in clips:
        vid = video.removeprefix(f"{REAL.as_posix()}/").removesuffix(".mp4")
        rows.append(predictions.prediction_row(vid, video, np.array(probs), CLASSES, CLASSES.index(true)))
    return predictions.write_predictions(path, rows, CLASSES)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str, int, list[float]]]]:
    """Six real clips, four misclassified at different confidences (one of them a video that is not on disk),
    two right."""
    clips = real_clips(5)
    true = [c.split("/")[4] for c in clips]  # benchmarks/real/videos/all/{class}/...
    wrong = [(CLASSES.index(t) + 1) % 4 for t in true]
    rows = [
        (clips[0], true[0], wrong[0], [0.1] * 4),
        (clips[1], true[1], wrong[1], [0.1] * 4),
        (clips[2], true[2], CLASSES.index(true[2]), [0.1] * 4),  # right
        (clips[3], true[3], wrong[3], [0.1] * 4),
        (clips[4], true[4], CLASSES.index(true[4]), [0.1] * 4),  # right
        ("benchmarks/real/videos/all/gaming/gone/gone_00.mp4", "gaming", 0, [0.1] * 4),  # not on disk
    ]
    for k, p in enumerate([0.55, 0.81, 0.7, 0.42, 0.9, 0.66]):  # the predicted class's probability
        probs = [(1 - p) / 3] * 4
        probs[rows[k][2]] = p
        rows[k] = (*rows[k][:3], probs)
    return write_rows(tmp_path_factory.mktemp("mixed") / "p", rows), rows


def test_the_sheet_holds_every_misclassified_clip_the_labels_probability_lowest_first(mixed, tmp_path: Path) -> None:
    predicted_csv, rows = mixed
    sheet = write_contact_sheet(predicted_csv, tmp_path, roots=[ROOT])
    errors = [r for r in rows if CLASSES[r[2]] != r[1]]
    expected = sorted(errors, key=lambda r: r[3][CLASSES.index(r[1])])
    table = parse(tmp_path / contact_sheet.HTML_NAME)
    assert len(table.rows) == len(errors) == 4 and sheet.clips == 6
    for got, (path, true, predicted, probs) in zip(table.rows, expected, strict=True):
        assert got["status"] == "error" and got["path"] == path and got["wrong"] == "predicted"
        assert (got["true"], got["predicted"]) == (true, CLASSES[predicted])
        assert float(got["probability"]) == pytest.approx(probs[predicted], abs=1e-3)
        assert float(got["true-probability"]) == pytest.approx(probs[CLASSES.index(true)], abs=1e-3)
    # every picture embedded, nothing fetched from elsewhere; no absolute path of the checkout
    assert len(table.images) == 4 and all(src.startswith("data:image/jpeg;base64,") for src in table.images)
    text = sheet.html.read_text()
    assert str(ROOT) not in text and "video not found" in text
    assert (sheet.not_found, sheet.not_decoded, sheet.shown, sheet.left_out) == (1, 0, 4, 0)
    # The PNG: four rows of four frames; the missing video's strip is its placeholder, the others are frames.
    image = Image.open(sheet.png)
    assert image.size == png_size(4, 4)
    pixels = np.asarray(image.convert("RGB"))
    width = 4 * (contact_sheet.THUMB_W + contact_sheet.GAP) - contact_sheet.GAP
    strips = [
        pixels[y : y + contact_sheet.THUMB_H, contact_sheet.LABEL_W : contact_sheet.LABEL_W + width]
        for y in (contact_sheet.HEADER_H + i * contact_sheet.ROW_H + contact_sheet.GAP for i in range(4))
    ]
    missing = [i for i, r in enumerate(expected) if "gone" in r[0]]
    assert missing == [1]  # p=0.66 comes second
    placeholder = np.asarray(row_strip(SheetRow("", "", "", "", 0.0, None, problem=NOT_FOUND), 4))
    assert np.array_equal(strips[1], placeholder)
    for i in (0, 2, 3):
        assert not np.array_equal(strips[i], placeholder)
        assert strips[i].std() > 10  # a picture, not a flat tile
    # The same input gives the same bytes (the demo's outputs are committed).
    again = write_contact_sheet(predicted_csv, tmp_path / "again", roots=[ROOT])
    assert again.png.read_bytes() == sheet.png.read_bytes()
    assert again.html.read_bytes() == sheet.html.read_bytes()


def test_rows_beyond_the_cap_are_listed_without_frames_and_a_sheet_without_errors_says_so(
    mixed, tmp_path: Path
) -> None:
    predicted_csv, _ = mixed
    capped = write_contact_sheet(predicted_csv, tmp_path / "capped", max_rows=2, roots=[ROOT])
    assert Image.open(capped.png).size == png_size(2, 4) and capped.left_out == 2
    table = parse(capped.html)
    assert len(table.rows) == 4 and len(table.images) == 2
    assert "2 clips beyond the first 2" in capped.html.read_text()
    every = write_contact_sheet(predicted_csv, tmp_path / "all", include_correct=True, roots=[ROOT])
    assert [r["status"] for r in parse(every.html).rows].count("correct") == 2 and len(every.rows) == 6
    clip = real_clips(1)[0]
    right = write_rows(tmp_path / "right", [(clip, "animation", 0, [0.7, 0.1, 0.1, 0.1])])
    empty = write_contact_sheet(right, tmp_path / "none", roots=[ROOT])
    assert empty.rows == [] and parse(empty.html).rows == []
    assert "no misclassified clips among 1" in empty.html.read_text()
    assert Image.open(empty.png).size == png_size(0, 4)


def run_sheet(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "research.commands.sheet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"},
    )


def test_the_command_writes_the_sheet_and_refuses_a_missing_file_in_one_line(mixed, tmp_path: Path) -> None:
    predicted_csv, _ = mixed
    # run from elsewhere: relative paths are found in a folder above the predictions file (a checkout's
    # outputs/NAME/predictions.csv), or under --root
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks").mkdir(parents=True)
    (checkout / "benchmarks" / "real").symlink_to(ROOT / REAL)
    shutil.copytree(predicted_csv.parent, checkout / "outputs" / "mixed")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_sheet(
        str(checkout / "outputs" / "mixed" / predictions.FILE_NAME), "--out", "out", "--frames", "2", cwd=elsewhere
    )
    assert done.returncode == 0, done.stderr
    assert "4 misclassified clips of 6 (4 pictured; 1 videos not found" in done.stdout
    assert Image.open(elsewhere / "out" / contact_sheet.PNG_NAME).size == png_size(4, 2)
    assert len(parse(elsewhere / "out" / contact_sheet.HTML_NAME).rows) == 4
    rooted = run_entry_point(["-m", "research.commands.sheet", predicted_csv, "--out", tmp_path / "r", "--root", ROOT])
    assert rooted.returncode == 0 and "1 videos not found" in rooted.stdout, rooted.stderr
    missing = run_sheet(str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: predictions file not found: {tmp_path / 'nope.csv'}"]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    other = run_sheet(str(tmp_path / "other.csv"), "--out", str(tmp_path / "x"))
    assert other.returncode == 2 and "is not a predictions file" in other.stderr and "Traceback" not in other.stderr


@pytest.fixture(scope="module")
def member(tiny_features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sheet_member")
    return Path(train(tiny_train_config(tiny_features, out, seed=1, epochs=2, log_mlflow=False))["checkpoint"])


def test_an_evaluation_writes_and_logs_the_sheet_of_its_errors(member: Path, tiny_features: Path, tmp_path: Path):
    import mlflow

    # labels shifted by one class: the model's answers are now mostly wrong, so the sheet has rows to check
    shifted = tmp_path / "test_features_multiscale.h5"
    shutil.copyfile(tiny_features / "test_features_multiscale.h5", shifted)
    with h5py.File(shifted, "r+") as f:
        f["labels"][...] = (f["labels"][:] + 1) % 4
    report = evaluate(EvalConfig(checkpoints=[str(member)], features=str(shifted), out_dir=str(tmp_path / "out")))
    with open(tmp_path / "out" / predictions.FILE_NAME) as fh:
        wrong = {r["video_id"]: r for r in csv.DictReader(fh) if r["correct"] == "0"}
    assert wrong, "no misclassified clip to show"
    table = parse(tmp_path / "out" / contact_sheet.HTML_NAME)
    assert {r["id"] for r in table.rows} == set(wrong)
    assert all(
        (r["true"], r["predicted"]) == (wrong[r["id"]]["true_class"], wrong[r["id"]]["predicted_class"])
        for r in table.rows
    )
    assert "video not found" not in (tmp_path / "out" / contact_sheet.HTML_NAME).read_text()  # tiny_videos are there
    assert Image.open(tmp_path / "out" / contact_sheet.PNG_NAME).size == png_size(len(wrong), contact_sheet.FRAMES)
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(report["mlflow_run_id"])}
    assert {contact_sheet.PNG_NAME, contact_sheet.HTML_NAME, "confusion_matrix.png"} <= artifacts
    # The same features, their videos gone from disk: the errors are still listed, each with its tile.
    with h5py.File(shifted, "r+") as f:
        f.attrs["data_dir"] = str(tmp_path / "moved")
    evaluate(
        EvalConfig(checkpoints=[str(member)], features=str(shifted), out_dir=str(tmp_path / "gone"), log_mlflow=False)
    )
    page = (tmp_path / "gone" / contact_sheet.HTML_NAME).read_text()
    assert {r["id"] for r in parse(tmp_path / "gone" / contact_sheet.HTML_NAME).rows} == set(wrong)
    assert f"{len(wrong)} videos not found, 0 not decodable" in page


def test_the_sheet_reads_files_with_and_without_the_newer_columns(tmp_path: Path) -> None:
    """A decision and a group are shown where the file has them; a file from before them (no familiarity, no
    decision) still makes its sheet."""
    clips = real_clips(2)
    rows = [
        predictions.prediction_row(
            c.removesuffix(".mp4"), c, np.array([0.1, 0.7, 0.1, 0.1]), CLASSES, 0, decision=d, familiarity=0.5
        )
        for c, d in zip(clips, ("accept", "review"), strict=True)
    ]
    newer = predictions.write_predictions(tmp_path / "newer", rows, CLASSES)
    assert newer.read_text().splitlines()[0].endswith(",error,decision")
    sheet = write_contact_sheet(newer, tmp_path / "newer_sheet", max_rows=0, roots=[ROOT])
    table = parse(sheet.html)
    assert sorted(r["decision"] for r in table.rows) == ["accept", "review"]
    assert {r["familiarity"] for r in table.rows} == {"0.5000"}
    older = tmp_path / "older.csv"
    head = ["video_id", "path", "true_class", "predicted_class", "correct", *[f"p_{c}" for c in CLASSES], "error"]
    with older.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(head)
        writer.writerow(["v1", clips[0], "animation", "gaming", 0, 0.2, 0.1, 0.6, 0.1, ""])
    old = write_contact_sheet(older, tmp_path / "older_sheet", max_rows=0, roots=[ROOT])
    assert [(r.video_id, r.decision, r.familiarity, r.group) for r in old.rows] == [("v1", "", "", "")]
    assert "decision" not in old.html.read_text()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEW = 1200  # the width a researcher opens the page at (issue 51)
LAYOUT = """<script>
const rows = [...document.querySelectorAll('#clips tbody tr')].map(tr => Object.fromEntries([...tr.children].map(
  td => { const b = td.getBoundingClientRect(); return [td.className.split(' ')[0], [b.left, b.right, b.top]]; })));
document.body.setAttribute('data-layout', JSON.stringify({rows, width: document.documentElement.scrollWidth}));
</script></body>"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs headless Chromium (apt-get install chromium)")
def test_at_1200_pixels_the_verdict_stands_beside_the_frames(tmp_path: Path) -> None:
    """The page in headless Chromium at 1,200 px: per row, the verdict starts where the frames end, on the same
    line, and the verdict, the video id and the path all end within the window (nothing to scroll to)."""
    clips = real_clips(4)
    wrong = [(CLASSES.index(c.split("/")[4]) + 1) % 4 for c in clips]  # benchmarks/real/videos/all/{class}/...
    rows = [
        (c, c.split("/")[4], k, [0.7 if j == k else 0.1 for j in range(4)]) for c, k in zip(clips, wrong, strict=True)
    ]
    sheet = write_contact_sheet(write_rows(tmp_path / "p", rows), tmp_path / "sheet", roots=[ROOT])
    probe = tmp_path / "probe.html"
    probe.write_text(sheet.html.read_text().replace("</body>", LAYOUT))
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={VIEW},900"]
    dom = subprocess.run([*args, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, dom[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert len(layout["rows"]) == 4 and layout["width"] <= VIEW
    for row in layout["rows"]:
        assert abs(row["verdict"][0] - row["frames"][1]) < 1 and row["verdict"][2] == row["frames"][2]
        assert max(row[c][1] for c in ("verdict", "video-id", "path")) <= VIEW
