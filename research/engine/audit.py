"""A label audit: which labels the model confidently disagrees with, shown for a person to judge.

A lab meets the question on its own collection: a family whose clips barely show their class, a folder
filed under the wrong name. From out-of-fold probabilities (every clip scored by a model that never saw
its group), ``label_issues`` lists the likely label issues with a stated method (``METHOD``):

- **Which clips:** cleanlab 2.9's ``cleanlab.filter.find_label_issues`` with ``filter_by="prune_by_noise_rate"``
  (confident learning, Northcutt, Jiang and Chuang 2021): it estimates the joint of given and true labels
  from per-class thresholds (the mean probability of a class over the clips labelled with it), and for every
  off-diagonal (given i, true j) flags the clips of given label i whose margin ``p(j) - p(i)`` is largest,
  as many as that cell is estimated to hold. It needs no threshold of ours and flags few clips of a class
  the model finds hard as a whole.
- **The ranking:** self-confidence, the out-of-fold probability of the given label, lowest first (cleanlab's
  ``self_confidence``); ties by video id. It is the contact sheets' one order (``contact_sheet.sheet_order``),
  so the audit's sheet and an evaluation's errors sheet read the same way.

Each issue carries the clip id, path, group and family, the given label, the class the model prefers
(its argmax) and both probabilities. Counts by class, by group and by family say whether the issues are
scattered clips (possible typos) or one family (a question for the labelling rule: what should a clip like
this be called?). The audit never changes a label: a label changes because the collection's written rule
says so (benchmarks/real/README.md), never because a model disagrees.

``write_issue_sheet`` draws the issues as a contact sheet (``label_issues.png`` and ``.html``, the drawing
code of ``research.engine.contact_sheet``); ``audit_markdown`` gives a summary ready for RESULTS.md;
``audit_predictions`` runs the audit on a predictions file whose probabilities are out-of-fold.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from research.engine import contact_sheet
from research.engine.contact_sheet import SheetRow
from research.errors import UserError

PNG_NAME = "label_issues.png"
HTML_NAME = "label_issues.html"
FILTER_BY = "prune_by_noise_rate"  # cleanlab's default and its recommended filter: flags by estimated noise rates
METHOD = (
    "cleanlab 2.9 find_label_issues (confident learning, Northcutt et al. 2021), filter_by=prune_by_noise_rate, "
    "on out-of-fold probabilities; ranked by self-confidence (the probability of the given label, lowest first)"
)
TOP = 20  # issues listed one by one in the markdown summary; the sheet and the record hold every one


@dataclass
class LabelIssue:
    """One clip whose label the model confidently disagrees with."""

    rank: int  # 1 = the lowest probability of the given label
    video_id: str
    path: str
    group: str
    family: str
    given: str  # the label in the collection
    preferred: str  # the class the model puts first
    probability: float  # of the preferred class
    given_probability: float  # of the given label: the ranking's score (self-confidence)


@dataclass
class LabelAudit:
    """What ``label_issues`` found: the issues, ranked, and their counts by class, group and family."""

    method: str
    clips: int
    classes: list[str]
    issues: list[LabelIssue]
    by_class: list[dict[str, Any]] = field(default_factory=list)  # class, clips, issues, preferred {class: n}
    by_group: list[dict[str, Any]] = field(default_factory=list)  # groups with an issue, most issues first
    by_family: list[dict[str, Any]] = field(default_factory=list)  # families with an issue, most issues first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_issues(
    labels: np.ndarray,
    oof_probs: np.ndarray,
    groups: Sequence[str],
    classes: Sequence[str],
    video_ids: Sequence[str],
    paths: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    filter_by: str = FILTER_BY,
) -> LabelAudit:
    """The likely label issues of clips with ``labels`` [N] and out-of-fold ``oof_probs`` [N, C] (see the
    module), each with its ``video_ids``/``paths``/``groups``/``families`` entry (families default to the
    groups). Needs at least one clip of every class (cleanlab's estimate is per class)."""
    from cleanlab.filter import find_label_issues  # only here: the audit is the one user

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(oof_probs, dtype=np.float64)
    n = len(labels)
    paths = [""] * n if paths is None else list(paths)
    families = list(groups) if families is None else list(families)
    if probs.shape != (n, len(classes)) or not len(groups) == len(video_ids) == len(paths) == len(families) == n:
        raise ValueError(f"labels [N], oof_probs [N, {len(classes)}] and one id, path, group, family per clip")
    missing = sorted(set(range(len(classes))) - set(labels.tolist()))
    if missing:
        raise UserError(f"a label audit needs clips of every class: none of {[classes[k] for k in missing]}")
    probs = probs / probs.sum(axis=1, keepdims=True)  # cleanlab checks rows sum to 1; stored files round to 1e-6
    flagged = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)  # a mask; one process (2 shared cores)
    rows = [
        SheetRow(
            video_id=str(video_ids[i]),
            path=str(paths[i]),
            true_class=classes[labels[i]],
            predicted_class=classes[int(probs[i].argmax())],
            probability=float(probs[i].max()),
            true_probability=float(probs[i, labels[i]]),
            group=str(groups[i]),
        )
        for i in np.flatnonzero(flagged)
    ]
    family_of = {str(video_ids[i]): str(families[i]) for i in np.flatnonzero(flagged)}
    issues = [
        LabelIssue(
            rank=k + 1,
            video_id=r.video_id,
            path=r.path,
            group=r.group,
            family=family_of[r.video_id],
            given=r.true_class,
            preferred=r.predicted_class,
            probability=r.probability,
            given_probability=float(r.true_probability),
        )
        for k, r in enumerate(contact_sheet.sheet_order(rows))
    ]
    return LabelAudit(
        method=METHOD if filter_by == FILTER_BY else METHOD.replace(FILTER_BY, filter_by),
        clips=n,
        classes=list(classes),
        issues=issues,
        by_class=_by_class(issues, labels, classes),
        by_group=_counts(issues, [str(g) for g in groups], labels, classes, "group"),
        by_family=_counts(issues, [str(f) for f in families], labels, classes, "family"),
    )


def _by_class(issues: list[LabelIssue], labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for k, name in enumerate(classes):
        mine = [i for i in issues if i.given == name]
        out.append(
            {
                "class": name,
                "clips": int((labels == k).sum()),
                "issues": len(mine),
                "preferred": dict(sorted(Counter(i.preferred for i in mine).items())),
            }
        )
    return out


def _counts(
    issues: list[LabelIssue], keys: list[str], labels: np.ndarray, classes: Sequence[str], what: str
) -> list[dict[str, Any]]:
    """Per group (or family) with at least one issue: its clips, its classes, its issues and what the model
    prefers for them; most issues first, then by name."""
    clips = Counter(keys)
    given = {key: Counter() for key in clips}
    for key, label in zip(keys, labels.tolist(), strict=True):
        given[key][classes[label]] += 1
    flagged: dict[str, list[LabelIssue]] = {}
    for issue in issues:
        flagged.setdefault(getattr(issue, what), []).append(issue)
    rows = [
        {
            what: key,
            "clips": clips[key],
            "classes": dict(sorted(given[key].items())),
            "issues": len(mine),
            "preferred": dict(sorted(Counter(i.preferred for i in mine).items())),
        }
        for key, mine in flagged.items()
    ]
    return sorted(rows, key=lambda r: (-r["issues"], r[what]))


# ---------------------------------------------------------------- reading, drawing, writing


def audit_predictions(
    predictions: str | Path, groups: Mapping[str, str] | None = None, families: Mapping[str, str] | None = None
) -> LabelAudit:
    """The audit of a predictions file whose probabilities are out-of-fold (``p_<class>`` columns, every row with
    a true class). Groups and families come from the file's ``group``/``family`` columns, else from the maps
    (video id -> name), else the folder above the clip in its video id (benchmarks/real: the source)."""
    path = Path(predictions)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        records = [r for r in reader if r.get("predicted_class") and r.get("true_class")]
    classes = [c.removeprefix("p_") for c in fields if c.startswith("p_")]
    if not classes or "true_class" not in fields:
        raise UserError(f"{path} is not a predictions file with true classes and p_<class> columns")
    ids = [r["video_id"] for r in records]

    def name(record: dict[str, str], column: str, given: Mapping[str, str] | None) -> str:
        folder = record["video_id"].rpartition("/")[0].rpartition("/")[2]
        return record.get(column) or (given or {}).get(record["video_id"]) or folder or record["video_id"]

    return label_issues(
        np.array([classes.index(r["true_class"]) for r in records], dtype=np.int64),
        np.array([[float(r[f"p_{c}"]) for c in classes] for r in records], dtype=np.float64).reshape(-1, len(classes)),
        [name(r, "group", groups) for r in records],
        classes,
        ids,
        [r["path"] for r in records],
        [name(r, "family", families or groups) for r in records],
    )


def write_issue_sheet(
    audit: LabelAudit,
    out_dir: str | Path,
    frames: int = contact_sheet.FRAMES,
    max_rows: int = contact_sheet.MAX_ROWS,
    roots: Sequence[Path] | None = None,
) -> contact_sheet.ContactSheet:
    """``out_dir/label_issues.png`` and ``.html``: the issues in their rank order (the sheets' one order), each
    with its frames, given label, the model's class, both probabilities and its group. Relative paths are
    looked for under ``roots`` (default: the current folder)."""
    rows = [
        SheetRow(
            video_id=i.video_id,
            path=i.path,
            true_class=i.given,
            predicted_class=i.preferred,
            probability=i.probability,
            true_probability=i.given_probability,
            group=i.group if i.group == i.family else f"{i.group} ({i.family})",
        )
        for i in audit.issues
    ]
    if rows:
        title = f"{len(rows)} likely label issues of {audit.clips} clips (cleanlab), "
        title += "the given label's probability lowest first"
    else:
        title = f"no likely label issue among {audit.clips} clips (cleanlab)"
    return contact_sheet.write_sheet(
        rows,
        out_dir,
        title,
        clips=audit.clips,
        errors_only=False,
        frames=frames,
        max_rows=max_rows,
        roots=[Path.cwd()] if roots is None else list(roots),
        png_name=PNG_NAME,
        html_name=HTML_NAME,
        label_word="given",
    )


def audit_markdown(audit: LabelAudit, rule: Mapping[str, str] | None = None, top: int = TOP) -> list[str]:
    """Markdown lines for RESULTS.md: the method, the counts by class and by family, and the first ``top``
    issues. ``rule``: family -> what the collection's labelling rule says of it (a column of the family table)."""
    n = len(audit.issues)
    share = n / max(audit.clips, 1)
    families = {i.family for i in audit.issues}
    lines = [
        f"Method: {audit.method}.",
        "",
        f"{n} of {audit.clips} clips flagged ({share:.1%}), in {len({i.group for i in audit.issues})} groups of "
        f"{len(families)} families.",
        "",
        "| given class | clips | flagged | the model prefers |",
        "|---|---:|---:|---|",
    ]
    for row in audit.by_class:
        lines.append(f"| {row['class']} | {row['clips']} | {row['issues']} | {_prefers(row['preferred'])} |")
    if audit.by_family:
        with_rule = rule is not None
        lines += [
            "",
            "| family | its clips (by given class) | flagged | the model prefers |"
            + (" the labelling rule |" if with_rule else ""),
            "|---|---|---:|---|" + ("---|" if with_rule else ""),
        ]
        for row in audit.by_family:
            given = ", ".join(f"{c} {k}" for c, k in row["classes"].items())
            line = f"| {row['family']} | {given} | {row['issues']} | {_prefers(row['preferred'])} |"
            lines.append(line + (f" {(rule or {}).get(row['family'], '')} |" if with_rule else ""))
    if audit.issues:
        shown = audit.issues[:top]
        lines += [
            "",
            f"The first {len(shown)} of {n}, ranked by the probability of the given label:",
            "",
            "| # | clip | group | given | p(given) | model | p(model) |",
            "|---:|---|---|---|---:|---|---:|",
        ]
        for i in shown:
            lines.append(
                f"| {i.rank} | {i.video_id} | {i.group} | {i.given} | {i.given_probability:.3f} | {i.preferred} | "
                f"{i.probability:.3f} |"
            )
    return lines


def _prefers(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{c} {k}" for c, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


__all__ = [
    "FILTER_BY",
    "HTML_NAME",
    "METHOD",
    "PNG_NAME",
    "LabelAudit",
    "LabelIssue",
    "audit_markdown",
    "audit_predictions",
    "label_issues",
    "write_issue_sheet",
]
