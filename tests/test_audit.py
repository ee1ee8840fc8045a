"""The label audit (``research.engine.audit``) on real out-of-fold probabilities of benchmarks/real: cleanlab's
issues in the sheets' one order, the counts, the summary for RESULTS.md, the sheet and the command."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cleanlab.filter import find_label_issues

from research.engine import audit, contact_sheet
from research.errors import UserError

from .conftest import ROOT, run_entry_point
from .test_contact_sheet import parse

DATA = Path(__file__).parent / "data"
FAMILIES = DATA / "real_oof_family.csv"  # held out by family: see tests/data/real_oof.py
CLASSES = ["animation", "flat_content", "gaming", "natural_content"]


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def found() -> audit.LabelAudit:
    return audit.audit_predictions(FAMILIES)


def test_the_issues_are_cleanlabs_ranked_by_the_given_labels_probability(found: audit.LabelAudit) -> None:
    rows = read(FAMILIES)
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([CLASSES.index(r["true_class"]) for r in rows])
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    assert [i.video_id for i in found.issues] == [rows[k]["video_id"] for k in ranked]  # no ties on real data
    assert [i.rank for i in found.issues] == list(range(1, len(ranked) + 1)) and len(ranked) == 96
    by_id = {r["video_id"]: (k, r) for k, r in enumerate(rows)}
    for issue in found.issues:
        k, row = by_id[issue.video_id]
        assert (issue.given, issue.group, issue.family, issue.path) == (
            row["true_class"],
            row["group"],
            row["family"],
            row["path"],
        )
        assert issue.preferred == CLASSES[int(probs[k].argmax())]
        assert issue.given_probability == pytest.approx(probs[k, labels[k]])
        assert issue.probability == pytest.approx(probs[k].max())
    # counts: by class they add up; the families the issue names come first
    assert [c["issues"] for c in found.by_class] == [11, 32, 48, 5]
    assert sum(f["issues"] for f in found.by_family) == sum(g["issues"] for g in found.by_group) == 96
    first = found.by_family[:2]
    assert [(f["family"], f["clips"], f["issues"], f["preferred"]) for f in first] == [
        ("gnome-games", 34, 18, {"animation": 2, "flat_content": 16}),
        ("terminal-games", 24, 12, {"flat_content": 12}),
    ]
    every = audit.label_issues(labels, probs, [r["group"] for r in rows], CLASSES, [r["video_id"] for r in rows])
    assert [i.video_id for i in every.issues] == [i.video_id for i in found.issues]
    assert every.by_family == [f | {"family": f.pop("group")} for f in every.by_group]  # families default to groups
    with pytest.raises(UserError, match="clips of every class"):
        audit.label_issues(labels[labels < 3], probs[labels < 3], ["g"] * (labels < 3).sum(), CLASSES, ["v"] * 349)


def test_the_summary_for_results_md(found: audit.LabelAudit) -> None:
    lines = audit.audit_markdown(found, rule={"terminal-games": "gaming: a game being played is gaming"}, top=3)
    text = "\n".join(lines)
    assert lines[0].startswith("Method: cleanlab 2.9 find_label_issues") and "self-confidence" in lines[0]
    assert "96 of 381 clips flagged (25.2%)" in text
    assert "| gaming | 109 | 48 | flat_content 37, animation 11 |" in lines
    assert "| terminal-games | gaming 24 | 12 | flat_content 12 | gaming: a game being played is gaming |" in lines
    assert "| xterm | flat_content 31 | 7 | gaming 7 |  |" in lines  # no rule given for it: an empty cell
    first = found.issues[0]
    assert lines[-3].startswith(f"| 1 | {first.video_id} | {first.group} | gaming | 0.013 | flat_content |")
    assert len([line for line in lines if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()]) == 3


def test_the_issue_sheet_and_the_errors_sheet_follow_one_order(found: audit.LabelAudit, tmp_path: Path) -> None:
    issues = audit.write_issue_sheet(found, tmp_path / "audit", max_rows=3, roots=[ROOT])
    assert (issues.png.name, issues.html.name) == (audit.PNG_NAME, audit.HTML_NAME)
    assert (issues.shown, issues.not_found, issues.not_decoded) == (3, 0, 0)
    table = parse(issues.html)
    assert [r["id"] for r in table.rows] == [i.video_id for i in found.issues]
    assert [r["group"] for r in table.rows[:2]] == ["gnome_sudoku (gnome-games)"] * 2
    assert "given: " in issues.html.read_text() and len(table.images) == 3
    # the errors sheet of the same file: its clips in the same order as the audit's where both list them
    errors = contact_sheet.write_contact_sheet(FAMILIES, tmp_path / "errors", max_rows=0, roots=[ROOT])
    error_ids = [r.video_id for r in errors.rows]
    flagged = {i.video_id for i in found.issues}
    common = [v for v in error_ids if v in flagged]
    assert common == [i.video_id for i in found.issues if i.video_id in set(error_ids)] and len(common) > 50
    label_p = [r.true_probability for r in errors.rows]
    assert label_p == sorted(label_p)


def test_the_command_audits_an_out_of_fold_predictions_file(tmp_path: Path) -> None:
    done = run_entry_point(
        ["-m", "research.commands.sheet", FAMILIES, "--out", tmp_path / "out", "--label-issues", "--rows", "1"]
    )
    assert done.returncode == 0, done.stderr
    assert "96 likely label issues of 381 clips" in done.stdout and "terminal-games" in done.stdout
    assert len(parse(tmp_path / "out" / audit.HTML_NAME).rows) == 96
    # a file without group and family columns: the folder above each clip (benchmarks/real: its source)
    bare = tmp_path / "bare.csv"
    rows = read(FAMILIES)
    with bare.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, [c for c in rows[0] if c not in ("group", "family")], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plain = audit.audit_predictions(bare)
    assert [i.video_id for i in plain.issues] == [i.video_id for i in audit.audit_predictions(FAMILIES).issues]
    assert plain.issues[0].group == plain.issues[0].family == "gnome_sudoku"
