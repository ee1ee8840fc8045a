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
- MLflow: one parent run per study (experiment ``search``), created with the
  study, and one nested run per trial with its params, per-epoch metrics and
  state; the parent gets the best params, the baseline's score, the improvement,
  and Optuna's plots.

Several workers: create the study first (``--trials 0``), then start them, e.g.
``for i in 1 2; do python train.py --search ... --trials 6 & done; wait``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import optuna

from research import tracking
from research.cli import console
from research.config import ConfigError, SearchConfig, TrainConfig, load_config
from research.distributed import file_lock

log = logging.getLogger(__name__)
METRIC = "val_macro_f1"
PARENT_ATTR = "mlflow_parent_run_id"


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
    from research.models import attention_width

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


def storage_for(cfg: SearchConfig) -> tuple[optuna.storages.BaseStorage | str, Path | None]:
    """The Optuna storage, and the file to lock around study creation (None for RDB URLs)."""
    if cfg.storage and "://" in cfg.storage:
        return cfg.storage, None
    path = Path(cfg.storage or Path("mlruns") / "optuna" / f"{cfg.study}.journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path))), path


def make_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.pruner_startup_trials, n_warmup_steps=cfg.pruner_warmup_epochs
        )
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.pruner_warmup_epochs))
    return optuna.pruners.NopPruner()


def prepare_study(cfg: SearchConfig, base: TrainConfig) -> optuna.Study:
    """Create or load the study; on creation, enqueue the baseline and open the MLflow parent run."""
    check_space(cfg.space, base)
    storage, lock_path = storage_for(cfg)
    tracking.get_experiment_id("search", base.tracking_uri)  # the MLflow store exists before workers race
    # Serialise creation: two workers must not both enqueue the baseline or open a parent run.
    with file_lock(lock_path.with_suffix(".lock")) if lock_path else contextlib.nullcontext():
        study = optuna.create_study(
            study_name=cfg.study,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=cfg.sampler_seed),
            pruner=make_pruner(cfg),
        )
        if PARENT_ATTR not in study.user_attrs:
            if cfg.enqueue_baseline:
                study.enqueue_trial({name: getattr(base, name) for name in cfg.space}, user_attrs={"baseline": True})
            with tracking.start_run(
                "search",
                run_name=f"study-{cfg.study}",
                uri=base.tracking_uri,
                tags={"study": cfg.study, "model": base.model},
            ) as parent:
                tracking.log_params(
                    {f"space.{k}": v for k, v in cfg.space.items()} | {"pruner": cfg.pruner, "base_model": base.model}
                )
            study.set_user_attr(PARENT_ATTR, parent.info.run_id)
    return study


def objective(study_cfg: SearchConfig, base: TrainConfig, parent_run_id: str):  # an Optuna objective
    from research.training import train

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, study_cfg.space)
        cfg = dataclasses.replace(
            base,
            **params,
            experiment="search",
            ensemble=f"search-{study_cfg.study}",
            resume=False,
            out_dir=str(Path(base.out_dir).parent / "search" / study_cfg.study / f"trial_{trial.number:04d}"),
        )

        def report(epoch: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[METRIC], epoch)
            if trial.should_prune():
                import mlflow

                mlflow.set_tag("optuna_state", "PRUNED")
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (val macro-F1 {metrics[METRIC]:.4f})")

        tags = {"study": study_cfg.study, "trial": trial.number, "baseline": bool(trial.user_attrs.get("baseline"))}
        result = train(cfg, epoch_callback=report, parent_run_id=parent_run_id, extra_tags=tags)
        trial.set_user_attr("mlflow_run_id", result["mlflow_run_id"])
        trial.set_user_attr("test_macro_f1", result.get("test_macro_f1"))
        return result[f"best_{METRIC}"]

    return run_trial


def _mark_state(study: optuna.Study, trial: optuna.trial.FrozenTrial, uri: str | None) -> None:
    """Optuna callback: write the final trial state onto its MLflow run (pruned runs end FAILED in MLflow)."""
    import mlflow

    client = mlflow.MlflowClient(tracking.resolve_tracking_uri(uri))
    parent = study.user_attrs[PARENT_ATTR]
    runs = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}' and tags.trial = '{trial.number}'",
    )
    for run in runs:
        client.set_tag(run.info.run_id, "optuna_state", trial.state.name)


def summarise(study: optuna.Study, base: TrainConfig) -> dict[str, Any]:
    """Best vs baseline, written to the parent run with Optuna's plots; returns the numbers."""
    import mlflow

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
    client = mlflow.MlflowClient(tracking.resolve_tracking_uri(base.tracking_uri))
    parent = study.user_attrs[PARENT_ATTR]
    for key in ("best_value", "baseline_value", "improvement", "trials"):
        if key in summary:
            client.log_metric(parent, key, float(summary[key]))
    for key, value in summary.get("best_params", {}).items():
        client.set_tag(parent, f"best.{key}", str(value))
    for state, count in summary["states"].items():
        client.log_metric(parent, f"trials_{state.lower()}", count)
    if len(complete) >= 2:
        _log_plots(client, parent, study)
    return summary


def _log_plots(client: Any, run_id: str, study: optuna.Study) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    for name, plot in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
    ):
        try:
            ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            client.log_figure(run_id, fig, f"plots/{name}.png")
            plt.close(fig)
        except (ValueError, RuntimeError) as err:  # e.g. importances need parameters that vary
            log.warning("skipping plot %s: %s", name, err)


def summary_table(study: optuna.Study, top: int = 5) -> Any:
    from rich.table import Table

    trials = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    baseline = next((t for t in trials if t.user_attrs.get("baseline")), None)
    shown = sorted(trials, key=lambda t: t.value, reverse=True)[:top]
    if baseline is not None and baseline not in shown:
        shown.append(baseline)
    names = sorted({k for t in shown for k in t.params})
    table = Table(title=f"study {study.study_name}: best trials vs the baseline (val macro-F1)")
    for col in ("trial", "state", METRIC, "vs baseline", *names):
        table.add_column(col, justify="right")
    for t in shown:
        delta = f"{t.value - baseline.value:+.4f}" if baseline is not None else ""
        label = f"{t.number} (baseline)" if t.user_attrs.get("baseline") else str(t.number)
        cells = [
            f"{t.params[n]:.3g}" if isinstance(t.params.get(n), float) else str(t.params.get(n, "")) for n in names
        ]
        table.add_row(label, t.state.name, f"{t.value:.4f}", delta, *cells)
    return table


def run_search(cfg: SearchConfig, base: TrainConfig) -> dict[str, Any]:
    """Run this worker's trials of the study; returns the study summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = prepare_study(cfg, base)
    if cfg.trials > 0:
        study.optimize(
            objective(cfg, base, study.user_attrs[PARENT_ATTR]),
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
    return summary


def search_config_from_args(args: Any) -> SearchConfig:
    overrides = {k: getattr(args, k) for k in ("study", "trials", "storage") if getattr(args, k, None) is not None}
    return load_config(SearchConfig, "search", getattr(args, "config", None), overrides)
