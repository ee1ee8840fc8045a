"""What a small collection's run reports, read off its out-of-fold predictions: one CV, every use.

Under ``cv.headline_cv_below`` clips the pipeline splits nothing into train, val and test: its one
cross-validation (``research.engine.oof``) gives every clip a prediction by models that never saw its
family, and every figure a lab reads comes from those predictions:

- the rows and the headline (``research.engine.headline``), with both intervals;
- the choice of the classifier a lab gets, the probe or the ensemble (``research.engine.choice``);
- the familiarity scorers' bake-off on the three kinds of held-out clip, whose winner the classifier ships
  (``research.engine.familiarity``);
- the temperatures it ships, cross-fitted on every kind of held-out clip (``research.engine.temperatures``),
  with each kind's ECE and coverage;
- the accept rule (``research.engine.accept``): the threshold on the calibrated top probability whose
  accepted held-out sources reach ``evaluate.accept_accuracy`` with ``evaluate.accept_confidence``, its
  coverage on every kind, and the risk-coverage picture;
- the label audit (``research.engine.audit``): the clips whose given label the held-out predictions
  confidently disagree with, ranked, as a contact sheet;
- ``predictions.csv`` (every clip, calibrated as shipped and cross-fitted, with its familiarity and its
  accept/review decision), the reliability diagram, the confusion matrix and the contact sheet of the errors.

``report.json`` names the CV (its folds, seeds, groups and held-out kinds) that all of them cite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from research.config import CVConfig, EvalConfig
from research.data.folds import KIND_WHAT
from research.engine import accept, audit, contact_sheet, predictions
from research.engine.calibration import plot_reliability
from research.engine.choice import choose_classifier
from research.engine.familiarity import (
    DEFAULT_METHOD,
    DEFAULT_PARAMS,
    FAMILIES,
    SEEN,
    SOURCES,
    BakeoffFold,
    Familiarity,
    ImageNetHead,
    familiarity_bakeoff,
    imagenet_head,
    shared_reference_size,
)
from research.engine.headline import headline_rows
from research.engine.oof import PROBE, OutOfFold
from research.engine.report import RELIABILITY, report_run, write_report
from research.engine.temperatures import calibrate_kinds
from research.errors import ensure_dir
from research.features.hdf5 import read_attrs
from research.files import shown_path

RISK_COVERAGE = "risk_coverage.png"  # the accept rule's picture beside report.json


@dataclass
class Shipped:
    """What the ready classifier is made of: the chosen candidate, its temperatures (one, or one per
    familiarity band with the band edges), the familiarity model its bands are read with, its accept rule."""

    kind: str  # "ensemble" or "probe"
    temperatures: list[float]
    edges: list[float]
    familiarity: Familiarity
    accept: dict[str, Any]


BAKEOFF_KINDS = {"clip": SEEN, "source": SOURCES, "family": FAMILIES}  # the out-of-fold kinds, by the bake-off's names


def familiarity_bakeoff_of(oof: OutOfFold, pool: Path) -> tuple[dict[str, Any], Familiarity]:
    """The familiarity scorers' bake-off on the CV's held-out kinds (each fold's scorers fitted on its own
    training clips, at one reference size), and the winner fitted on every clip at that same size: the scorer
    the ready classifier ships, so its scores mean what the bands were fitted on."""
    attrs = read_attrs(pool)
    head = imagenet_head(str(attrs.get("backbone", "")), str(attrs.get("weights", "") or ""))
    size = shared_reference_size([len(fold.train) for fold in oof.folds] + [len(oof.labels)])
    folds = []
    for k, fold in enumerate(oof.folds):
        queries, groups = {}, {}
        for kind, held in oof.kinds.items():
            mine = held.rows[held.fold == k]
            if len(mine):
                queries[BAKEOFF_KINDS[kind]] = oof.pooled[mine]
                groups[BAKEOFF_KINDS[kind]] = np.asarray([oof.groups[i] for i in mine])
        folds.append(BakeoffFold(oof.pooled[fold.train], oof.labels[fold.train], queries, groups))
    result = familiarity_bakeoff(folds, head=head, size=size)
    best = next((c for c in result["candidates"] if c["name"] == result["winner"]), None)
    method, params = (best["method"], best["params"]) if best else (DEFAULT_METHOD, DEFAULT_PARAMS)
    result["shipped"] = {"method": method, "params": params, "reference_size": size}
    shipped = Familiarity.fit(oof.pooled, oof.labels, method, params, head, size)
    return result, shipped


def familiarity_of_kinds(oof: OutOfFold, like: Familiarity, head: ImageNetHead | None) -> dict[str, np.ndarray]:
    """Each held-out clip's familiarity, by the shipped scorer's method at its reference size, against its own
    fold's training clips (the reference the fold's models trained on), per kind."""
    out = {kind: np.zeros(len(held)) for kind, held in oof.kinds.items()}
    for k, fold in enumerate(oof.folds):
        x, y = oof.pooled[fold.train], oof.labels[fold.train]
        scorer = Familiarity.fit(x, y, like.method, like.params, head, like.reference_size, like.seed)
        for kind, held in oof.kinds.items():
            mine = held.fold == k
            out[kind][mine] = scorer.score(oof.pooled[held.rows[mine]])
    return out


def cv_report(
    oof: OutOfFold, eval_cfg: EvalConfig, cv: CVConfig, pool_single: Path, model: str, ensemble: str
) -> tuple[dict[str, Any], Shipped]:
    """Every use of ``oof``; writes ``report.json``, ``predictions.csv`` and the pictures into
    ``eval_cfg.out_dir`` (and logs them as one MLflow run, ``evaluate-<ensemble>``); returns the report (with
    the run ids of the run and of the fold members, which the files leave out) and what to ship."""
    rows = headline_rows(oof, cv.bootstrap)
    labels, groups = oof.labels_of("family"), oof.groups_of("family")
    ensemble_row = "ensemble+tta" if "ensemble+tta" in rows else "ensemble"
    what = {
        "ensemble": f"the fold ensembles ({len(oof.seeds)} {model} member(s) each) with TTA",
        "probe": f"logistic regression on the mean single-scale frame feature, C={oof.probe.c:g}",
    }
    choice = choose_classifier(
        labels,
        groups,
        {"ensemble": oof.candidate(ensemble_row, "family"), "probe": oof.candidate(PROBE, "family")},
        len(oof.classes),
        cv.bootstrap,
        "every clip, held-out families: each scored by fold models that never saw its family (the CV)",
        what,
    )
    final_row = PROBE if choice["chosen"] == "probe" else ensemble_row
    bakeoff, shipped_familiarity = familiarity_bakeoff_of(oof, pool_single)
    attrs = read_attrs(pool_single)
    head = imagenet_head(str(attrs.get("backbone", "")), str(attrs.get("weights", "") or ""))
    familiarity = familiarity_of_kinds(oof, shipped_familiarity, head)
    kinds = list(oof.kinds)
    held_out, calibrated = calibrate_kinds(
        {k: oof.candidate(final_row, k) for k in kinds},
        {k: oof.labels_of(k) for k in kinds},
        familiarity,
        {k: oof.kinds[k].fold for k in kinds},
        cv.familiarity_bands,
    )
    held_out["score"] = f"{shipped_familiarity.what} (the bake-off's winner, {bakeoff['shipped']})"
    head = rows[final_row]
    headline = {
        "what": oof.record["what"],
        "why": f"{len(oof.labels)} clips, under cv.headline_cv_below {cv.headline_cv_below}",
        "clips": len(oof.labels),
        "groups": oof.record["groups"],
        "row": final_row,
        "chosen_of_two": f"the {choice['chosen']}, chosen over the {'probe' if final_row != PROBE else 'ensemble'} "
        "on these very clips (it replaces the ensemble only beyond noise): a headline picked among two",
        **{k: head[k] for k in ("macro_f1", "accuracy", "macro_f1_95")},
    }
    out_dir = Path(eval_cfg.out_dir)
    report = {
        "cv": oof.record,
        "headline": headline,
        "rows_are": "every clip, each scored by fold models that never saw its family (the CV above)",
        "features": shown_path(pool_single),
        "num_videos": len(oof.labels),
        "classes": oof.classes,
        "tta_modes": list(eval_cfg.tta_modes) if eval_cfg.tta else [],
        "choice": choice,
        "calibration": {
            "method": "temperature scaling cross-fitted on the CV's folds: each fold's clips scaled by a temperature "
            "fitted on the other folds' (rows); the ready classifier's on every kind of held-out clip (held_out)",
            "held_out": held_out,
        },
        "familiarity": bakeoff,
        "final_row": final_row,
        "predictions": shown_path(out_dir / predictions.FILE_NAME),
        "rows": rows,
    }
    ensure_dir(out_dir)
    rule, report["accept"] = accept_rule(oof, calibrated, eval_cfg, out_dir)
    report["label_audit"] = audit_labels(oof, calibrated["family"], pool_single, out_dir).to_dict()
    write_report(report, rows[final_row] | {"name": final_row}, out_dir)
    family = oof.kinds["family"]
    order = np.argsort(family.rows)  # the pool file's row order
    curves = {
        f"{final_row}, uncalibrated": (oof.candidate(final_row, "family"), labels),
        f"{final_row}, calibrated as shipped": (calibrated["family"], labels),
    }
    plot_reliability(curves, f"reliability ({len(labels)} clips, held-out families)", out_dir / RELIABILITY)
    shipped_probs = calibrated["family"][order]
    decisions = accept.decide(rule, shipped_probs)
    rows_csv = predictions.feature_file_rows(
        pool_single, shipped_probs, oof.classes, familiarity["family"][order], decisions
    )
    predictions.write_predictions(out_dir, rows_csv, oof.classes)
    contact_sheet.write_contact_sheet(out_dir / predictions.FILE_NAME, out_dir, roots=[Path.cwd()])
    report["member_run_ids"] = [run_id for fold in oof.run_ids for run_id in fold if run_id]
    if eval_cfg.log_mlflow:
        params = {"cv": oof.record["what"], "chosen": choice["chosen"], "tta_modes": ",".join(report["tta_modes"])}
        tags = {"ensemble": ensemble, "features": report["features"]}
        tags |= {f"member_{i + 1}_run_id": run_id for i, run_id in enumerate(report["member_run_ids"])}
        extra = (RISK_COVERAGE, audit.PNG_NAME, audit.HTML_NAME)
        name, uri = f"evaluate-{ensemble}", eval_cfg.tracking_uri
        report["mlflow_run_id"] = report_run(report, out_dir, eval_cfg.experiment, name, tags, params, uri, extra)
    shipped = Shipped(
        choice["chosen"],
        held_out["temperatures"],
        held_out["edges"],
        shipped_familiarity,
        rule.to_dict(),
    )
    return report, shipped


def kind_lines(report: dict[str, Any]) -> list[str]:
    """The calibration on every kind of held-out clip, one line each (the pipeline prints them)."""
    held = report["calibration"]["held_out"]
    way = held["calibrated_by"]
    return [
        f"  {KIND_WHAT.get(name, name)}: {v['clips']} clips, accuracy {v['accuracy']:.3f}, ECE {v['ece'][way]:.3f}"
        for name, v in held["kinds"].items()
    ]


def accept_rule(
    oof: OutOfFold, calibrated: dict[str, np.ndarray], eval_cfg: EvalConfig, out_dir: Path
) -> tuple[accept.AcceptRule, dict[str, Any]]:
    """The accept threshold, chosen on the held-out sources (a new source of a known kind: what a lab meets
    most; held-out families where the collection has no finer grouping), one clip per source; its coverage and
    accuracy on every kind; the risk-coverage picture. Returns the rule and its record for the report."""
    chosen_on = "source" if "source" in calibrated else "family"
    sources = {kind: [oof.sources[i] for i in oof.kinds[kind].rows] for kind in calibrated}
    rule = accept.choose_threshold(
        calibrated[chosen_on],
        oof.labels_of(chosen_on),
        sources[chosen_on],
        eval_cfg.accept_accuracy,
        eval_cfg.accept_confidence,
    )
    on_kinds = {
        kind: accept.threshold_scores(rule.threshold, probs, oof.labels_of(kind), sources[kind])
        for kind, probs in calibrated.items()
    }
    curves = {KIND_WHAT[kind].split(":")[0]: (probs, oof.labels_of(kind)) for kind, probs in calibrated.items()}
    accept.plot_risk_coverage(curves, rule, out_dir / RISK_COVERAGE, "risk-coverage, calibrated as shipped")
    record = {
        "rule": rule.to_dict(),
        "chosen_on": KIND_WHAT[chosen_on],
        "bound_over": "one clip per source (seeded): clips of one source are not independent",
        "on_kinds": on_kinds,
        "picture": RISK_COVERAGE,
    }
    return rule, record


def audit_labels(oof: OutOfFold, probs: np.ndarray, pool: Path, out_dir: Path) -> audit.LabelAudit:
    """The likely label issues among every clip, from its held-out-family prediction (a family-wide ambiguity
    shows there, where a source's own clips would vouch for it), as a ranked contact sheet."""
    rows = oof.kinds["family"].rows
    listed = predictions.feature_file_rows(pool, np.zeros((len(oof.labels), len(oof.classes))), oof.classes)
    found = audit.label_issues(
        oof.labels[rows],
        probs,
        [oof.sources[i] for i in rows],
        oof.classes,
        [oof.video_ids[i] for i in rows],
        [listed[i]["path"] for i in rows],
        [oof.groups[i] for i in rows],
    )
    audit.write_issue_sheet(found, out_dir, roots=[Path.cwd()])
    return found
