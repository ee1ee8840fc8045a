"""The whole pipeline on one collection: videos -> features -> the fold members or the split's -> report -> classifier.

    python -m research.commands.pipeline --config experiments/demo.yaml                # = make demo
    python -m research.commands.pipeline --annotations my/labels.csv --data-root my   # your videos, demo's recipe

A collection of fewer than ``cv.headline_cv_below`` clips (``make demo``'s 381) is cross-validated, once:

1. features: single- and multi-scale files of every video from one CNN pass (``extract:``);
2. the one CV (``research.engine.oof``): ``cv.folds`` folds grouped by ``cv.group_by`` (the demo: family),
   each also holding out whole sources and single clips of the families it trains on; one member per
   seed per fold, trained and scored on its held-out clips in one job; the probe fitted per fold;
3. what the CV says (``research.engine.cv_report``): the headline with intervals, the choice between the
   probe and the ensemble, the temperatures fitted on every kind of held-out clip, the coverage table;
   ``report.json``, ``predictions.csv`` (every clip), ``reliability.png`` and the contact sheet of errors;
4. the ready classifier ``classifier.pt``: the fold members themselves as one ensemble (no model is
   trained twice), or the probe fitted on every clip, calibrated as the report says.

A larger collection is split once by group (test is one grouped fold, validation carved by group from the
rest): one member per seed trained on train, the probe and the ensemble compared and calibrated on val,
both scored on test. A data root with train/, val/ and test/ folders is split by its folders.

Every step re-uses finished work made from the same inputs and settings and says so, so a second
run takes seconds. ``make demo`` is this with ``experiments/demo.yaml`` on benchmarks/real's clips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from research import distributed
from research.cli import banner, console, make_parser, run_cli, setup_logging
from research.config import (
    OVERRIDES_DEST,
    CVConfig,
    EvalConfig,
    ExtractConfig,
    LaunchConfig,
    TrainConfig,
    load_config,
    parse_override,
)
from research.data.dataset import FeatureDataset, split_path
from research.data.inputs import ALL_SPLIT, config_annotations, split_of
from research.data.splits import balanced_split, grouping_column, starved_classes, video_groups, write_fold
from research.engine import classifier as classifier_file
from research.engine.choice import choose_classifier
from research.engine.cv_report import Shipped, cv_report, kind_lines
from research.engine.evaluation import ValidationFit, evaluate, fit_on_validation, load_members
from research.engine.familiarity import Familiarity
from research.engine.members import MemberJob, run_member_jobs
from research.engine.oof import OutOfFold, cross_fit
from research.engine.report import results_table
from research.errors import UserError
from research.features.array import extract_array
from research.features.hdf5 import content_fingerprint, read_attrs
from research.files import shown_path, write_text_atomic
from research.launcher import plan
from research.tracking import links as mlflow_links

log = logging.getLogger(__name__)
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"
SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------- the split


def split_settings(cv: CVConfig) -> dict[str, Any]:
    return {
        "group_by": cv.group_by,
        "folds": cv.folds,
        "val_fraction": cv.val_fraction,
        "seed": cv.fold_seed,
        "candidates": cv.split_candidates,
    }


def split_by_group(
    extract_cfg: ExtractConfig, train_cfg: TrainConfig, cv: CVConfig, split: str | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Split what extraction kept of ``split`` (default: the pool) by group and write train/val/test subsets
    (every extracted kind) and ``split.json`` into ``train_cfg.features_dir``; re-used while the extracted
    files, the groups and the settings match. ``quiet``: no table and no warning printed (the CV's run, whose
    figures never read the split: it is written for ``train.py`` and the studies)."""
    split = split or pool_split(extract_cfg) or extract_cfg.splits[0]
    kinds = [kind == "multi" for kind in extract_cfg.outputs]  # multi_scale per extracted file
    sources = {multi: split_path(extract_cfg.out_dir, split, multi) for multi in kinds}
    out = Path(train_cfg.features_dir)
    record_path = out / "split.json"
    datasets = {multi: FeatureDataset(path, in_memory="no") for multi, path in sources.items()}
    ds = datasets[kinds[0]]
    if any(d.video_ids != ds.video_ids for d in datasets.values()):
        raise UserError(f"{', '.join(map(str, sources.values()))} hold different clips: extract them again")
    groups = video_groups(ds, cv, extract_cfg)  # read now: a regrouped collection is split again
    made_from = {p.name: content_fingerprint(p) for p in sources.values()}
    made_from["groups"] = hashlib.sha256("\n".join(groups).encode()).hexdigest()[:16]
    settings = split_settings(cv)
    targets = [split_path(out, s, multi) for s in SPLITS for multi in kinds]
    if record_path.is_file() and all(t.is_file() for t in targets):
        record = json.loads(record_path.read_text())
        if record.get("made_from") == made_from and record.get("settings") == settings:
            log.info("split: re-using %s (the same extracted clips and sources, the same settings)", record_path)
            if not quiet:
                _report(record)
                _check_balance(record, cv)
            return record

    skipped = read_attrs(sources[kinds[0]]).get("skipped", [])
    parts, balance = balanced_split(ds.labels, groups, cv.folds, cv.val_fraction, cv.fold_seed, cv.split_candidates)
    classes = ds.classes or [str(i) for i in range(ds.num_classes)]
    balance["starved"] = starved_classes(ds.labels, groups, parts, classes, balance["intended"]["train"])
    if cv.strict_split and not quiet:  # before any file is written: nothing to clean up
        _check_balance({"balance": balance}, cv)
    for multi, path in sources.items():
        write_fold(path, out, parts, multi)
    record = {
        "settings": settings,
        "made_from": made_from,
        "extracted": str(sources[kinds[0]].parent),
        "kept": len(ds),
        "skipped": skipped,
        "classes": classes,
        "grouped_by": grouping_column(cv, extract_cfg),  # the column read (family falls back to group)
        "one_group_per_video": groups == ds.video_ids,  # no group column: near-duplicates may straddle the split
        "balance": balance,  # the candidate splits' closest to the intended shares, and how close
        "splits": {
            name: {
                "clips": len(rows),
                "clips_per_class": {classes[c]: n for c, n in sorted(Counter(ds.labels[rows].tolist()).items())},
                "sources": sorted({groups[i] for i in rows}),
                "videos": [ds.video_ids[i] for i in rows],
            }
            for name, rows in parts.items()
        },
    }
    write_text_atomic(record_path, json.dumps(record, indent=2))  # last: a split half-written is redone
    log.info("split: wrote %s and the train/val/test files beside it", record_path)
    if not quiet:
        _report(record)
        _check_balance(record, cv)
    return record


def _check_balance(record: dict[str, Any], cv: CVConfig) -> None:
    """Say so (or, with ``cv.strict_split``, stop) when a class keeps under half its training share."""
    starved = record["balance"]["starved"]
    if starved and cv.strict_split:
        raise UserError(f"{starved[0]} (cv.strict_split is true)")
    for line in starved:
        console.print(Text.assemble(("warning:", "bold yellow"), " ", line), soft_wrap=True)


def _report(record: dict[str, Any]) -> None:
    skipped = record["skipped"]
    for item in skipped:
        log.info("skipped by extraction: %s (%s)", item.get("path"), item.get("reason"))
    log.info(
        "extraction kept %d clips and skipped %d: the split uses the %d kept",
        record["kept"],
        len(skipped),
        record["kept"],
    )
    s, balance = record["settings"], record["balance"]
    by = record.get("grouped_by", s["group_by"])
    title = (
        f"split by {by}: the closest to the intended shares of {balance['candidates']} grouped splits (test and "
        f"validation folds of {s['candidates']} seeds): test fold {balance['test_fold']}, validation fold "
        f"{balance['val_fold']} of seed {balance['seed']}; largest gap of a class's share {balance['distance']:.2f}"
    )
    if record.get("one_group_per_video"):
        title = "split by video: no group column, each video is its own group (near-duplicates may straddle it)"
    table = Table(title=title)
    for col in ("split", "groups", "clips", "clips per class (share of the class; intended)"):
        table.add_column(col)
    for k, (name, part) in enumerate(record["splits"].items()):
        classes = list(part["clips_per_class"])
        shares = dict(zip(record["classes"], (row[k] for row in balance["shares"]), strict=True))
        per_class = ", ".join(f"{c} {part['clips_per_class'][c]} ({shares[c]:.0%})" for c in classes)
        per_class += f"; {balance['intended'][name]:.0%}"
        table.add_row(name, str(len(part["sources"])), str(part["clips"]), per_class)
    console.print(table)


# ------------------------------------------------------------------ the demo


def pool_split(extract_cfg: ExtractConfig) -> str | None:
    """The one split to divide by group (an annotation file without a split column: ``all``; one split
    folder), or None where the collection already has train, val and test (folders or a split column)."""
    if extract_cfg.annotations:  # the rows alone: no file is looked at before extraction does
        named = {split_of(row) for row in config_annotations(extract_cfg).rows}
        if named == {ALL_SPLIT}:
            return ALL_SPLIT
        where = f"{extract_cfg.annotations}'s split column"
    elif len(extract_cfg.splits) == 1:
        data = Path(extract_cfg.data_dir) / extract_cfg.splits[0]
        if not data.is_dir():
            raise UserError(
                f"no videos in {data}: extract.data_dir must hold one split folder ({extract_cfg.splits[0]}/"
                "{class}/...) to split by group, train/, val/ and test/ folders, or extract.annotations a list"
            )
        return extract_cfg.splits[0]
    else:
        named, where = set(extract_cfg.splits), "extract.splits"
    missing = sorted(set(SPLITS) - named)
    if missing:
        raise UserError(f"the pipeline splits one pool by group, or uses train, val and test; {where} lacks {missing}")
    return None


def run_pipeline(
    config: Path = DEMO_CONFIG,
    seeds: list[int] | None = None,
    overwrite: bool = False,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The stages on the config's collection; ``seeds``: one member per seed (per fold, under the threshold;
    default ``cv.seeds``); ``overwrite`` recomputes feature files made differently (e.g. by an older version);
    ``overrides`` are each section's command-line values (``collection_overrides``)."""
    overrides = overrides or {}
    extract_cfg = load_config(
        ExtractConfig, "extract", config, overrides.get("extract", {}) | ({"overwrite": True} if overwrite else {})
    )
    train_cfg = load_config(TrainConfig, "train", config, overrides.get("train"))
    eval_cfg = load_config(EvalConfig, "evaluate", config, overrides.get("evaluate"))
    cv = load_config(CVConfig, "cv", config, overrides.get("cv"))
    cv = dataclasses.replace(cv, seeds=list(seeds or cv.seeds))
    launch = load_config(LaunchConfig, "launch", config, overrides.get("launch"))
    pool = pool_split(extract_cfg)
    if pool is not None and Path(train_cfg.features_dir).resolve() == Path(extract_cfg.out_dir).resolve():
        raise UserError(
            f"train.features_dir must be a folder of its own for the split by group, not the extraction's "
            f"{extract_cfg.out_dir} (e.g. {Path(extract_cfg.out_dir) / 'by_group'})"
        )
    clips = None
    steps = 4 if pool is not None else 3
    banner(f"1/{steps} features: one {extract_cfg.backbone} pass, single- and multi-scale files ({plan_line(launch)})")
    extract_array(extract_cfg, launch)  # extract(cfg) itself where the launcher runs jobs in this process
    if pool is not None:
        clips = int(read_attrs(split_path(extract_cfg.out_dir, pool, train_cfg.multi_scale))["num_videos"])
    if pool is not None and 0 < clips < cv.headline_cv_below and "single" in extract_cfg.outputs:
        report, classifier = cross_validated(extract_cfg, train_cfg, eval_cfg, cv, launch, pool, clips)
    else:
        report, classifier = split_once(extract_cfg, train_cfg, eval_cfg, cv, launch, pool, clips)
    closing_lines(config, extract_cfg, train_cfg, eval_cfg, pool, report, classifier)
    return report


def cross_validated(
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    cv: CVConfig,
    launch: LaunchConfig,
    pool: str,
    clips: int,
) -> tuple[dict[str, Any], Path]:
    """A small collection: the one CV, every figure read off its out-of-fold predictions, the fold members as
    the ready ensemble (or the probe fitted on every clip). Returns the report and the classifier's path."""
    cv = dataclasses.replace(cv, split=pool, out_dir=str(Path(train_cfg.out_dir) / "cv"))
    why = f"{clips} clips, under cv.headline_cv_below {cv.headline_cv_below}: one split would be one draw"
    trainings = cv.folds * len(cv.seeds)
    banner(
        f"2/4 the one CV: {cv.folds} folds by {cv.group_by} of every clip, {len(cv.seeds)} member(s) per fold "
        f"({trainings} trainings, {plan_line(launch)}; {why})"
    )
    tta_modes = tuple(eval_cfg.tta_modes) if eval_cfg.tta else ()
    oof = cross_fit(cv, extract_cfg, train_cfg, tta_modes, launch, name=f"{train_cfg.ensemble}-cv")
    for item in oof.record["skipped"]:
        log.info("skipped by extraction: %s (%s)", item["path"], item["reason"])
    kept, skipped = oof.record["clips"], len(oof.record["skipped"])
    log.info("extraction kept %d clips and skipped %d: the CV uses the %d kept", kept, skipped, kept)
    _check_balance({"balance": {"starved": oof.record["starved"]}}, cv)
    # the one split's files for train.py, searches and studies (seconds); no figure of this run reads them
    split = split_by_group(extract_cfg, train_cfg, dataclasses.replace(cv, strict_split=False), pool, quiet=True)
    log.info("the one split by %s for train.py: %s/split.json", split["grouped_by"], train_cfg.features_dir)
    banner("3/4 what the CV says: the headline, the choice, the temperatures, every clip's prediction")
    pool_single = split_path(extract_cfg.out_dir, pool, False)
    report, shipped = cv_report(oof, eval_cfg, cv, pool_single, train_cfg.model, train_cfg.ensemble)
    console.print(results_table(report))
    _print_choice(report["choice"])
    for line in [calibration_line(report["calibration"]["held_out"]), *kind_lines(report)]:
        console.print(line, highlight=False)
    console.print(headline_line(report["headline"]), highlight=False)
    banner("4/4 the ready classifier")
    classifier = ready_from_cv(oof, shipped, report, train_cfg, eval_cfg, pool_single)
    return report, classifier


def split_once(
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    cv: CVConfig,
    launch: LaunchConfig,
    pool: str | None,
    clips: int | None,
) -> tuple[dict[str, Any], Path | None]:
    """A large collection (or one split by its folders): members on the train part; the probe against the
    ensemble, and their temperatures, on the validation part; both scored on test."""
    tags: dict[str, str] = {}
    record = None
    steps = 4 if pool is not None else 3
    step = 1
    if pool is not None:
        step += 1
        why = f"{clips} clips, at least cv.headline_cv_below {cv.headline_cv_below}" if clips else ""
        banner(f"{step}/{steps} split by {cv.group_by}: no group on two of train, val and test ({why})")
        record = split_by_group(extract_cfg, train_cfg, cv, pool)
        tags = {"split": f"by {cv.group_by}", "split_seed": str(cv.fold_seed)}
        tags |= {f"split_{name}_clips": str(part["clips"]) for name, part in record["splits"].items()}
    step += 1
    banner(f"{step}/{steps} ensemble members: seeds {cv.seeds} ({plan_line(launch)})")
    jobs = [
        MemberJob(
            dataclasses.replace(train_cfg, seed=seed),
            score={},  # scored below, on val (the choice) and test (the report), with the probe beside them
            tta_modes=(),
            result=str(Path(train_cfg.out_dir) / f"job_{seed}.json"),
            tags=tags,
        )
        for seed in cv.seeds
    ]
    checkpoints = [Path(r["checkpoint"]) for r in run_member_jobs(jobs, launch, f"{train_cfg.ensemble}-members")]
    probe = "single" in extract_cfg.outputs  # the probe beside the ensemble: it reads the single-scale files
    members_cfg = dataclasses.replace(eval_cfg, checkpoints=[str(p) for p in checkpoints], probe=probe)
    validation, choice = None, None
    if pool is not None and probe:
        banner(f"{steps}/{steps} probe or ensemble and their temperatures on the validation part, then both on test")
        validation, choice = choose_on_validation(members_cfg, extract_cfg, train_cfg, cv)
    else:
        banner(f"{steps}/{steps} evaluation: members, TTA, ensemble{', probe' * probe} on the test part")
    report = evaluate(members_cfg, validation=validation)
    console.print(results_table(report))
    if choice is None:  # a classifier file of an earlier run is not this run's: removed, never left to be applied
        for stale in (Path(train_cfg.out_dir) / classifier_file.FILE_NAME, Path(eval_cfg.out_dir) / "classifier.json"):
            stale.unlink(missing_ok=True)
        return report, None
    report["choice"] = choice
    _print_choice(choice)
    assert validation is not None and validation.probe is not None
    return report, ready_from_split(choice, validation, report, checkpoints, train_cfg, eval_cfg)


def choose_on_validation(
    cfg: EvalConfig,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    cv: CVConfig,
    probe: classifier_file.SplitProbe | None = None,
) -> tuple[ValidationFit, dict[str, Any]]:
    """The members and the probe scored once on the validation split; the choice between them on it. ``probe``:
    the split's probe already fitted (``fit_split_probe``), else fitted here, once."""
    members = load_members(cfg)
    validation = fit_on_validation(members, cfg, distributed.device_for(cfg.device), always=True)
    folder = Path(train_cfg.features_dir)
    val_single = split_path(folder, "val", False)
    validation.probe = probe or classifier_file.fit_split_probe(split_path(folder, "train", False), val_single)
    x_val, y_val = classifier_file.pooled_file(val_single)
    groups = video_groups(FeatureDataset(val_single, in_memory="no"), cv, extract_cfg)
    final = list(validation.rows)[-1]  # ensemble+tta (one member: member+tta), as the report ends
    choice = choose_classifier(
        y_val,
        groups,
        {"ensemble": validation.rows[final].calibrated, "probe": validation.probe.probabilities(x_val)},
        int(y_val.max()) + 1 if len(y_val) else 0,
        cv.bootstrap,
        f"the validation split ({len(y_val)} clips): groups none of the models trained on",
        {
            "ensemble": f"the {len(members)} members' ensemble with TTA",
            "probe": f"logistic regression on the mean single-scale frame feature, C={validation.probe.probe.c:g}",
        },
    )
    choice["probe_fits"] = validation.probe.summary()  # C chosen on val, fitted once: what everything re-uses
    return validation, choice


# ------------------------------------------------------------ the ready classifier


def ready_from_cv(
    oof: OutOfFold, shipped: Shipped, report: dict[str, Any], train_cfg: TrainConfig, eval_cfg: EvalConfig, pool: Path
) -> Path:
    """``classifier.pt`` from the CV: its fold members as one ensemble, or the probe fitted on every clip, with
    the temperatures fitted on every kind of held-out clip (one, or one per familiarity band)."""
    path = Path(train_cfg.out_dir) / classifier_file.FILE_NAME
    choice = report["choice"]
    bands = {}
    if shipped.edges:
        applies_to = "probe" if shipped.kind == "probe" else "ensemble"
        bands = {"applies_to": applies_to, "edges": shipped.edges, "temperatures": shipped.temperatures}
    temperature = shipped.temperatures[0] if not shipped.edges else 1.0
    if shipped.kind == "probe":
        fitted = classifier_file.SplitProbe(oof.probe, temperature, {})
        made = classifier_file.probe_file(fitted, pool, choice, temperature)
        what = {"kind": "probe", "temperature": temperature, "c": oof.probe.c, "fitted_on": "every clip"}
    else:
        members = [p for fold in oof.checkpoints for p in fold]
        made = classifier_file.ensemble_file(members, list(report["tta_modes"]), temperature, choice, 1.0, path.parent)
        made["weights"] = None  # every fold member alike
        what = {"kind": "ensemble", "temperature": temperature, "members": made["members"]}
        what["why"] = "the CV's fold members: trained once, scored on the clips they never saw, shipped as they are"
    made["familiarity"] = shipped.familiarity.to_record()
    made["familiarity_bands"] = bands
    made["accept"] = shipped.accept
    return _write_ready(made, path, eval_cfg, what | {"familiarity_bands": bands, "accept": shipped.accept}, choice)


def ready_from_split(
    choice: dict[str, Any],
    validation: ValidationFit,
    report: dict[str, Any],
    checkpoints: list[Path],
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
) -> Path:
    """``classifier.pt`` of a split: the members (each with its own temperature, the ensemble's fitted on val) or
    the probe fitted on the train part (C and temperature on val)."""
    path = Path(train_cfg.out_dir) / classifier_file.FILE_NAME
    assert validation.probe is not None
    train_single = split_path(train_cfg.features_dir, "train", False)
    if choice["chosen"] == "probe":
        made = classifier_file.probe_file(validation.probe, train_single, choice)
        what = {"kind": "probe", "temperature": made["temperature"], "c": validation.probe.probe.c}
    else:
        ensemble_t = report["calibration"]["ensemble_temperatures"].get(report["final_row"], 1.0)
        made = classifier_file.ensemble_file(checkpoints, report["tta_modes"], ensemble_t, choice, None, path.parent)
        made["weights"] = eval_cfg.weights  # as the report's ensemble weighed its members
        what = {"kind": "ensemble", "temperature": ensemble_t, "members": made["members"]}
    made["familiarity"] = Familiarity.fit(classifier_file.pooled_file(train_single)[0]).to_record()
    made["familiarity_bands"] = {}
    return _write_ready(made, path, eval_cfg, what, choice)


def _write_ready(made: dict[str, Any], path: Path, eval_cfg: EvalConfig, what: dict[str, Any], choice: dict) -> Path:
    classifier_file.write_classifier(made, path)
    summary = {"classifier": shown_path(path), **what, "choice": choice}
    write_text_atomic(Path(eval_cfg.out_dir) / "classifier.json", json.dumps(summary, indent=2))
    console.print(f"ready classifier: the {what['kind']}, {shown_path(path)}", highlight=False)
    return Path(shown_path(path))


# ------------------------------------------------------------------ printing


def plan_line(launch: LaunchConfig) -> str:
    """How the jobs run here, in a few words (``research.launcher.plan``)."""
    how = plan(launch)
    if how.launcher == "serial":
        return "one after another in this process"
    if how.launcher == "slurm":
        return f"one Slurm array ({launch.slurm_cluster})"
    return f"{len(how.slots)} processes, {how.slots[0].describe()} each"


def headline_line(headline: dict[str, Any]) -> str:
    ci = headline["macro_f1_95"]
    return (
        f"headline ({headline['what']}; {headline['why']}): {headline['row']} macro-F1 {headline['macro_f1']:.3f}, "
        f"95 % [{ci['low']:.3f}, {ci['high']:.3f}] over {headline['groups']} groups"
    )


def calibration_line(calibration: dict[str, Any]) -> str:
    """The ready classifier's calibration on every kind of held-out clip, in one line."""
    way = calibration["calibrated_by"]
    how = f"{len(calibration['temperatures'])} familiarity bands" if way == "bands" else "one temperature"
    goal = "met" if calibration["met"] else "not met"
    worst = calibration["worst_ece"][way]
    return f"calibration ({how}, cross-fitted on every kind of held-out clip): worst ECE {worst:.3f} (<= 0.05: {goal})"


def _print_choice(choice: dict[str, Any]) -> None:
    table = Table(title=f"probe or ensemble: {choice['scored_on']}")
    for col in ("candidate", "macro-F1", "95 % (groups resampled)", "what"):
        table.add_column(col)
    for name, fig in choice["candidates"].items():
        ci = fig["macro_f1_95"]
        table.add_row(name, f"{fig['macro_f1']:.3f}", f"{ci['low']:.3f}-{ci['high']:.3f}", fig["what"])
    console.print(table)
    d = choice["difference"]
    console.print(
        f"chosen: {choice['chosen']} ({d['chosen_minus_other']:+.3f}, paired 95 % "
        f"[{d['paired_95']['low']:+.3f}, {d['paired_95']['high']:+.3f}]" + (": within noise)" if d["noise"] else ")"),
        highlight=False,
    )


def closing_lines(
    config: Path,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    pool: str | None,
    report: dict[str, Any],
    classifier: Path | None,
) -> None:
    """Where the outputs are, and the links into the MLflow UI."""
    lines = [
        f"  report        {eval_cfg.out_dir}/report.json, {eval_cfg.out_dir}/predictions.csv",
        f"  features      {extract_cfg.out_dir}/ (python -m research.commands.features inspect FILE.h5)",
    ]
    if "cv" in report:
        lines.insert(
            1, f"  fold members  {report['cv']['folder']}/fold_*/runs/ ({report['cv']['trainings']} trainings)"
        )
    elif pool is not None:
        lines.append(f"  split         {train_cfg.features_dir}/split.json")
    if classifier:
        lines.append(f"  classify      python evaluate.py --classifier {classifier} --predict MY_VIDEOS/")
    if config == DEMO_CONFIG:
        lines.append("  ablation      make ablation      results page: make results")
    console.print("\n[bold]Where to look next[/bold]")
    console.print("\n".join(lines), soft_wrap=True, markup=False, highlight=False)
    if train_cfg.log_mlflow:  # the way into the UI: the command, then links to the members and the evaluation
        members, experiment = report.get("member_run_ids", []), "cv" if "cv" in report else "train"
        links = mlflow_links.ui_links(
            train_cfg.ensemble, members, report.get("mlflow_run_id"), train_cfg.tracking_uri, experiment=experiment
        )
        mlflow_links.print_links(console, links)


def collection_overrides(
    annotations: str | None, data_root: str | None, name: str | None, settings: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-section overrides from the command line.

    ``--annotations`` (with ``--data-root``) replaces the config's collection, dropping the config's
    ``columns`` (they describe its own file); ``--name`` (default: the annotation file's name) puts every
    output under features/NAME, runs/NAME and outputs/NAME, so a run on your videos never writes over the
    demo's; ``section.key=value`` sets any field (``train.epochs=10``, ``cv.group_by=family``), and a ``launch:``
    field may go without its section (``launcher=slurm``, ``workers=2``).
    """
    out: dict[str, dict[str, Any]] = {section: {} for section in ("extract", "train", "evaluate", "cv", "launch")}
    if annotations:
        out["extract"]["annotations"] = annotations  # the config's columns go with its file (load_config)
        name = name or Path(annotations).stem
    if data_root:
        out["extract"]["data_dir"] = data_root
    if name:
        out["extract"]["out_dir"] = f"features/{name}"
        out["train"] |= {"features_dir": f"features/{name}/by_group", "out_dir": f"runs/{name}", "ensemble": name}
        out["evaluate"]["out_dir"] = f"outputs/{name}"
        out["cv"]["out_dir"] = f"outputs/cv/{name}"
    launch_fields = {f.name for f in dataclasses.fields(LaunchConfig)}
    for text in settings:
        key, value = parse_override(text)
        section, _, field = key.partition(".")
        if not field and key.lstrip("~") in launch_fields:  # launcher=slurm: the pipeline's own jobs, no section
            section, field = "launch", key
        if section not in out or not field:
            raise UserError(
                f"{text!r}: pipeline overrides are section.key=value (sections {sorted(out)}), or a launch: "
                f"setting alone ({', '.join(sorted(launch_fields))})"
            )
        out[section][field] = value
    return out


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="experiment YAML [default: demo.yaml]")
    parser.add_argument("--annotations", default=None, help="your collection's annotation file (docs/data.md)")
    parser.add_argument("--data-root", default=None, help="the folder its relative paths start from")
    parser.add_argument("--name", default=None, help="outputs under features/NAME, runs/NAME, outputs/NAME")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="one member per seed (per fold under the CV) [cv.seeds]"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute feature files made with other settings [off]"
    )
    parser.add_argument(
        OVERRIDES_DEST,
        nargs="*",
        default=[],
        metavar="section.key=value",
        help="any setting, e.g. train.epochs=10; launch: settings alone, e.g. launcher=slurm workers=2",
    )
    args = parser.parse_args()
    setup_logging(args.verbose)
    start = time.perf_counter()
    overrides = collection_overrides(args.annotations, args.data_root, args.name, args.overrides)
    run_pipeline(args.config, args.seeds, args.overwrite, overrides)
    console.print(f"pipeline finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
