"""The whole pipeline on one collection: videos -> features -> split -> ensemble members -> evaluation.

    python -m research.commands.pipeline --config experiments/demo.yaml --seeds 1 2 3 4   # = make demo
    python -m research.commands.pipeline --annotations my/labels.csv --data-root my   # your videos, demo's recipe

1. extracts single- and multi-scale features of every video from one CNN pass (``extract:``);
2. splits what extraction kept: a data root with ``train/ val/ test/`` folders by its folders; one
   split folder (``all/``), or an annotation file without a split column, **by group** (``cv.group_by``:
   the annotation's ``group`` column, or another): groups disjoint, stratified by class, deterministic (the
   test part is one grouped fold, validation is carved by group from the rest, ``research.data.splits``),
   written as subsets of the extracted files with ``split.json`` into ``train.features_dir``;
3. trains one ensemble member per seed (``train.py --seed N`` with the config) on those files;
4. (a pool split by group) cross-validates the probe against the recipe on train+val alone, grouped
   as the split (``research.engine.choice``): which classifier transfers better, and the temperature
   each one's probabilities get, fitted on groups held out;
5. evaluates each member, with TTA, the ensemble and the probe on the test part, calibrated, writes
   ``report.json``, ``predictions.csv`` and ``reliability.png`` (``evaluate.out_dir``), the chosen
   classifier as ``classifier.pt`` beside the members (for ``evaluate.py --classifier ... --predict``)
   with ``classifier.json`` beside the report, and prints the table and the MLflow links.

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

import numpy as np
from rich.table import Table
from rich.text import Text

from research.cli import banner, console, make_parser, run_cli, setup_logging
from research.config import (
    OVERRIDES_DEST,
    CVConfig,
    EvalConfig,
    ExtractConfig,
    TrainConfig,
    load_config,
    parse_override,
)
from research.data.dataset import FeatureDataset, split_path
from research.data.inputs import ALL_SPLIT, config_annotations, split_of
from research.data.splits import balanced_split, grouping_column, starved_classes, video_groups, write_fold
from research.engine import classifier as classifier_file
from research.engine.choice import choose_classifier
from research.engine.crossval import cross_validate, same_cv
from research.engine.crossval import table as cv_table
from research.engine.evaluation import evaluate, results_table
from research.engine.familiarity import Familiarity
from research.engine.members import train_members
from research.engine.metrics import grouped_bootstrap_interval
from research.errors import UserError
from research.features.extraction import extract
from research.features.hdf5 import content_fingerprint, read_attrs
from research.files import shown_path, write_text_atomic
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
    extract_cfg: ExtractConfig, train_cfg: TrainConfig, cv: CVConfig, split: str | None = None
) -> dict[str, Any]:
    """Split what extraction kept of ``split`` (default: the pool) by group and write train/val/test subsets
    (every extracted kind) and ``split.json`` into ``train_cfg.features_dir``; re-used while the extracted
    files, the groups and the settings match."""
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
            _report(record)
            _check_balance(record, cv)
            return record

    skipped = read_attrs(sources[kinds[0]]).get("skipped", [])
    parts, balance = balanced_split(ds.labels, groups, cv.folds, cv.val_fraction, cv.fold_seed, cv.split_candidates)
    classes = ds.classes or [str(i) for i in range(ds.num_classes)]
    balance["starved"] = starved_classes(ds.labels, groups, parts, classes, balance["intended"]["train"])
    if cv.strict_split:  # before any file is written: nothing to clean up
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
    """The stages on the config's collection; ``overwrite`` recomputes feature files made differently
    (e.g. by an older version); ``overrides`` are each section's command-line values (``collection_overrides``)."""
    seeds = seeds or [1, 2, 3, 4]
    overrides = overrides or {}
    extract_cfg = load_config(
        ExtractConfig, "extract", config, overrides.get("extract", {}) | ({"overwrite": True} if overwrite else {})
    )
    train_cfg = load_config(TrainConfig, "train", config, overrides.get("train"))
    eval_cfg = load_config(EvalConfig, "evaluate", config, overrides.get("evaluate"))
    pool = pool_split(extract_cfg)
    split_by_folder = pool is None
    if not split_by_folder and Path(train_cfg.features_dir).resolve() == Path(extract_cfg.out_dir).resolve():
        raise UserError(
            f"train.features_dir must be a folder of its own for the source split, not the extraction's "
            f"{extract_cfg.out_dir} (e.g. {Path(extract_cfg.out_dir) / 'by_group'})"
        )
    cv = load_config(CVConfig, "cv", config, overrides.get("cv"))
    # the choice needs groups (a pool split by group) and the probe's single-scale features
    choose = not split_by_folder and cv.choice_folds > 0 and "single" in extract_cfg.outputs
    steps = (3 if split_by_folder else 4) + choose + (not split_by_folder)  # the last: the headline's CV, maybe
    banner(f"1/{steps} features: one {extract_cfg.backbone} pass, single- and multi-scale files")
    extract(extract_cfg)
    tags: dict[str, str] = {}
    if not split_by_folder:
        banner(f"2/{steps} split by {cv.group_by}: no group on two of train, val and test")
        record = split_by_group(extract_cfg, train_cfg, cv, pool)
        tags = {"split": f"by {cv.group_by}", "split_seed": str(cv.fold_seed)}
        tags |= {f"split_{name}_clips": str(part["clips"]) for name, part in record["splits"].items()}
    step = 2 if split_by_folder else 3
    banner(f"{step}/{steps} ensemble members: seeds {seeds}")
    checkpoints = train_members(train_cfg, seeds, extra_tags=tags)
    choice: dict[str, Any] = {}
    shipped_probe = None
    if choose:
        step += 1
        title = f"{cv.choice_folds} folds by {cv.group_by} of train+val"
        banner(f"{step}/{steps} probe or recipe, and how sure each may be: {title}")
        choice, shipped_probe = choose_by_cv(extract_cfg, train_cfg, cv, record)
    headline = None
    if not split_by_folder:
        step += 1
        headline = headline_by_cv(extract_cfg, train_cfg, cv, pool, record, f"{step}/{steps}")
    banner(f"{steps}/{steps} evaluation: members, TTA, ensemble, probe" + " on the test groups" * choose)
    probe = "single" in extract_cfg.outputs  # the probe beside the ensemble: it reads the single-scale files
    temperatures, bands = cross_fitted_temperatures(choice)
    report = evaluate(
        dataclasses.replace(
            eval_cfg,
            checkpoints=[str(p) for p in checkpoints],
            probe=probe,
            temperatures=temperatures,
            familiarity_bands=bands,
        ),
        headline,
        choice.get("familiarity"),
    )
    console.print(results_table(report))
    if headline:
        console.print(headline_line(headline), highlight=False)
    if choice and shipped_probe is not None:
        classifier = ready_classifier(train_cfg, eval_cfg, choice, shipped_probe, report, checkpoints)
    else:  # a classifier file of an earlier run is not this run's: removed, never left to be applied
        classifier = None
        for stale in (Path(train_cfg.out_dir) / classifier_file.FILE_NAME, Path(eval_cfg.out_dir) / "classifier.json"):
            stale.unlink(missing_ok=True)
    lines = [
        f"  report        {eval_cfg.out_dir}/report.json, {eval_cfg.out_dir}/predictions.csv",
        f"  checkpoints   {train_cfg.out_dir}/best_ensemble_model_{{{','.join(map(str, seeds))}}}.pt",
        f"  features      {extract_cfg.out_dir}/ (python -m research.commands.features inspect FILE.h5)",
    ]
    if not split_by_folder:
        lines.append(f"  split         {train_cfg.features_dir}/split.json")
    if classifier:
        lines.append(f"  classify      python evaluate.py --classifier {classifier} --predict MY_VIDEOS/")
    if config == DEMO_CONFIG:
        lines.append("  ablation      make ablation      results page: make results")
    console.print("\n[bold]Where to look next[/bold]")
    console.print("\n".join(lines), soft_wrap=True, markup=False, highlight=False)
    if train_cfg.log_mlflow:  # the way into the UI: the command, then links to the members and the evaluation
        members = [m.get("run_id") for m in report.get("members", [])]
        links = mlflow_links.ui_links(train_cfg.ensemble, members, report.get("mlflow_run_id"), train_cfg.tracking_uri)
        mlflow_links.print_links(console, links)
    return report


def headline_by_cv(
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    cv: CVConfig,
    pool: str,
    record: dict[str, Any],
    step: str,
) -> dict[str, Any] | None:
    """A small collection's headline: the recipe under pooled grouped K-fold CV of every clip (``cv.folds`` folds
    grouped as the split, one member per ``cv.seeds`` seed in each), so that every clip is scored once by
    models that never saw its group. One split's test part is one draw of a few groups, too few to say how
    good the recipe is; the CV is re-used while the features, groups and settings are the same."""
    clips = record["kept"]
    if not 0 < clips < cv.headline_cv_below:
        log.info("headline: the test split (%d clips, cv.headline_cv_below %d)", clips, cv.headline_cv_below)
        return None
    cv_cfg = dataclasses.replace(cv, split=pool, out_dir=str(Path(train_cfg.out_dir) / "headline_cv"))
    cv_train = dataclasses.replace(train_cfg, ensemble=f"{train_cfg.ensemble}-cv", experiment="cv")
    why = f"{clips} clips, under cv.headline_cv_below {cv.headline_cv_below}"
    banner(f"{step} the headline: {cv.folds}-fold CV by {cv.group_by} of every clip ({why})")
    source = split_path(extract_cfg.out_dir, pool, train_cfg.multi_scale)
    path = Path(cv_cfg.out_dir) / "cv.json"
    if same_cv(path, cv_train, cv_cfg, source, extract_cfg):
        log.info("headline: re-using %s (the same features, groups and settings)", shown_path(path))
        result = json.loads(path.read_text())
    else:
        result = cross_validate(cv_cfg, extract_cfg, cv_train, name=f"{train_cfg.ensemble}-headline")
    console.print(cv_table(result))
    return headline_record(result, record.get("grouped_by", cv.group_by), why)


def headline_record(result: dict[str, Any], grouped_by: str, why: str) -> dict[str, Any]:
    """``report.json``'s ``headline`` from a CV summary: each row's pooled scores with two 95 % intervals,
    clips resampled and groups resampled (clips of one group are not independent: the honest one)."""
    labels, groups = np.asarray(result["labels"]), result["video_groups"]
    rows = {}
    for name, row in result["rows"].items():
        pooled = row["pooled"]
        by_group = grouped_bootstrap_interval(labels, np.asarray(pooled["pred"]), groups, len(result["classes"]))
        rows[name] = {
            "macro_f1": pooled["macro_f1"],
            "accuracy": pooled["accuracy"],
            "macro_f1_95_clips": pooled["bootstrap_95"],
            "macro_f1_95": by_group,
            "fold_macro_f1": row["fold_macro_f1"],
        }
    final = "ensemble+tta" if "ensemble+tta" in rows else list(rows)[-1]
    return {
        "what": f"pooled grouped {result['folds']}-fold CV by {grouped_by} of every clip, "
        f"{len(result['config']['cv']['seeds'])} members per fold",
        "why": why,
        "clips": result["videos"],
        "groups": result["groups"],
        "row": final,
        **{k: rows[final][k] for k in ("macro_f1", "accuracy", "macro_f1_95")},
        "rows": rows,
        "cv": shown_path(Path(result["config"]["cv"]["out_dir"]) / "cv.json"),
    }


def headline_line(headline: dict[str, Any]) -> str:
    ci = headline["macro_f1_95"]
    return (
        f"headline ({headline['what']}; {headline['why']}): {headline['row']} macro-F1 {headline['macro_f1']:.3f}, "
        f"95 % [{ci['low']:.3f}, {ci['high']:.3f}] over {headline['groups']} groups; the table above is one split"
    )


def choose_by_cv(
    extract_cfg: ExtractConfig, train_cfg: TrainConfig, cv: CVConfig, record: dict[str, Any]
) -> tuple[dict[str, Any], classifier_file.SplitProbe]:
    """The probe against the recipe, and each one's cross-fitted temperature, by grouped CV of the split's
    train and val videos (``research.engine.choice``); the test videos are not read. Returns the choice
    and the probe that would be shipped (fitted on the split's train, C chosen on its val)."""
    split = pool_split(extract_cfg) or extract_cfg.splits[0]
    pool = {kind == "multi": split_path(extract_cfg.out_dir, split, kind == "multi") for kind in extract_cfg.outputs}
    ds = FeatureDataset(next(iter(pool.values())), in_memory="no")
    dev_videos = set(record["splits"]["train"]["videos"]) | set(record["splits"]["val"]["videos"])
    dev = np.array([i for i, vid in enumerate(ds.video_ids) if vid in dev_videos])
    groups = video_groups(ds, cv, extract_cfg)
    # split by family: the sources within families are the second kind of held-out clip the calibration sees
    by_family = grouping_column(cv, extract_cfg) == "family"
    fine = video_groups(ds, dataclasses.replace(cv, group_by="group"), extract_cfg) if by_family else None
    folder = Path(train_cfg.features_dir)  # the probe shipped: C chosen on the split's val, measured at that C
    shipped = classifier_file.fit_split_probe(split_path(folder, "train", False), split_path(folder, "val", False))
    work_dir = Path(train_cfg.out_dir) / "choice"
    choice = choose_classifier(pool, dev, groups, train_cfg, cv, work_dir, shipped.probe.c, fine)
    _report_choice(choice)
    return choice, shipped


def cross_fitted_temperatures(choice: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """``EvalConfig.temperatures`` and ``familiarity_bands`` from a choice: each candidate's temperature fitted on
    held-out folds; the chosen one's fitted on both kinds of held-out clip (by familiarity band where bands
    transfer better than one temperature, ``research.engine.familiarity``)."""
    if not choice or "skipped" in choice:
        return {}, {}
    candidates = choice["candidates"]
    temperatures = {
        "members": candidates["recipe"]["calibration"]["temperature"],
        "probe": candidates["probe"]["calibration"]["temperature"],
    }
    calibration = choice.get("familiarity")
    if not calibration:
        return temperatures, {}
    applies_to = "probe" if choice["chosen"] == "probe" else "members"
    if not calibration["edges"]:
        return temperatures | {applies_to: calibration["temperatures"][0]}, {}
    bands = {"applies_to": applies_to, "edges": calibration["edges"], "temperatures": calibration["temperatures"]}
    return temperatures, bands


def ready_classifier(
    train_cfg: TrainConfig,
    eval_cfg: EvalConfig,
    choice: dict[str, Any],
    probe: classifier_file.SplitProbe,
    report: dict[str, Any],
    checkpoints: list[Path],
) -> Path:
    """Write the chosen classifier as ``classifier.pt`` beside the members, calibrated as the report is, and
    the choice with its figures as ``classifier.json`` beside the report; returns the classifier's path."""
    path = Path(train_cfg.out_dir) / classifier_file.FILE_NAME
    temperatures, bands = cross_fitted_temperatures(choice)
    if choice["chosen"] == "probe":
        train_file = split_path(train_cfg.features_dir, "train", False)
        made = classifier_file.probe_file(probe, train_file, choice, temperatures["probe"])
        what = {"kind": "probe", "temperature": made["temperature"], "c": probe.probe.c}
    else:
        ensemble_t = report["calibration"]["ensemble_temperatures"].get(report["final_row"], 1.0)
        member_t = temperatures.get("members")
        made = classifier_file.ensemble_file(checkpoints, report["tta_modes"], ensemble_t, choice, member_t)
        made["weights"] = eval_cfg.weights  # as the report's ensemble weighed its members
        what = {"kind": "ensemble", "member_temperature": member_t, "temperature": ensemble_t}
        what["members"] = [p.name for p in checkpoints]
    # how familiar a new video looks (against the training clips), and its band's temperature where bands won
    train_single = split_path(train_cfg.features_dir, "train", False)
    made["familiarity"] = Familiarity.fit(classifier_file.pooled_file(train_single)[0]).to_record()
    made["familiarity_bands"] = bands
    what["familiarity_bands"] = bands
    classifier_file.write_classifier(made, path)
    summary = {"classifier": shown_path(path), **what, "choice": choice}
    write_text_atomic(Path(eval_cfg.out_dir) / "classifier.json", json.dumps(summary, indent=2))
    console.print(f"ready classifier: the {what['kind']}, {shown_path(path)}", highlight=False)
    return Path(shown_path(path))


def familiarity_line(calibration: dict[str, Any] | None) -> str:
    """The chosen classifier's calibration on both kinds of held-out clip, in one line."""
    if not calibration:
        return "calibration by familiarity: not measured (one kind of held-out clip)"
    way = calibration["calibrated_by"]
    kinds = ", ".join(f"{v['what']} {v['ece'][way]:.3f}" for v in calibration["kinds"].values())
    how = f"{len(calibration['temperatures'])} familiarity bands" if way == "bands" else "one temperature"
    auroc = calibration["auroc"]
    separates = f"; familiarity AUROC {auroc:.2f}" if auroc is not None else ""
    goal = "met" if calibration["met"] else "not met"
    return f"calibration ({how}, cross-fitted) ECE: {kinds} (goal <= 0.05: {goal}){separates}"


def _report_choice(choice: dict[str, Any]) -> None:
    if "skipped" in choice:
        console.print(f"ready classifier: the ensemble, without a comparison ({choice['skipped']})", highlight=False)
        return
    table = Table(title=f"{choice['folds']}-fold CV by {choice['grouped_by']} of train+val ({choice['videos']} videos)")
    for col in ("candidate", "macro-F1", "95 %", "what"):
        table.add_column(col)
    for name, fig in choice["candidates"].items():
        ci = fig["macro_f1_95"]
        table.add_row(name, f"{fig['macro_f1']:.3f}", f"{ci['low']:.3f}-{ci['high']:.3f}", fig["what"])
    console.print(table)
    for name, fig in choice["candidates"].items():
        cal = fig["calibration"]
        console.print(
            f"{name}: temperature {cal['temperature']:.2f} (held-out folds); ECE on unseen groups "
            f"{cal['uncalibrated']['ece']:.3f} uncalibrated, {cal['ece']:.3f} cross-fitted"
            + (
                f", {cal['val_split']['ece']:.3f} with each member's validation temperature"
                if "val_split" in cal
                else ""
            ),
            highlight=False,
        )
    d = choice["difference"]
    console.print(familiarity_line(choice.get("familiarity")), highlight=False)
    console.print(
        f"chosen: {choice['chosen']} ({d['chosen_minus_other']:+.3f}, paired 95 % "
        f"[{d['paired_95']['low']:+.3f}, {d['paired_95']['high']:+.3f}]" + (": within noise)" if d["noise"] else ")"),
        highlight=False,
    )


def collection_overrides(
    annotations: str | None, data_root: str | None, name: str | None, settings: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-section overrides from the command line.

    ``--annotations`` (with ``--data-root``) replaces the config's collection, dropping the config's
    ``columns`` (they describe its own file); ``--name`` (default: the annotation file's name) puts every
    output under features/NAME, runs/NAME and outputs/NAME, so a run on your videos never writes over the
    demo's; ``section.key=value`` sets any field (``train.epochs=10``, ``cv.group_by=family``).
    """
    out: dict[str, dict[str, Any]] = {section: {} for section in ("extract", "train", "evaluate", "cv")}
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
    for text in settings:
        key, value = parse_override(text)
        section, _, field = key.partition(".")
        if section not in out or not field:
            raise UserError(f"{text!r}: pipeline overrides are section.key=value, sections {sorted(out)}")
        out[section][field] = value
    return out


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="experiment YAML [default: demo.yaml]")
    parser.add_argument("--annotations", default=None, help="your collection's annotation file (docs/data.md)")
    parser.add_argument("--data-root", default=None, help="the folder its relative paths start from")
    parser.add_argument("--name", default=None, help="outputs under features/NAME, runs/NAME, outputs/NAME")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4], help="one member per seed [1 2 3 4]")
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute feature files made with other settings [off]"
    )
    parser.add_argument(
        OVERRIDES_DEST, nargs="*", default=[], metavar="section.key=value", help="any setting, e.g. train.epochs=10"
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
