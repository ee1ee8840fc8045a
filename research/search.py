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
- Without a ``search.space``, the space is hidden size, layers, heads and dropout
  around the config (``default_space``); an explicit empty space is refused.
- MLflow: one parent run per study (experiment ``search``), created with the
  study, and one nested run per trial with its params, per-epoch metrics and
  state; the parent gets the best params, the baseline's score, the improvement,
  and Optuna's plots.

Several workers may start at once (the study is set up once: a file lock on a
journal, the winner of ``create_study`` on RDB), e.g.
``for i in 1 2; do python train.py --search ... --trials 6 & done; wait``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from research import tracking
from research.config import SearchConfig, TrainConfig, load_config
from research.distributed import file_lock
from research.errors import ConfigError
from research.models import attention_width
from research.training import train

log = logging.getLogger(__name__)
console = Console()
METRIC = "val_macro_f1"
PARENT_ATTR = "mlflow_parent_run_id"
WORKERS_ATTR = "workers_started"
HEARTBEAT_ATTR = "heartbeat"
RUN_ATTRS = ("worker", "sampler_seed", "mlflow_run_id", "test_macro_f1")  # of one run, not of its parameters
# Optuna marks its heartbeat API experimental; we rely on it on purpose.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# ----------------------------------------------------------------------- space


def suggest(trial: optuna.Trial, space: dict[str, dict]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            values[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False))
            )
        else:
            values[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False))
            )
    return values


def default_space(base: TrainConfig) -> dict[str, dict]:
    """Hidden size, layers, heads and dropout around the config: the config's own values lie inside."""
    if base.model == "linear":  # a probe has no width or depth: its knobs are regularisation and step size
        return {
            "dropout": {"type": "float", "low": 0.0, "high": max(0.5, base.dropout)},
            "weight_decay": {"type": "float", "low": 1e-4, "high": max(1.0, base.weight_decay), "log": True},
            "lr": {"type": "float", "low": base.lr / 10, "high": base.lr * 10, "log": True},
        }
    h, k = base.hidden_size, base.num_heads
    hidden = sorted({max(8, h // 2), h, 2 * h})
    space: dict[str, dict] = {
        "hidden_size": {"type": "categorical", "choices": hidden},
        "num_layers": {"type": "int", "low": max(1, base.num_layers - 1), "high": base.num_layers + 1},
        "dropout": {"type": "float", "low": 0.0, "high": max(0.5, base.dropout)},
    }
    if attention_width(base.model, h) is not None:
        widths = [attention_width(base.model, x) for x in hidden]
        hidden = [x for x, w in zip(hidden, widths, strict=True) if w % k == 0]  # the baseline's heads must fit
        heads = sorted(
            {n for n in (max(1, k // 2), k, 2 * k) if all(attention_width(base.model, x) % n == 0 for x in hidden)}
        )
        space["hidden_size"]["choices"] = hidden
        space["num_heads"] = {"type": "categorical", "choices": heads}
    return space


def resolve_space(cfg: SearchConfig, base: TrainConfig) -> dict[str, dict]:
    """The configured space, or the default one when none is given; an empty one is an error."""
    if cfg.space is None:
        return default_space(base)
    if not cfg.space:
        raise ConfigError(
            "search.space is empty: a study with nothing to search would only repeat the baseline. "
            "Give {param: {type, low, high | choices}} or leave search.space out for the default space."
        )
    return cfg.space


def _grid(spec: dict) -> list[Any]:
    if spec["type"] == "categorical":
        return list(spec["choices"])
    if spec["type"] == "int":
        return list(range(int(spec["low"]), int(spec["high"]) + 1))
    return [float(spec["low"]), float(spec["high"])]


def check_space(space: dict[str, dict], base: TrainConfig) -> None:
    """Every field exists, every (hidden, heads) combination is valid, and the baseline lies inside."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(space) - fields)
    if unknown:
        raise ConfigError(f"search space names unknown TrainConfig field(s) {unknown}")
    hidden = _grid(space["hidden_size"]) if "hidden_size" in space else [base.hidden_size]
    heads = _grid(space["num_heads"]) if "num_heads" in space else [base.num_heads]
    bad = [(h, k) for h, k in itertools.product(hidden, heads) if (attention_width(base.model, h) or k) % k]
    if bad:
        raise ConfigError(f"search space has (hidden_size, num_heads) pairs invalid for {base.model}: {bad}")
    for name, spec in space.items():
        value = getattr(base, name)
        inside = (
            value in spec["choices"]
            if spec["type"] == "categorical"
            else float(spec["low"]) <= value <= float(spec["high"])
        )
        if not inside:
            raise ConfigError(f"baseline {name}={value!r} lies outside the search space {spec}; widen the space")


# ---------------------------------------------------------------------- study


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal file with Optuna's heartbeat protocol, which only RDB storages implement in Optuna 5.

    The worker's heartbeat thread (started by ``study.optimize``) writes the time into a
    system attribute of its RUNNING trial every ``interval`` seconds; before each trial,
    ``optimize`` fails the RUNNING trials whose last beat is older than ``grace`` seconds
    and hands them to ``callback``. A live worker's trial always has a fresh beat. Unlike
    RDB storages, fractions of a second are allowed (tests use them).
    """

    def __init__(self, path: str, interval: float, grace: float, callback: Any) -> None:
        super().__init__(JournalFileBackend(path))
        self._interval, self._grace, self._callback = interval, grace, callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker took this one for dead (a stall longer than stale_after_s) and queued it again;
            # without this the heartbeat thread would die with a traceback.
            log.warning("trial %d was failed by another worker while still running; raise stale_after_s", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # A trial whose worker died before its first beat counts from its start.
            start = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - trial.system_attrs.get(HEARTBEAT_ATTR, start) > self._grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> float | None:  # type: ignore[override]
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self._callback


def storage_for(cfg: SearchConfig, uri: str | None = None) -> tuple[optuna.storages.BaseStorage, Path | None]:
    """The Optuna storage with heartbeats, and the file to lock around study creation (None for RDB URLs)."""
    callback = StaleTrialHandler(uri)
    if cfg.storage and "://" in cfg.storage:
        interval = max(1, round(cfg.heartbeat_s))  # RDBStorage takes whole seconds only
        grace = max(2 * interval, round(cfg.stale_after_s))
        storage = RDBStorage(
            cfg.storage, heartbeat_interval=interval, grace_period=grace, heartbeat_stale_trial_callback=callback
        )
        return storage, None
    path = Path(cfg.storage or Path("mlruns") / "optuna" / f"{cfg.study}.journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    interval = max(0.1, cfg.heartbeat_s)
    # Two missed beats at least: one late write under a contended file lock must not kill a live trial.
    grace = max(2 * interval, cfg.stale_after_s)
    return HeartbeatJournalStorage(str(path), interval, grace, callback), path


class StaleTrialHandler:
    """A dead worker's trial: end its MLflow run (KILLED, ``optuna_state=FAIL``) and queue its parameters again.

    A trial is retried once (``max_retry``): parameters that kill their worker twice (e.g. out of
    memory) are not tried a third time. The retry carries the user attr ``retry_of`` (the trial it
    retries) and Optuna's own ``failed_trial``/``retry_history`` system attrs.
    """

    def __init__(self, uri: str | None, max_retry: int = 1) -> None:
        self.uri, self.max_retry = uri, max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        parent = study.user_attrs.get(PARENT_ATTR)
        if parent:
            for run in tracking.child_runs(parent, f"tags.trial = '{trial.number}'", self.uri):
                tracking.log_to_run(run.info.run_id, tags={"optuna_state": "FAIL"}, uri=self.uri)
                if run.info.status == "RUNNING":
                    tracking.terminate_run(run.info.run_id, "KILLED", self.uri)
        # As optuna's RetryHeartbeatStaleTrialCallback, plus a user attr that the MLflow tags and tables show.
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            log.warning(
                "trial %d lost its worker (no heartbeat): failed, retried %d times already",
                trial.number,
                len(history) - 1,
            )
            return
        log.warning("trial %d lost its worker (no heartbeat): failed, its parameters queued again", trial.number)
        user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_ATTRS}
        study.add_trial(
            optuna.create_trial(
                state=TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=user_attrs | {"retry_of": trial.number},
                system_attrs={"failed_trial": history[0], "retry_history": history},
            )
        )


def worker_seed(study_seed: int, worker: int, shared_machines: bool) -> int:
    """A sampler seed per worker: reproducible for (study seed, worker number); ``shared_machines`` mixes in
    host and pid, for a number that another machine may have drawn too."""
    entropy = [study_seed, worker]
    if shared_machines:  # no file lock across machines: two workers could draw one number
        entropy += [os.getpid(), int.from_bytes(socket.gethostname().encode()[:8].ljust(8, b"\0"), "little")]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


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
    """This process's place in a study: its number (handed out by the study) and its sampler seed."""

    study: optuna.Study
    number: int
    seed: int


def _create_or_load(name: str, storage: optuna.storages.BaseStorage) -> tuple[optuna.Study, bool]:
    try:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage), False


def _set_up(study: optuna.Study, cfg: SearchConfig, base: TrainConfig, space: dict[str, dict]) -> None:
    """Once per study: the baseline as trial 0 and the MLflow parent run."""
    if cfg.enqueue_baseline:
        study.enqueue_trial({name: getattr(base, name) for name in space}, user_attrs={"baseline": True})
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
    return Worker(study, worker, seed)


def prepare_study(cfg: SearchConfig, base: TrainConfig) -> optuna.Study:
    """Create or load the study (see ``join_study``); returns it loaded with this worker's own sampler."""
    return join_study(cfg, base).study


def objective(
    study_cfg: SearchConfig, base: TrainConfig, parent_run_id: str, space: dict[str, dict], worker: Worker | None = None
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective: one ``train(cfg)`` with the trial's parameters, reporting each epoch."""

    def run_trial(trial: optuna.Trial) -> float:
        if worker is not None:  # which sampler proposed it: a repeated proposal can be traced to its seed
            trial.set_user_attr("worker", worker.number)
            trial.set_user_attr("sampler_seed", worker.seed)
        params = suggest(trial, space)
        cfg = dataclasses.replace(
            base,
            **params,
            experiment="search",
            ensemble=f"search-{study_cfg.study}",
            resume=False,
            overwrite=True,  # the trial's own folder
            out_dir=str(Path(base.out_dir).parent / "search" / study_cfg.study / f"trial_{trial.number:04d}"),
        )

        def report(epoch: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[METRIC], epoch)
            if trial.should_prune():
                tracking.set_tag("optuna_state", "PRUNED")
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {metrics[METRIC]:.4f})")

        tags = {"study": study_cfg.study, "trial": trial.number, "baseline": bool(trial.user_attrs.get("baseline"))}
        tags |= {k: trial.user_attrs[k] for k in ("worker", "retry_of") if k in trial.user_attrs}
        name = f"{study_cfg.study}-trial{trial.number:04d}"
        result = train(cfg, epoch_callback=report, parent_run_id=parent_run_id, extra_tags=tags, run_name=name)
        trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
        trial.set_user_attr("test_macro_f1", result.get("test_macro_f1"))
        return result[f"best_{METRIC}"]

    return run_trial


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
        _log_plots(parent, study, base.tracking_uri)
    return summary


def _log_plots(run_id: str, study: optuna.Study, uri: str | None) -> None:
    import matplotlib  # heavy, and only for these two pictures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    for name, plot in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
    ):
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
        caption=f"{len(trials)} trials: {states}" if trials else "no trials yet",
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


def run_search(cfg: SearchConfig, base: TrainConfig) -> dict[str, Any]:
    """Run this worker's trials of the study; returns the study summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = join_study(cfg, base)
    study = worker.study
    if cfg.trials > 0:
        study.optimize(
            objective(cfg, base, study.user_attrs[PARENT_ATTR], resolve_space(cfg, base), worker),
            n_trials=cfg.trials,
            timeout=cfg.timeout_s,
            catch=(Exception,),
            callbacks=[lambda s, t: _mark_state(s, t, base.tracking_uri)],
        )
    summary = summarise(study, base)
    console.print(summary_table(study))
    if "improvement" in summary:
        console.print(
            f"best trial {summary['best_trial']}: {summary['best_value']:.4f} "
            f"vs baseline {summary['baseline_value']:.4f} "
            f"({summary['improvement']:+.4f}); trials {summary['states']}"
        )
    uri = tracking.resolve_tracking_uri(base.tracking_uri)
    console.print(f"MLflow: mlflow ui --backend-store-uri {uri}, then {tracking.runs_view_url('search', uri)}")
    return summary


def search_config_from_args(args: Any) -> SearchConfig:
    overrides = {k: getattr(args, k) for k in ("study", "trials", "storage") if getattr(args, k, None) is not None}
    return load_config(SearchConfig, "search", getattr(args, "config", None), overrides)
