"""Optuna studies around ``train(cfg)``, tracked in MLflow.

    python train.py --search --config experiments/search_demo.yaml --study demo --trials 12

- The space (``search.space`` in the YAML) maps TrainConfig fields to Optuna
  distributions; every combination is checked valid before the first trial (e.g.
  attention heads must divide the attention width).
- Trial 0 is the config's own values (``enqueue_baseline``), so every study says
  whether, and by how much, it beat the documented baseline.
- Each epoch's validation macro-F1 is reported; a pruner (median by default)
  stops weak trials. Pruned and failed trials stay in the study and in MLflow.
- Storage: a journal file (several worker processes on one machine share it) or
  an RDB URL such as ``postgresql://user:pw@host/optuna`` (several machines).
  Re-running with the same study name resumes it; trial numbers continue.
- Workers do not replay each other's proposals: each takes a number from the study
  and seeds its TPE sampler from (study seed, worker number), so a restarted worker
  does not repeat the trials it lost either; ``constant_liar`` keeps concurrent
  workers away from each other's running trials. A fresh study's first worker
  (number 0) always has the same seed: one sequential worker is reproducible.
- A killed worker's trial does not stay RUNNING: every worker refreshes a heartbeat
  on its running trial (Optuna's own for RDB storages; ``HeartbeatJournalStorage``
  adds it to the journal file), and a trial whose heartbeat is older than
  ``stale_after_s`` is failed, its MLflow run ended KILLED, and its parameters
  queued again once (``StaleTrialHandler``; the retry's user attr ``retry_of``
  names the dead trial). Each trial records its ``worker`` and ``sampler_seed``.
- A database that restarts mid-study costs a pause, not the worker: every storage call
  is tried again for ``storage_retry_s`` (``RetryingRDBStorage``); past that the worker
  stops in one line, exit 2, and its trial's MLflow run does not stay RUNNING.
- Without a ``search.space``, the space is hidden size, layers, heads and dropout
  around the config (``default_space``); an explicit empty space is refused.
- MLflow: one parent run per study (experiment ``search``), created with the
  study, and one nested run per trial with its params, per-epoch metrics and
  state; the parent gets the best params, the baseline's score, the improvement,
  and Optuna's plots (parameter importances from ``MIN_TRIALS_FOR_IMPORTANCES``
  complete trials on).

Several workers may start at once (the study is set up once: a file lock on a
journal, the winner of ``create_study`` on RDB), e.g.
``for i in 1 2; do python train.py --search ... --trials 6 & done; wait``: ``--trials`` is the
study's total over every worker (the two run 6 trials between them, not 12), as Optuna's
``MaxTrialsCallback`` counts it; re-running a finished study with the same number runs nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from research import tracking
from research.config import SearchConfig, TrainConfig
from research.distributed import file_lock
from research.engine.training import train
from research.models import check_model_args
from research.tracking import links
from research.tuning.space import check_space, get_param, resolve_space, suggest, with_params
from research.tuning.storage import PARENT_ATTR, lost_in_one_line, storage_for, worker_seed

log = logging.getLogger(__name__)
console = Console()
METRIC = "val_macro_f1"
WORKERS_ATTR = "workers_started"
# fANOVA's forest over a handful of trials ranks noise, and takes seconds: no importances plot before this many.
MIN_TRIALS_FOR_IMPORTANCES = 10


# ---------------------------------------------------------------------- study


def make_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.pruner_warmup_epochs))
    return optuna.pruners.NopPruner()


@dataclasses.dataclass(frozen=True)
class Worker:
    """This process's place in a study: its number (handed out by the study), its sampler seed, and the storage
    (the study's own is wrapped in Optuna's cache)."""

    study: optuna.Study
    number: int
    seed: int
    storage: optuna.storages.BaseStorage | None = None


def _create_or_load(name: str, storage: optuna.storages.BaseStorage) -> tuple[optuna.Study, bool]:
    try:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage), False


def _set_up(study: optuna.Study, cfg: SearchConfig, base: TrainConfig, space: dict[str, dict]) -> None:
    """Once per study: the baseline as trial 0 and the MLflow parent run."""
    if cfg.enqueue_baseline:
        study.enqueue_trial({name: get_param(base, name) for name in space}, user_attrs={"baseline": True})
    with tracking.start_run(
        "search", run_name=f"study-{cfg.study}", uri=base.tracking_uri, tags={"study": cfg.study, "model": base.model}
    ) as parent:
        tracking.log_params(
            {f"space.{k}": v for k, v in space.items()} | {"pruner": cfg.pruner, "base_model": base.model}
        )
    study.set_user_attr(PARENT_ATTR, parent.info.run_id)


def join_study(cfg: SearchConfig, base: TrainConfig, setup_wait_s: float = 60.0) -> Worker:
    """Create or load the study (set up once: baseline, MLflow parent run) and take a worker number.

    On a journal file a file lock serialises this. An RDB study may be shared by several
    machines: only the process whose ``create_study`` succeeded sets it up, the others wait
    up to ``setup_wait_s`` for it (then take over: its creator died).
    """
    check_model_args(base.model, base.model_args)
    space = resolve_space(cfg, base)
    check_space(space, base)
    storage, lock_path = storage_for(cfg, base.tracking_uri)
    tracking.get_experiment_id("search", base.tracking_uri)  # the MLflow store exists before workers race
    with file_lock(lock_path.with_suffix(".lock")) if lock_path else contextlib.nullcontext():
        study, created = _create_or_load(cfg.study, storage)
        deadline = time.monotonic() + (0 if created or lock_path else setup_wait_s)
        while PARENT_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
        if PARENT_ATTR not in study.user_attrs:
            _set_up(study, cfg, base, space)
        worker = int(study.user_attrs.get(WORKERS_ATTR, 0))
        study.set_user_attr(WORKERS_ATTR, worker + 1)
    # Unique under the journal's lock, and for the process that created an RDB study (worker 0: a lone
    # worker stays reproducible); other RDB workers may read one number together, so host and pid go in.
    seed = worker_seed(cfg.sampler_seed, worker, shared_machines=not (lock_path or created))
    log.info("study %s: worker %d, sampler seed %d", cfg.study, worker, seed)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.load_study(study_name=cfg.study, storage=storage, sampler=sampler, pruner=make_pruner(cfg))
    study.set_user_attr(f"worker_{worker}_seed", seed)
    # A worker that starts (even with --trials 0) clears trials left RUNNING by dead workers.
    optuna.storages.fail_stale_trials(study)
    return Worker(study, worker, seed, storage)


def prepare_study(cfg: SearchConfig, base: TrainConfig) -> optuna.Study:
    """Create or load the study (see ``join_study``); returns it loaded with this worker's own sampler."""
    return join_study(cfg, base).study


# A trial's scoring: (its config, the trial, parent run id, tags, run name) -> the value to maximise.
Fit = Callable[[TrainConfig, optuna.Trial, str, dict[str, Any], str], float]


def fit_on_validation(
    cfg: TrainConfig, trial: optuna.Trial, parent_run_id: str, tags: dict[str, Any], name: str
) -> float:
    """The default trial: one ``train(cfg)``, each epoch's val macro-F1 reported so the pruner can stop it."""

    def report(epoch: int, metrics: dict[str, float]) -> None:
        trial.report(metrics[METRIC], epoch)
        if trial.should_prune():
            tracking.set_tag("optuna_state", "PRUNED")
            raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {metrics[METRIC]:.4f})")

    result = train(cfg, epoch_callback=report, parent_run_id=parent_run_id, extra_tags=tags, run_name=name)
    trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
    trial.set_user_attr("test_macro_f1", result.get("test_macro_f1"))
    return result[f"best_{METRIC}"]


def objective(
    study_cfg: SearchConfig,
    base: TrainConfig,
    parent_run_id: str,
    space: dict[str, dict],
    worker: Worker | None = None,
    fit: Fit = fit_on_validation,
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: the trial's parameters over ``base``, scored by ``fit`` (one ``train`` by default;
    ``crossval.InnerValidation`` scores every outer fold's validation carve instead)."""

    def run_trial(trial: optuna.Trial) -> float:
        if worker is not None:  # which sampler proposed it: a repeated proposal can be traced to its seed
            trial.set_user_attr("worker", worker.number)
            trial.set_user_attr("sampler_seed", worker.seed)
        cfg = dataclasses.replace(
            with_params(base, suggest(trial, space)),
            experiment="search",
            ensemble=f"search-{study_cfg.study}",
            resume=False,
            overwrite=True,  # the trial's own folder
            out_dir=str(Path(base.out_dir).parent / "search" / study_cfg.study / f"trial_{trial.number:04d}"),
        )
        tags = {"study": study_cfg.study, "trial": trial.number, "baseline": bool(trial.user_attrs.get("baseline"))}
        tags |= {k: trial.user_attrs[k] for k in ("worker", "retry_of") if k in trial.user_attrs}
        return fit(cfg, trial, parent_run_id, tags, f"{study_cfg.study}-trial{trial.number:04d}")

    return run_trial


@tracking.tolerant  # a tracking server lost mid-study costs the tracking, not the study
def _mark_state(study: optuna.Study, trial: optuna.trial.FrozenTrial, uri: str | None) -> None:
    """Optuna callback: write the final trial state onto its MLflow run (pruned runs end FAILED in MLflow)."""
    for run in tracking.child_runs(study.user_attrs[PARENT_ATTR], f"tags.trial = '{trial.number}'", uri):
        tracking.log_to_run(run.info.run_id, tags={"optuna_state": trial.state.name}, uri=uri)


def summarise(study: optuna.Study, base: TrainConfig) -> dict[str, Any]:
    """Best vs baseline, written to the parent run with Optuna's plots; returns the numbers."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    baseline = next((t for t in complete if t.user_attrs.get("baseline")), None)
    states = {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    summary: dict[str, Any] = {
        "study": study.study_name,
        "trials": len(trials),
        "states": {k: v for k, v in states.items() if v},
    }
    if complete:
        best = study.best_trial
        summary |= {"best_trial": best.number, "best_value": best.value, "best_params": best.params}
    if baseline is not None:
        summary |= {"baseline_value": baseline.value, "improvement": summary["best_value"] - baseline.value}
    parent = study.user_attrs[PARENT_ATTR]
    metrics = {k: summary[k] for k in ("best_value", "baseline_value", "improvement", "trials") if k in summary}
    metrics |= {f"trials_{state.lower()}": count for state, count in summary["states"].items()}
    tags = {f"best.{k}": v for k, v in summary.get("best_params", {}).items()}
    tracking.log_to_run(parent, metrics, tags, base.tracking_uri)
    if len(complete) >= 2:
        _log_plots(parent, study, base.tracking_uri, importances=len(complete) >= MIN_TRIALS_FOR_IMPORTANCES)
    return summary


@tracking.tolerant
def _log_plots(run_id: str, study: optuna.Study, uri: str | None, importances: bool) -> None:
    import matplotlib  # heavy, and only for these two pictures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = [("optimization_history", ovm.plot_optimization_history)]
    if importances:
        plots.append(("param_importances", ovm.plot_param_importances))
    for name, plot in plots:
        try:
            ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            tracking.log_figure_to_run(run_id, fig, f"plots/{name}.png", uri)
            plt.close(fig)
        except (ValueError, RuntimeError) as err:  # e.g. importances need parameters that vary
            log.warning("skipping plot %s: %s", name, err)


def summary_table(study: optuna.Study, top: int = 5) -> Table:
    """The best complete trials and the baseline, state counts in the caption.

    Numbers never wrap; the parameters fold in the last column, between ``name=value`` items, so
    a table printed at 80 columns cuts no number (tests render it at 80).
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]  # a pruned trial's value is an early epoch's
    baseline = next((t for t in complete if t.user_attrs.get("baseline")), None)
    shown = sorted(complete, key=lambda t: t.value, reverse=True)[:top]
    if baseline is not None and baseline not in shown:
        shown.append(baseline)
    states = ", ".join(f"{n} {s.name}" for s in TrialState if (n := sum(t.state == s for t in trials)))
    table = Table(
        title=f"study {study.study_name}: best trials vs the baseline",
        caption=f"{len(trials)} trial{'s' * (len(trials) != 1)}: {states}" if trials else "no trials yet",
    )
    for col in ("trial", "val F1", "vs baseline"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("parameters", overflow="fold")
    for t in shown:
        delta = f"{t.value - baseline.value:+.4f}" if baseline is not None else ""
        label = f"{t.number} (baseline)" if t.user_attrs.get("baseline") else str(t.number)
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(t.params.items()))
        table.add_row(label, f"{t.value:.4f}", delta, params)
    return table


class OverBudget(RuntimeError):
    """A trial started when the study already had its ``--trials``: it stands down before any work."""


COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # a FAIL is retried or failed: not counted


def trials_taken(study: optuna.Study) -> int:
    """Trials finished or under way: what ``--trials`` bounds (queued and failed ones are not)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def trials_ahead(study: optuna.Study, number: int) -> int:
    """Finished trials, and running or queued ones numbered before trial ``number``: the places taken first."""
    waiting = (*COUNTED, TrialState.WAITING)
    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or t.number < number
        for t in study.get_trials(deepcopy=False, states=waiting)
        if t.number != number
    )


def run_search(cfg: SearchConfig, base: TrainConfig, fit: Fit = fit_on_validation) -> dict[str, Any]:
    """Run trials of the study (each scored by ``fit``) until it has ``cfg.trials``, counted over every
    worker; returns the study summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = join_study(cfg, base)
    study = worker.study
    run_trial = objective(cfg, base, study.user_attrs[PARENT_ATTR], resolve_space(cfg, base), worker, fit)
    under_way: list[int] = []  # the trial this worker runs, if any: the one a lost database interrupts

    def within_budget(trial: optuna.Trial) -> float:
        under_way[:] = [trial.number]
        if trials_ahead(study, trial.number) >= cfg.trials:  # another worker took the last place first
            trial.set_user_attr("over_budget", True)
            raise OverBudget(f"the study already has its {cfg.trials} trials")
        return run_trial(trial)

    deadline = None if cfg.timeout_s is None else time.monotonic() + cfg.timeout_s
    # A database that stops answering for longer than storage_retry_s ends the worker in one line (exit 2).
    with lost_in_one_line(worker.storage, lambda: under_way[0] if under_way else None):
        # --trials is the study's total over every worker (Optuna's n_trials counts per process: N workers
        # would run N times as many). A worker starts a trial while fewer are finished or running; of two
        # workers that start the last one at once, the later-numbered trial stands down (FAIL, over_budget).
        while trials_taken(study) < cfg.trials and (deadline is None or time.monotonic() < deadline):
            study.optimize(
                within_budget,
                n_trials=1,
                catch=(Exception,),
                callbacks=[lambda s, t: _mark_state(s, t, base.tracking_uri)],
            )
            under_way.clear()  # told: a lost database from here on interrupts no trial
        summary = summarise(study, base)
        console.print(summary_table(study))
    if "improvement" in summary:
        console.print(
            f"best trial {summary['best_trial']}: {summary['best_value']:.4f} "
            f"vs baseline {summary['baseline_value']:.4f} "
            f"({summary['improvement']:+.4f}); trials {summary['states']}"
        )
    _print_links(base.tracking_uri)
    return summary


@tracking.tolerant  # a lost tracking server is said once at the end (run_cli), not here
def _print_links(tracking_uri: str | None) -> None:
    uri = tracking.resolve_tracking_uri(tracking_uri)
    console.print(f"MLflow: {links.ui_command(uri)}", soft_wrap=True, highlight=False, markup=False)
    console.print(
        f"  then {tracking.runs_view_url('search', uri, links.ui_base(uri))}", soft_wrap=True, highlight=False
    )
