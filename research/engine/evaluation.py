"""``evaluate(cfg) -> report``: members, TTA, ensemble, metrics, reports, plots; and ``predict``.

The table the seed reports (one model ~93 %, with TTA ~95 %, 4-model ensemble with
TTA 95 % F1), for any set of checkpoints on any feature file:

    rows: member_{seed}, member_{seed}+tta, ..., ensemble, ensemble+tta [, probe]
    columns: accuracy, macro-F1 (95 % interval), ECE, F1 per class; report.json adds NLL and Brier

Every row's probabilities are calibrated (``research.engine.calibration``): a member by the
temperature fitted on the validation split in training (in its checkpoint), an ensemble row by
its own temperature fitted here on the members' validation split; or, where ``temperatures``
gives them (the pipeline: cross-fitted on train+val), members and probe by those, and the
ensemble rows average the calibrated members with no temperature of their own. ``probe`` (``--probe``) is the
logistic-regression probe fitted on the members' train split, beside them for comparison.

Members come from checkpoint files, MLflow run ids, or an ensemble tag. They must
agree on feature dimension, classes and feature type, and match the feature file;
anything else is refused with a message naming both sides.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from research import distributed, tracking
from research.backbones.loading import create_backbones
from research.config import EvalConfig, to_flat_dict
from research.data.dataset import FeatureDataset, split_path
from research.data.inputs import file_entry
from research.engine import contact_sheet, predictions
from research.engine.accept import decide
from research.engine.calibration import calibration_scores, fit_temperature, plot_reliability, with_temperature
from research.engine.checkpoints import build_model, checkpoint_features, checkpoint_temperature, load_checkpoint
from research.engine.classifier import (
    SplitProbe,
    fit_split_probe,
    member_paths,
    pooled_file,
    read_classifier,
    record_probe,
)
from research.engine.familiarity import Familiarity, band_of, with_band_temperatures
from research.engine.metrics import bootstrap_interval, classification_metrics
from research.engine.report import RELIABILITY, report_run, write_report
from research.engine.smoothing import resolve as resolve_smoothing
from research.engine.timeline import predict_timelines
from research.engine.tta import get_views, predict, tta_probabilities
from research.errors import UserError
from research.features.compat import check_compatible
from research.features.frames import entry_features
from research.features.settings import FeatureSettings, kind_of
from research.files import shown_path

log = logging.getLogger(__name__)
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Member:
    name: str  # "member_{seed}"
    checkpoint: dict[str, Any]
    source: str  # path or run id, for the report
    run_id: str | None

    @property
    def features(self) -> dict[str, Any]:
        """What the member was trained on (``research.engine.checkpoints.FEATURE_KEYS``)."""
        return checkpoint_features(self.checkpoint)

    @property
    def multi_scale(self) -> bool:
        return bool(self.features.get("multi_scale"))


# -------------------------------------------------------------------- members


def ensemble_run_ids(name: str, uri: str | None, experiment: str = "train") -> list[str]:
    """The newest finished training run per seed among runs tagged ``ensemble=name``."""
    runs = tracking.finished_runs(experiment, f"tags.ensemble = '{name}'", uri)
    newest: dict[str, str] = {}
    for run in runs:
        newest.setdefault(run.data.tags.get("seed", run.info.run_id), run.info.run_id)
    if not newest:
        raise UserError(f"no finished training runs tagged ensemble={name!r} in experiment {experiment!r}")
    return [newest[s] for s in sorted(newest, key=lambda s: (len(s), s))]


def load_members(cfg: EvalConfig) -> list[Member]:
    sources = list(cfg.checkpoints)
    if cfg.ensemble:
        sources += ensemble_run_ids(cfg.ensemble, cfg.tracking_uri)
    if not sources:
        raise UserError("nothing to evaluate: pass --checkpoints FILE... (or MLflow run ids) or --ensemble NAME")
    members = []
    for source in sources:
        run_id = source if RUN_ID.match(source) and not Path(source).exists() else None
        path = tracking.download_checkpoint(source, Path(cfg.out_dir), cfg.tracking_uri) if run_id else Path(source)
        ckpt = load_checkpoint(path)
        members.append(
            Member(f"member_{ckpt.get('seed', len(members) + 1)}", ckpt, source, run_id or ckpt.get("mlflow_run_id"))
        )
    names = [m.name for m in members]
    for i, m in enumerate(members):  # two members with one seed: keep the rows apart
        if names.count(m.name) > 1:
            m.name = f"{m.name}_{i + 1}"
    check_members_agree(members)
    return members


def check_members_agree(members: list[Member]) -> None:
    """An ensemble averages members trained on the same kind of features: anything else is refused."""
    ref = members[0]
    for m in members[1:]:
        check_compatible(ref.features, m.features, ref.source, m.source)


def features_path(cfg: EvalConfig, member: Member) -> Path:
    if cfg.features:
        return Path(cfg.features)
    train_file = Path(member.features["file"])
    return split_path(train_file.parent, cfg.split, member.multi_scale)


# -------------------------------------------------------------------- scoring


def member_probabilities(
    model: torch.nn.Module, ds: FeatureDataset, device: torch.device, batch_size: int, views: list | None
) -> np.ndarray:
    """``[N, C]`` probabilities of one member, with (views) or without TTA."""
    return predict(model, torch.utils.data.DataLoader(ds, batch_size=batch_size), device, views)[0]


def ensemble_probabilities(probs: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of members' probabilities (equal weights by default)."""
    w = np.ones(len(probs)) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.tensordot(w / w.sum(), np.stack(probs), axes=1)


def row_metrics(name: str, probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """One report row; ``macro_f1_95`` resamples the videos, so two rows whose intervals overlap widely tie."""
    preds = probs.argmax(1)
    m = classification_metrics(labels, preds, len(classes))
    return {
        "name": name,
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "macro_f1_95": bootstrap_interval(labels, preds, len(classes)),
        "f1": dict(zip(classes, m["f1"], strict=True)),
        "precision": dict(zip(classes, m["precision"], strict=True)),
        "recall": dict(zip(classes, m["recall"], strict=True)),
        "confusion": m["confusion"],
    }


@dataclass
class RowProbabilities:
    """One row's probabilities as the models give them (``raw``) and after its temperature (or its
    familiarity bands' temperatures)."""

    raw: np.ndarray
    calibrated: np.ndarray
    temperature: float | list[float]


def score_rows(
    members: list[Member],
    ds: FeatureDataset,
    cfg: EvalConfig,
    device: torch.device,
    ensemble_temperatures: dict[str, float],
    familiarity: np.ndarray | None = None,
) -> dict[str, RowProbabilities]:
    """Every row's probabilities on ``ds``: each member (and member+TTA) with its own temperature (by
    familiarity band where ``cfg.familiarity_bands`` applies to the members and ``familiarity`` scores
    ``ds``'s clips); the ensemble rows average the calibrated members, then apply their own temperature."""
    views = get_views(cfg.tta_modes) if cfg.tta else None
    rows: dict[str, RowProbabilities] = {}
    variants: dict[str, list[RowProbabilities]] = {"ensemble": [], "ensemble+tta": []}
    for m in members:
        model, temperature = build_model(m.checkpoint), member_temperature(cfg, m)
        for suffix, view_list in (("", None), ("+tta", views)):
            if suffix and not views:
                continue
            raw = member_probabilities(model, ds, device, cfg.batch_size, view_list)
            rows[m.name + suffix] = calibrated_by(raw, temperature, cfg, "members", familiarity)
            variants["ensemble" + suffix].append(rows[m.name + suffix])
    if len(members) > 1:
        for name, parts in variants.items():
            if parts:
                t = ensemble_temperatures.get(name, 1.0)
                calibrated = ensemble_probabilities([p.calibrated for p in parts], cfg.weights)
                raw = ensemble_probabilities([p.raw for p in parts], cfg.weights)
                rows[name] = RowProbabilities(raw, with_temperature(calibrated, t), t)
    return rows


def calibrated_by(
    raw: np.ndarray, temperature: float, cfg: EvalConfig, which: str, familiarity: np.ndarray | None
) -> RowProbabilities:
    """``raw`` under ``temperature``, or under each clip's familiarity band's temperature where
    ``cfg.familiarity_bands`` applies to ``which`` (members or probe) and the clips' familiarity is known."""
    bands = cfg.familiarity_bands
    if bands and bands["applies_to"] == which and familiarity is not None:
        calibrated = with_band_temperatures(raw, familiarity, bands["edges"], bands["temperatures"])
        return RowProbabilities(raw, calibrated, list(bands["temperatures"]))
    return RowProbabilities(raw, with_temperature(raw, temperature), temperature)


def familiarity_scores(members: list[Member], path: Path, ds: FeatureDataset) -> np.ndarray | None:
    """Each scored clip's familiarity against the members' training clips (their single-scale train split),
    or None where the single-scale files are not there."""
    folder = Path(members[0].features["file"]).parent
    single = path if not ds.attrs.get("multi_scale") else path.with_name(path.name.replace("_multiscale", ""))
    train = split_path(folder, "train", False)
    if not (train.is_file() and single.is_file()):
        return None
    return Familiarity.fit(pooled_file(train)[0]).score(pooled_file(single)[0])


def member_temperature(cfg: EvalConfig, member: Member) -> float:
    """``temperatures.members`` where given (fitted elsewhere), else the member's own (fitted on val in training)."""
    return float(cfg.temperatures.get("members", checkpoint_temperature(member.checkpoint)))


@dataclass
class ValidationFit:
    """What a validation split gives once (the pipeline's choice reads it, ``evaluate`` re-uses it): every row's
    probabilities on it, the ensemble rows' temperatures fitted there, and the probe fitted on the train split."""

    path: Path | None
    labels: np.ndarray
    rows: dict[str, RowProbabilities]
    temperatures: dict[str, float]  # the ensemble rows'
    probe: SplitProbe | None = None


def fit_on_validation(
    members: list[Member], cfg: EvalConfig, device: torch.device, always: bool = False
) -> ValidationFit:
    """Score every row on the members' validation split (the file beside their training file) and fit the
    ensemble rows' temperatures there; none for one member, with ``calibrate: false``, with temperatures given
    (fitted elsewhere: the ensemble rows average the calibrated members), or where the file is missing.
    ``always``: the rows are scored even where no temperature is fitted (the pipeline's choice reads them)."""
    empty = ValidationFit(None, np.zeros(0, dtype=np.int64), {}, {})
    fit = len(members) >= 2 and cfg.calibrate and "members" not in cfg.temperatures
    if not (fit or always):
        return empty
    val_path = split_path(Path(members[0].features["file"]).parent, "val", members[0].multi_scale)
    if not val_path.is_file():
        log.warning("no validation split at %s: the ensemble rows keep temperature 1 (members keep theirs)", val_path)
        return empty
    val = FeatureDataset(val_path)
    rows = score_rows(members, val, cfg, device, {})
    ensemble_rows = [name for name in rows if name.startswith("ensemble")] if fit else []
    fitted = {name: fit_temperature(rows[name].calibrated, val.labels) for name in ensemble_rows}
    return ValidationFit(val_path, val.labels, rows, fitted)


def calibration_record(cfg: EvalConfig, val_path: Path | None, ensemble: dict[str, float]) -> dict[str, Any]:
    """Where the report's temperatures come from."""
    if cfg.temperatures:
        method = "temperature scaling, temperatures given (the pipeline: cross-fitted on held-out folds of train+val)"
    else:
        method = "temperature scaling fitted on the validation split (members: in training; ensemble rows: here)"
    return {
        "method": method,
        "given": dict(cfg.temperatures),
        "familiarity_bands": dict(cfg.familiarity_bands),
        "validation": shown_path(val_path) if val_path else None,
        "ensemble_temperatures": ensemble,
    }


def calibrated_row(name: str, probs: RowProbabilities, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """A report row of the calibrated probabilities, with ECE (and its interval), NLL and Brier score
    before (``uncalibrated``) and after the row's temperature."""
    row = row_metrics(name, probs.calibrated, labels, classes)
    row["calibration"] = (
        {"temperature": probs.temperature}
        | calibration_scores(probs.calibrated, labels)
        | {"uncalibrated": calibration_scores(probs.raw, labels, interval=False)}
    )
    return row


def probe_probabilities(
    cfg: EvalConfig,
    members: list[Member],
    path: Path,
    ds: FeatureDataset,
    familiarity: np.ndarray | None = None,
    fitted: SplitProbe | None = None,
) -> RowProbabilities:
    """The logistic-regression probe fitted on the members' train split (C and temperature chosen on
    their val split; ``fitted``: already fitted so), scored on the single-scale file of the videos scored here."""
    folder = Path(members[0].features["file"]).parent
    single = path if not ds.attrs.get("multi_scale") else path.with_name(path.name.replace("_multiscale", ""))
    needed = [split_path(folder, "train", False), split_path(folder, "val", False), single]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise UserError(f"probe: {', '.join(missing)} missing (it reads the single-scale train, val and scored files)")
    if FeatureDataset(single, in_memory="no").video_ids != ds.video_ids:
        raise UserError(f"probe: {single} and {path} hold different videos")
    fitted = fitted or fit_split_probe(needed[0], needed[1])
    x, _ = pooled_file(single)
    raw = fitted.probe.predict_proba(x)
    temperature = float(cfg.temperatures.get("probe", fitted.temperature))
    return calibrated_by(raw, temperature, cfg, "probe", familiarity)


def evaluate(
    cfg: EvalConfig,
    headline: dict[str, Any] | None = None,
    held_out: dict[str, Any] | None = None,
    validation: ValidationFit | None = None,
) -> dict[str, Any]:
    """Score every member with and without TTA, and their ensemble, calibrated; write and log the report.

    ``headline``: a figure measured elsewhere that the report leads with (the pipeline's pooled grouped CV of a
    small collection, ``research.commands.pipeline.headline_record``); the rows are then one split's draw.
    ``held_out``: how the calibration was fitted and how it transfers, measured on held-out predictions
    (the pipeline's ``research.engine.temperatures.calibrate_kinds``): its ECE per kind of held-out
    clip and its coverage table go into the report's calibration. ``validation``: the validation split already
    scored and the probe already fitted (``fit_on_validation``, the pipeline's): re-used, not done again."""
    if cfg.classifier:
        raise UserError("--classifier is for --predict: a report scores --checkpoints or --ensemble")
    device = distributed.device_for(cfg.device)
    members = load_members(cfg)
    path = features_path(cfg, members[0])
    ds = FeatureDataset(path)
    for m in members:
        check_compatible(m.features, ds.attrs, m.source, str(path), allow_mismatch=cfg.allow_feature_mismatch)
    mapping = members[0].checkpoint["category_mapping"]
    classes = [c for c, _ in sorted(mapping.items(), key=lambda kv: kv[1])]

    validation = validation or fit_on_validation(members, cfg, device)
    temperatures, val_path = validation.temperatures, validation.path
    familiarity = familiarity_scores(members, path, ds)
    scored = score_rows(members, ds, cfg, device, temperatures, familiarity)
    final_row = list(scored)[-1]  # ensemble+tta where there is one: the report ends on it
    if cfg.probe:
        scored["probe"] = probe_probabilities(cfg, members, path, ds, familiarity, validation.probe)
    rows = [calibrated_row(name, probs, ds.labels, classes) for name, probs in scored.items()]

    report = {
        "features": shown_path(path),  # below the current folder: relative, so a checkout's outputs stay put
        "num_videos": len(ds),
        "classes": classes,
        "tta_modes": list(cfg.tta_modes) if cfg.tta else [],
        "members": [
            {
                "name": m.name,
                "source": shown_path(m.source),
                "run_id": m.run_id,
                "model": m.checkpoint["model"]["name"],
                "seed": m.checkpoint.get("seed"),
                "temperature": member_temperature(cfg, m),
            }
            for m in members
        ],
        "calibration": calibration_record(cfg, val_path, temperatures) | ({"held_out": held_out} if held_out else {}),
        "final_row": final_row,
        "predictions": shown_path(Path(cfg.out_dir) / predictions.FILE_NAME),
        "rows": {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in rows},
    }
    if headline:
        report = {"headline": headline, "rows_are": "one split's test part: one draw"} | report
    out_dir = Path(cfg.out_dir)
    write_report(report, report["rows"][final_row] | {"name": final_row}, out_dir)
    curves = {f"{final_row}, uncalibrated": (scored[final_row].raw, ds.labels)}
    curves[f"{final_row}, calibrated"] = (scored[final_row].calibrated, ds.labels)
    if "probe" in scored:
        curves["probe, calibrated"] = (scored["probe"].calibrated, ds.labels)
    plot_reliability(curves, f"reliability ({len(ds)} videos)", out_dir / RELIABILITY)
    final = scored[final_row].calibrated
    predictions.write_predictions(out_dir, predictions.feature_file_rows(path, final, classes, familiarity), classes)
    # the errors as pictures; the paths were written relative to this folder (or absolute)
    contact_sheet.write_contact_sheet(out_dir / predictions.FILE_NAME, out_dir, roots=[Path.cwd()])
    if cfg.log_mlflow:
        report["mlflow_run_id"] = log_report(cfg, report, members, out_dir)
    return report


# -------------------------------------------------------------------- outputs


def ensemble_name(cfg: EvalConfig, members: list[Member]) -> str | None:
    """``--ensemble NAME``, else the ``ensemble`` tag the members' training runs share (the demo's checkpoints)."""
    run_ids = [m.run_id for m in members if m.run_id]
    if cfg.ensemble or len(run_ids) < len(members):
        return cfg.ensemble
    shared = tracking.run_tag(run_ids, "ensemble", cfg.tracking_uri)
    return shared if shared not in (None, "", "None") else None  # training tags str(None) when it had none


def log_report(cfg: EvalConfig, report: dict[str, Any], members: list[Member], out_dir: Path) -> str:
    """One run named ``evaluate-<ensemble>`` (or ``evaluate-<model>-x<N>``) with the report's rows, files and
    the members' run ids (``research.engine.report.log_report``)."""
    tags = {f"member_{i + 1}_run_id": m.run_id or "" for i, m in enumerate(members)} | {"features": report["features"]}
    ensemble = ensemble_name(cfg, members)
    if ensemble:
        tags["ensemble"] = ensemble
    models = sorted({m.checkpoint["model"]["name"] for m in members})
    name = f"evaluate-{ensemble}" if ensemble else f"evaluate-{'+'.join(models)}-x{len(members)}"
    params = to_flat_dict(cfg) | {"members": json.dumps([m.source for m in members])}
    return report_run(report, out_dir, cfg.experiment, name, tags, params, cfg.tracking_uri)


# -------------------------------------------------------------------- predict


def predict_videos(cfg: EvalConfig) -> list[dict[str, Any]]:
    """Raw videos (files, or every video file under a folder, recursively) -> class and calibrated
    probabilities, with the feature settings the classifier records; ``OUT_DIR/predictions.csv`` holds
    one row per video. The classifier is ``--classifier FILE`` (the ensemble or the probe the pipeline
    chose), else the members given (each with its own temperature).

    The videos go through extraction's own decode -> CNN -> scales path (``research.features.frames``), so a
    video's features here equal its row in a feature file made with the same settings. A video that
    cannot be decoded gets an ``error`` instead of a class; the others are still classified.
    """
    device = distributed.device_for(cfg.device)
    videos = predictions.videos_to_predict(cfg.predict)  # before the members: a folder without videos says so
    ready = read_classifier(cfg.classifier) if cfg.classifier else {}  # read (and its members checked) once
    classify, record = video_classifier(cfg, device, ready)
    settings, kind = FeatureSettings.from_record(record), kind_of(record)
    backbones = create_backbones(settings, device=device)
    classes = [c for c, _ in sorted(record["category_mapping"].items(), key=lambda kv: kv[1])]
    familiar = video_familiarity(ready)  # how much each video looks like the training clips (single-scale mean)
    if cfg.window is not None:  # --window: a timeline per video (research.engine.timeline), not one label per file
        # each window scored and calibrated as a file is (its familiarity, its band's temperature), smoothed by
        # the command's settings, else the classifier's (chosen on held-out timelines: ``smoothing``)
        smoothing = resolve_smoothing(cfg.segment_s, cfg.min_segment_s, cfg.smooth, ready.get("smoothing"))
        bands, accept = ready.get("familiarity_bands") or None, ready.get("accept")
        return predict_timelines(
            cfg, videos, classify, settings, kind, backbones, classes, device, familiar, bands, accept, smoothing
        )
    kinds = sorted({kind, "single"}) if familiar is not None else [kind]
    rule = ready.get("accept")  # accept or review per video, where the classifier carries the pipeline's rule
    entries = [file_entry(video.path) for video in videos]
    results: list[dict[str, Any]] = [{} for _ in entries]
    rows: list[dict[str, Any]] = [{} for _ in entries]
    for item, feats in entry_features(entries, settings, kinds, backbones, device):
        i = item["i"]
        video, path = videos[i].video_id, videos[i].path.as_posix()
        if feats is None:
            results[i] = {"video": path, "error": item["error"]}
            rows[i] = predictions.prediction_row(video, path, None, classes, error=item["error"])
            continue
        score = None if familiar is None else familiar.score(feats["single"].double().mean(0)[None].cpu().numpy())
        p = classify(feats[kind], score)
        decision = decide(rule, p[None])[0] if rule is not None else None  # the classifier's accept rule
        results[i] = (
            {
                "video": path,
                "class": classes[int(p.argmax())],
                "probabilities": dict(zip(classes, p.tolist(), strict=True)),
            }
            | ({} if score is None else {"familiarity": float(score[0])})
            | ({"decision": decision} if decision else {})
        )
        rows[i] = predictions.prediction_row(
            video, path, p, classes, familiarity=None if score is None else score[0], decision=decision
        )
    predictions.write_predictions(Path(cfg.out_dir), rows, classes)
    return results


def video_classifier(
    cfg: EvalConfig, device: torch.device, record: dict[str, Any]
) -> tuple[Callable[..., np.ndarray], dict[str, Any]]:
    """``(classify, feature record)``: ``classify(features, familiarity=None)`` maps one video's ``[T, D]`` frame
    features to its calibrated class probabilities ``[C]``, or ``[B, T, D]`` (sequences of one length: a
    timeline's windows) to ``[B, C]``. ``familiarity`` (``[1]`` or ``[B]``, ``video_familiarity``) picks each
    video's temperature where the classifier has temperatures by familiarity band; without it, the one.
    ``record``: the ``--classifier`` file as ``read_classifier`` read it, or empty (members given)."""
    bands = record.get("familiarity_bands") or {}
    if record.get("kind") == "probe":
        probe, temperature = record_probe(record), float(record["temperature"])

        def classify_probe(features: torch.Tensor, familiarity: np.ndarray | None = None) -> np.ndarray:
            batch = features.ndim == 3
            x = (features.double().mean(1) if batch else features.double().mean(0, keepdim=True)).cpu().numpy()
            probs = with_temperature(probe.predict_proba(x), band_temperature(temperature, bands, familiarity))
            return probs if batch else probs[0]

        return classify_probe, record["features"]
    if record:
        paths = member_paths(record, Path(cfg.classifier))
        members = [Member(f"member_{i + 1}", load_checkpoint(p), str(p), None) for i, p in enumerate(paths)]
        check_members_agree(members)
        views, ensemble_t = get_views(record["tta_modes"] or ["identity"]), float(record["temperature"])
        given = record.get("member_temperature")
    else:
        members = load_members(cfg)
        views, ensemble_t, given = get_views(cfg.tta_modes if cfg.tta else ["identity"]), 1.0, None
    models = [
        (build_model(m.checkpoint).eval().to(device), checkpoint_temperature(m.checkpoint) if given is None else given)
        for m in members
    ]

    def classify_ensemble(features: torch.Tensor, familiarity: np.ndarray | None = None) -> np.ndarray:
        batch = features.ndim == 3
        x = (features if batch else features[None]).to(device)
        n = torch.full((x.shape[0],), x.shape[1], device=device)
        raw = [tta_probabilities(model, x, n, views).cpu().numpy() for model, _ in models]
        on_members = bands.get("applies_to") != "ensemble"  # the CV's bands scale the average, older ones each member
        member_bands = bands if on_members else {}
        probs = [
            with_temperature(p, band_temperature(t, member_bands, familiarity))
            for p, (_, t) in zip(raw, models, strict=True)
        ]
        weights = record.get("weights") if cfg.classifier else cfg.weights  # a classifier weighs as it was scored
        average_t = ensemble_t if on_members else band_temperature(ensemble_t, bands, familiarity)
        calibrated = with_temperature(ensemble_probabilities(probs, weights), average_t)
        return calibrated if batch else calibrated[0]

    return classify_ensemble, members[0].features


def band_temperature(temperature: float, bands: dict[str, Any], familiarity: np.ndarray | None) -> float | np.ndarray:
    """``temperature``, or each video's familiarity band's (``[B, 1]``) where the classifier has bands."""
    if not bands or familiarity is None:
        return temperature
    edges, temperatures = bands["edges"], np.asarray(bands["temperatures"], dtype=np.float64)
    return temperatures[band_of(np.asarray(familiarity), edges)][:, None]


def video_familiarity(record: dict[str, Any]) -> Familiarity | None:
    """A ready classifier's familiarity (its training clips), or None (members given, or an older file)."""
    return Familiarity.from_record(record["familiarity"]) if "familiarity" in record else None
