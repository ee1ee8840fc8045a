"""Out-of-fold predictions: one grouped cross-validation of the collection, which every later use reads.

``cross_fit(cv, extract_cfg, train_cfg)`` runs the one CV of a collection (``research.data.folds``):

1. the folds: ``cv.folds`` grouped folds (``cv.group_by``, e.g. families), each also holding out whole
   sources and single clips of the families it trains on;
2. the fold members: one ``MemberJob`` per fold and ``cv.seeds`` seed (``research.engine.members``), each
   trained on its fold's files and scored, in the same job and on its device, on every clip the fold holds
   out (plain and with TTA, uncalibrated); the jobs go to the launcher (``research.launcher``: this process,
   a local pool or a Slurm array), finished ones re-used, a lost one run again alone;
3. the probe: its L2 strength ``C`` chosen once on the collection (``research.models.probe.choose_c``),
   one fit per fold at that ``C``, and one fit on every clip (the probe a lab would ship);
4. the result, ``OutOfFold``: per kind of held-out clip (``family``, ``source``, ``clip``) each clip's
   uncalibrated probabilities from every seed (plain, +TTA) and from the probe, the fold that held it out,
   and every fold member's checkpoint.

Nothing downstream trains or fits a classifier again: the headline, the choice between probe and
ensemble, the temperatures, the familiarity bands, the coverage and the accept threshold all read
``OutOfFold`` (``research.engine.uses``), and the fold members themselves are the ensemble a lab gets.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from research import tracking
from research.config import CVConfig, ExtractConfig, LaunchConfig, TrainConfig
from research.data.dataset import FeatureDataset, split_path
from research.data.folds import KINDS, Fold, cv_folds, starved_folds
from research.data.splits import grouping_column, video_groups, write_fold
from research.engine.classifier import pooled_file
from research.engine.members import MemberJob, run_member_jobs
from research.errors import UserError
from research.features.hdf5 import read_attrs
from research.files import shown_path
from research.models.probe import LogisticProbe, choose_c, fit_logistic, work

log = logging.getLogger(__name__)
PROBE = "probe"


def seed_row(seed: int, tta: bool) -> str:
    """The name under which one seed's fold members' probabilities are kept (``seed_1``, ``seed_1+tta``)."""
    return f"seed_{seed}" + ("+tta" if tta else "")


@dataclass
class HeldOut:
    """One kind of held-out clip: which clips, which fold held each out, and their uncalibrated probabilities."""

    rows: np.ndarray  # [n] indices into the collection, in fold order
    fold: np.ndarray  # [n] the fold that held each out
    raw: dict[str, np.ndarray] = field(default_factory=dict)  # seed_row(...) and "probe" -> [n, C]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class OutOfFold:
    """Every clip's out-of-fold predictions of each kind, and what made them."""

    video_ids: list[str]
    labels: np.ndarray  # [N]
    groups: list[str]  # [N] what the folds keep apart (cv.group_by, e.g. families)
    sources: list[str]  # [N] the finer grouping (the annotation's group) or the groups themselves
    classes: list[str]
    seeds: list[int]
    folds: list[Fold]
    kinds: dict[str, HeldOut]  # KINDS present, in order; "family" always
    checkpoints: list[list[Path]]  # [fold][seed]
    run_ids: list[list[str | None]]  # [fold][seed] the fold members' MLflow training runs
    val_temperatures: list[list[float]]  # [fold][seed] each member's temperature fitted on its validation part
    pooled: np.ndarray  # [N, D] each clip's mean single-scale frame feature (the probe's and familiarity's input)
    probe: LogisticProbe | None  # fitted on every clip at the chosen C (None: no probe asked for)
    probe_record: dict[str, Any]  # how C was chosen, and the fits made
    record: dict[str, Any]  # what report.json's ``cv`` names: folds, seeds, groups, kinds, where
    mlflow_run_id: str | None = None  # the CV's parent run (never in a file: new on every run)

    def ensemble(self, kind: str, tta: bool = True) -> np.ndarray:
        """The fold ensembles' probabilities (the seeds' uncalibrated probabilities averaged) of one kind."""
        held = self.kinds[kind]
        return np.mean([held.raw[seed_row(s, tta)] for s in self.seeds], axis=0)

    def candidate(self, name: str, kind: str) -> np.ndarray:
        """``ensemble+tta`` (or ``ensemble``) or ``probe``: a candidate's uncalibrated probabilities of one kind."""
        if name == PROBE:
            return self.kinds[kind].raw[PROBE]
        return self.ensemble(kind, tta=name.endswith("+tta"))

    def labels_of(self, kind: str) -> np.ndarray:
        return self.labels[self.kinds[kind].rows]

    def groups_of(self, kind: str) -> list[str]:
        return [self.groups[i] for i in self.kinds[kind].rows]


def pool_files(extract_cfg: ExtractConfig, split: str) -> dict[bool, Path]:
    """The extracted files of ``split``: multi_scale -> path."""
    return {kind == "multi": split_path(extract_cfg.out_dir, split, kind == "multi") for kind in extract_cfg.outputs}


def member_jobs(
    source: Path,
    folds: list[Fold],
    out_dir: Path,
    train_cfg: TrainConfig,
    seeds: list[int],
    tta_modes: tuple[str, ...],
    parent_run_id: str | None,
    first: int = 0,
) -> list[list[MemberJob]]:
    """Write each fold's feature files (train, val, test = its held-out families, and its held-out sources and
    clips where they are not the validation part) and make its members' jobs: ``[fold][seed]``; the folds are
    numbered from ``first``."""
    jobs = []
    for k, fold in enumerate(folds, start=first):
        fold_dir = out_dir / f"fold_{k}"
        parts = {"train": fold.train, "val": fold.val, "test": fold.family}
        held = np.union1d(fold.source, fold.clip)
        if len(held) and not fold.val_is_held_out:
            parts["held_out"] = held
        write_fold(source, fold_dir / "features", parts, train_cfg.multi_scale)
        files = {name: str(split_path(fold_dir / "features", name, train_cfg.multi_scale)) for name in parts}
        score = {"test": files["test"]}
        if len(held):
            score["held_out"] = files["val" if fold.val_is_held_out else "held_out"]
        fold_cfg = dataclasses.replace(
            train_cfg,
            features_dir=str(fold_dir / "features"),
            out_dir=str(fold_dir / "runs"),
            experiment="cv",
            ensemble=f"{train_cfg.ensemble}-fold{k}",
        )
        jobs.append(
            [
                MemberJob(
                    dataclasses.replace(fold_cfg, seed=seed),
                    score,
                    tta_modes,
                    str(fold_dir / "runs" / f"scores_{seed}.json"),
                    parent_run_id,
                    {"fold": str(k)},
                )
                for seed in seeds
            ]
        )
    return jobs


def cross_fit(
    cv: CVConfig,
    extract_cfg: ExtractConfig,
    train_cfg: TrainConfig,
    tta_modes: tuple[str, ...],
    launch: LaunchConfig,
    name: str = "cv",
    probe: bool = True,
) -> OutOfFold:
    """Run the one CV of ``cv.split`` (the extracted pool) and return every clip's out-of-fold predictions;
    ``probe``: the probe's too (it reads the single-scale file)."""
    pool = pool_files(extract_cfg, cv.split)
    source = pool[train_cfg.multi_scale]
    ds = FeatureDataset(source, in_memory="no")
    groups = video_groups(ds, cv, extract_cfg)
    by_family = grouping_column(cv, extract_cfg) == "family"
    sources = video_groups(ds, dataclasses.replace(cv, group_by="group"), extract_cfg) if by_family else groups
    labels = ds.labels.astype(np.int64)
    folds = cv_folds(
        labels,
        groups,
        sources,
        cv.folds,
        cv.fold_seed,
        cv.held_out_sources,
        cv.held_out_clips,
        cv.val_fraction,
        carve_val=train_cfg.keep == "best",
    )
    classes = ds.classes or [str(i) for i in range(ds.num_classes)]
    starved = starved_folds(labels, groups, folds, classes)
    if starved and cv.strict_split:  # before any file is written: nothing to clean up
        raise UserError(f"{starved[0]} (cv.strict_split is true)")
    out_dir = Path(cv.out_dir)
    with tracking.start_run("cv", run_name=name, uri=train_cfg.tracking_uri, enabled=train_cfg.log_mlflow) as parent:
        parent_id = parent.info.run_id if parent is not None else None
        if parent is not None:
            tracking.log_params({f"cv.{k}": v for k, v in dataclasses.asdict(cv).items()} | {"model": train_cfg.model})
        jobs = member_jobs(source, folds, out_dir, train_cfg, list(cv.seeds), tta_modes, parent_id)
        results = run_member_jobs([job for fold_jobs in jobs for job in fold_jobs], launch, name)
    per_fold = [results[k * len(cv.seeds) : (k + 1) * len(cv.seeds)] for k in range(len(folds))]
    kinds = _held_out_kinds(folds, per_fold, list(cv.seeds), ds.video_ids, ds.num_classes)
    x, fitted, probe_record = np.zeros((len(labels), 0)), None, {}
    if probe:
        x, pooled_labels = pooled_file(pool[False])
        if not np.array_equal(pooled_labels, labels):
            raise ValueError(f"{pool[False]} and {source} hold different clips")
        fitted, probe_record = _probe(x, labels, groups, folds, kinds, ds.num_classes, cv)
    record = {
        "what": f"grouped {len(folds)}-fold CV by {grouping_column(cv, extract_cfg)} of every clip, "
        f"{len(cv.seeds)} member(s) per fold (seeds {list(cv.seeds)})",
        "folds": len(folds),
        "seeds": list(cv.seeds),
        "grouped_by": grouping_column(cv, extract_cfg),
        "clips": len(labels),
        "skipped": [{"path": s.get("path"), "reason": s.get("reason")} for s in read_attrs(source).get("skipped", [])],
        "groups": len(set(groups)),
        "sources": len(set(sources)),
        "held_out": {kind: len(held) for kind, held in kinds.items()},
        "fold_groups": [sorted({groups[i] for i in fold.family}) for fold in folds],
        "trainings": len(folds) * len(cv.seeds),
        "probe": probe_record,  # C chosen once on the collection, one fit per fold, one on every clip
        "starved": starved,  # classes a fold barely trains on (one group holds most of them)
        "folder": shown_path(out_dir),
    }
    return OutOfFold(
        list(ds.video_ids),
        labels,
        groups,
        sources,
        classes,
        list(cv.seeds),
        folds,
        kinds,
        [[Path(r["checkpoint"]) for r in fold_results] for fold_results in per_fold],
        [[r.get("run_id") for r in fold_results] for fold_results in per_fold],
        [[r["val_temperature"] for r in fold_results] for fold_results in per_fold],
        x,
        fitted,
        probe_record,
        record,
        parent_id,
    )


def _held_out_kinds(
    folds: list[Fold],
    per_fold: list[list[dict[str, Any]]],
    seeds: list[int],
    video_ids: list[str],
    num_classes: int,
) -> dict[str, HeldOut]:
    """Each kind's rows, folds and every seed's probabilities (plain, +TTA), from the jobs' results."""
    row_of = {vid: i for i, vid in enumerate(video_ids)}
    kinds = {}
    for kind in KINDS:
        rows = [fold.held_out(kind) for fold in folds]
        if not sum(len(r) for r in rows):
            continue
        held = HeldOut(np.concatenate(rows), np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)]))
        for s, seed in enumerate(seeds):
            for tta in (False, True):
                parts = []
                for fold_rows, results in zip(rows, per_fold, strict=True):
                    if not len(fold_rows):  # this fold held out no clip of this kind
                        continue
                    scored = results[s]["scores"]["test" if kind == "family" else "held_out"]
                    ids, values = scored["video_ids"], scored["tta" if tta else "plain"]
                    probs = dict(zip((row_of[v] for v in ids), values, strict=True))
                    parts.append(np.asarray([probs[i] for i in fold_rows], dtype=np.float64).reshape(-1, num_classes))
                held.raw[seed_row(seed, tta)] = np.concatenate(parts)
        kinds[kind] = held
    return kinds


def _probe(
    x: np.ndarray,
    labels: np.ndarray,
    groups: list[str],
    folds: list[Fold],
    kinds: dict[str, HeldOut],
    num_classes: int,
    cv: CVConfig,
) -> tuple[LogisticProbe, dict[str, Any]]:
    """C chosen once (``choose_c``: a seeded grouped subsample, the grid walked with warm starts), one fit per fold
    on its training clips at that C (each fold's held-out clips scored), one fit on every clip, each warm-started
    from the C search's solution; the per-fold probabilities go into ``kinds``. Returns the probe fitted on every
    clip and the record of the work (fits, passes over the data)."""
    choice = choose_c(x, labels, groups, num_classes, seed=cv.fold_seed)
    for kind in kinds.values():
        kind.raw[PROBE] = np.zeros((len(kind), num_classes))
    fold_fits = []
    for k, fold in enumerate(folds):
        fitted = fit_logistic(
            x[fold.train], labels[fold.train], num_classes, choice.c, init=choice.start(len(fold.train))
        )
        fold_fits.append(fitted.record)
        for kind in kinds.values():
            mine = kind.fold == k
            kind.raw[PROBE][mine] = fitted.predict_proba(x[kind.rows[mine]])
    full = fit_logistic(x, labels, num_classes, choice.c, init=choice.start(len(labels)))
    record = {
        "c": choice.c,
        "grid": choice.summary(),  # the one walk of the grid: every C's score and the fits it took
        "fold_fits": work(fold_fits, len(labels)),
        "full_fit": work([full.record], len(labels)),
    }
    return full, record
