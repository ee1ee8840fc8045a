from __future__ import annotations

import collections
import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from rich.console import Console

from research import tracking
from research.config import SearchConfig, TrainConfig
from research.errors import ConfigError
from research.models import list_models, model_arguments
from research.tuning.search import join_study, prepare_study, run_search, summary_table
from research.tuning.space import check_space, default_space, resolve_space, suggest, with_params
from research.tuning.storage import PARENT_ATTR, RIDE_THROUGH, RetryingRDBStorage, storage_for, worker_seed

from .conftest import ROOT
from .test_training import tiny_train_config

SPACE = {  # around base_config's model, mean_pool
    "model_args.mean_pool.hidden_size": {"type": "categorical", "choices": [16, 32]},
    "model_args.mean_pool.dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


@pytest.fixture()
def store(session_tracking_store: str) -> str:
    """The session's MLflow store (a new one costs ~2 s of migrations); tests read only their own study's runs."""
    return session_tracking_store


def search_config(tmp_path: Path, **overrides) -> SearchConfig:
    values = dict(study="unit", trials=2, storage=str(tmp_path / "study.journal"), space=SPACE, pruner="none")
    return SearchConfig(**{**values, **overrides})


def base_config(tiny_features: Path, tmp_path: Path, tracking_uri: str, **overrides) -> TrainConfig:
    return tiny_train_config(
        tiny_features, tmp_path / "runs" / "base", **{"epochs": 3, "tracking_uri": tracking_uri, **overrides}
    )


def trial_runs(study: optuna.Study, uri: str, filter_string: str = "") -> list:
    """The study's trial runs in MLflow (nested under its parent run)."""
    return tracking.child_runs(study.user_attrs[PARENT_ATTR], filter_string, uri)


# ----------------------------------------------------------------------- space


def test_space_is_checked_before_any_trial(tiny_features: Path, tmp_path: Path) -> None:
    sizes = {"hidden_size": 32, "num_layers": 1, "num_heads": 4}
    base = tiny_train_config(tiny_features, tmp_path, model="transformer", model_args={"transformer": sizes})
    check_space(
        {
            "model_args.transformer.hidden_size": {"type": "categorical", "choices": [32, 64]},
            "model_args.transformer.num_heads": {"type": "categorical", "choices": [2, 4]},
        },
        base,
    )
    with pytest.raises(ConfigError, match=r"do not fit: \[\('transformer', 36, 8\)\]"):
        check_space(
            {
                "model_args.transformer.hidden_size": {"type": "categorical", "choices": [32, 36]},
                "model_args.transformer.num_heads": {"type": "categorical", "choices": [4, 8]},
            },
            base,
        )
    with pytest.raises(ConfigError, match="outside the search space"):
        check_space({"lr": {"type": "float", "low": 0.1, "high": 0.2}}, base)


def test_default_space_surrounds_the_config_and_an_empty_space_is_refused() -> None:
    def sized(model: str, **sizes) -> TrainConfig:  # every family at these sizes, where it takes them
        entries = {m: {k: v for k, v in sizes.items() if k in model_arguments(m)} for m in list_models()}
        return TrainConfig(model=model, model_args=entries)

    demo = sized("super_enhanced", hidden_size=128, num_layers=1, num_heads=4, dropout=0.2)  # the demo's sizes
    space = resolve_space(SearchConfig(space=None), demo)
    assert space == default_space(demo)
    assert set(space) == {
        f"model_args.super_enhanced.{k}" for k in ("hidden_size", "num_layers", "num_heads", "dropout")
    }
    assert space["model_args.super_enhanced.hidden_size"]["choices"] == [64, 128, 256]
    assert space["model_args.super_enhanced.num_heads"]["choices"] == [2, 4, 8]
    mean_pool = {"model_args.mean_pool.hidden_size", "model_args.mean_pool.num_layers", "model_args.mean_pool.dropout"}
    assert set(default_space(dataclasses.replace(demo, model="mean_pool"))) == mean_pool
    for model in list_models():  # every model, demo-sized, seed-sized and at its defaults: valid pairs, baseline inside
        seed = sized(model, hidden_size=768, num_layers=4, num_heads=12, dropout=0.2)
        for base in (dataclasses.replace(demo, model=model), seed, TrainConfig(model=model)):
            check_space(default_space(base), base)
    with pytest.raises(ConfigError, match=r"search\.space is empty.*leave search\.space out"):
        resolve_space(SearchConfig(space={}), demo)


# ---------------------------------------------------------------------- study


def test_trial_zero_is_the_baseline_and_restarts_continue_numbering(
    tiny_features: Path, tmp_path: Path, store: str
) -> None:
    base = base_config(tiny_features, tmp_path, store, epochs=2)
    cfg = search_config(tmp_path)
    run_search(cfg, base)
    assert run_search(cfg, base)["states"] == {"COMPLETE": 2}  # --trials is the study's total: it has them
    summary = run_search(dataclasses.replace(cfg, trials=4), base)  # more: resumes, as the next worker
    study = optuna.load_study(study_name="unit", storage=storage_for(cfg)[0])
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    own = base.model_args["mean_pool"]
    assert trials[0].params == {
        "model_args.mean_pool.hidden_size": own["hidden_size"],
        "model_args.mean_pool.dropout": own["dropout"],
        "lr": base.lr,
    }
    assert trials[0].user_attrs["baseline"] is True
    assert [t.user_attrs["worker"] for t in trials] == [0, 0, 2, 2]  # worker 1 joined and found nothing to do
    assert [t.user_attrs["sampler_seed"] for t in trials] == [worker_seed(0, w, False) for w in (0, 0, 2, 2)]
    assert (
        summary["baseline_value"] == trials[0].value
        and summary["improvement"] == summary["best_value"] - trials[0].value
    )
    client = tracking.mlflow_client(store)
    parent = client.get_run(study.user_attrs[PARENT_ATTR])
    assert parent.data.metrics["trials"] == 4 and "best_value" in parent.data.metrics
    children = trial_runs(study, store)
    assert sorted(int(r.data.tags["trial"]) for r in children) == [0, 1, 2, 3]
    assert {r.info.run_name for r in children} == {f"unit-trial{n:04d}" for n in range(4)}
    assert all(r.data.tags["optuna_state"] == "COMPLETE" for r in children)
    assert {r.data.params["model.hidden_size"] for r in children} <= {"16", "32"}
    # Importances from 4 trials would rank noise: only the history.
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "plots")} == {"plots/optimization_history.png"}
    # The UI opens the experiment on its runs, and the default view's columns are ones these runs have.
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    have = {f"metrics.`{k}`" for r in [parent, *children] for k in r.data.metrics}
    have |= {f"params.`{k}`" for r in children for k in r.data.params} | {"attributes.`Duration`"}
    have |= {f"tags.`{k}`" for r in children for k in r.data.tags}
    columns = json.loads(experiment.tags["mlflow.sharedViewState.default"])["selectedColumns"]
    # a family's own columns (model.num_heads) are on the runs of families that take them
    others = {f"params.`model.{k}`" for k in ("num_heads",) if k not in model_arguments("mean_pool")}
    assert set(columns) - others <= have, set(columns) - others - have


def test_pruner_stops_a_hopeless_trial_early(tiny_features: Path, tmp_path: Path, store: str) -> None:
    """Designed case: after the baseline, a trial with a learning rate too small to learn anything."""
    base = base_config(tiny_features, tmp_path, store, epochs=6, patience=10)
    space = {"lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}}
    cfg = search_config(
        tmp_path, space=space, pruner="median", pruner_startup_trials=1, pruner_warmup_epochs=1, trials=0
    )
    study = prepare_study(cfg, base)
    study.enqueue_trial({"lr": 1e-9})
    run_search(dataclasses.replace(cfg, trials=2), base)
    hopeless = study.get_trials()[1]
    assert hopeless.params["lr"] == 1e-9
    assert hopeless.state == TrialState.PRUNED
    assert max(hopeless.intermediate_values) < base.epochs - 1  # stopped before its last epoch


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning")  # ask() by hand
def test_each_worker_has_its_own_seed_and_a_lone_worker_is_reproducible(
    tiny_features: Path, tmp_path: Path, store: str
) -> None:
    base = base_config(tiny_features, tmp_path, store)

    def first_proposal(study: optuna.Study) -> dict:
        study.ask()  # the baseline
        return suggest(study.ask(), SPACE)

    fresh = [join_study(search_config(tmp_path, storage=str(tmp_path / f"{i}.journal")), base) for i in range(2)]
    assert [w.number for w in fresh] == [0, 0] and fresh[0].seed == fresh[1].seed == worker_seed(0, 0, False)
    proposal = first_proposal(fresh[0].study)
    assert first_proposal(fresh[1].study) == proposal  # one worker: the same study again
    restarted = join_study(search_config(tmp_path, storage=str(tmp_path / "0.journal")), base)
    assert restarted.number == 1 and restarted.seed != fresh[0].seed
    assert suggest(restarted.study.ask(), SPACE) != proposal  # a restart does not replay worker 0
    reseeded = join_study(search_config(tmp_path, storage=str(tmp_path / "2.journal"), sampler_seed=1), base)
    assert reseeded.number == 0 and reseeded.seed != fresh[0].seed

    # RDB (several machines, no file lock): the creator is worker 0 as on a journal; a later worker's number
    # might be read by another machine at once, so host and pid go into its seed.
    rdb = search_config(tmp_path, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    creator, joiner = join_study(rdb, base), join_study(rdb, base)
    assert (creator.number, creator.seed) == (0, fresh[0].seed)
    assert joiner.number == 1 and joiner.seed not in {worker_seed(0, 1, False), creator.seed}
    assert joiner.study.user_attrs[PARENT_ATTR] == creator.study.user_attrs[PARENT_ATTR]  # set up once
    assert len(joiner.study.get_trials()) == 1  # one baseline


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used:UserWarning")  # ask() by hand
@pytest.mark.parametrize("kind", ["journal", "rdb"])
def test_a_dead_trial_is_failed_and_retried_once_and_a_live_one_is_left_alone(tmp_path: Path, kind: str) -> None:
    """Two dead trials (one beat, then nothing; one of them already a retry) and a live one older than the grace."""
    if kind == "journal":  # sub-second beats are fine on a journal; RDBStorage takes whole seconds
        cfg = SearchConfig(study="hb", storage=str(tmp_path / "hb.journal"), heartbeat_s=0.2, stale_after_s=1.0)
        wait = 1.5
    else:  # SQLite's clock (CURRENT_TIMESTAMP) counts whole seconds: 3.2 s may read as 3, never as 2
        cfg = SearchConfig(study="hb", storage=f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_s=1, stale_after_s=2)
        wait = 3.2
    storage = storage_for(cfg)[0]
    study = optuna.create_study(study_name="hb", storage=storage, direction="maximize")
    distributions = {"x": FloatDistribution(0, 1)}
    dead, dead_retry = study.ask(distributions), study.ask(distributions)
    for trial in (dead, dead_retry):
        storage.record_heartbeat(trial._trial_id)  # their workers beat once and were killed
    storage.set_trial_system_attr(dead_retry._trial_id, "retry_history", [7])  # itself the retry of trial 7
    seen: dict[str, TrialState] = {}

    def objective(trial: optuna.Trial) -> float:
        time.sleep(wait)  # every trial is now older than the grace period
        other_worker = optuna.load_study(study_name="hb", storage=storage_for(cfg)[0])
        optuna.storages.fail_stale_trials(other_worker)
        seen["live"] = other_worker.get_trials()[trial.number].state
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=1)
    assert seen["live"] == TrialState.RUNNING  # its heartbeat is fresh: another worker left it alone
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE, TrialState.WAITING]
    retry = trials[3]
    assert retry.params == dead.params and retry.user_attrs["retry_of"] == dead.number
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == dead.number
    # dead_retry was a retry already: failed, not queued a second time


def test_every_storage_call_that_opens_a_database_session_rides_through_an_outage() -> None:
    """The retried methods are those of the installed Optuna that open a session: a method a new Optuna adds or
    renames would otherwise fail on the first database restart (tests/test_servers.py restarts one)."""
    import inspect

    from optuna.storages import RDBStorage

    opening = {
        name
        for name, method in vars(RDBStorage).items()
        if inspect.isfunction(method) and "_create_scoped_session(" in inspect.getsource(method)
    }
    assert opening == set(RIDE_THROUGH)
    assert all(getattr(RetryingRDBStorage, name).__wrapped__ for name in RIDE_THROUGH)


def worker_args(
    tiny_features: Path,
    tmp_path: Path,
    tracking_uri: str,
    cfg: SearchConfig,
    trials: int,
    epochs: int = 2,
    stale_after_s: float = 3,
) -> list[str]:
    """``train.py --search`` on ``cfg``'s study: a tiny model on the tiny features, a beat every 1/4 of stale_after_s.

    By default a trial is stale after 3 s: a killed worker's trial is found quickly, a live one's never.
    """
    config = tmp_path / f"search-{stale_after_s}.yaml"
    config.write_text(
        f"search:\n  space: {SPACE}\n  pruner: none\n  heartbeat_s: {stale_after_s / 4}\n"
        f"  stale_after_s: {stale_after_s}\n"
    )
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "--search",
        "--config",
        str(config),
        "--study",
        "unit",
        "--trials",
        str(trials),
        "--storage",
        cfg.storage,
        "--features-dir",
        str(tiny_features),
        "--out-dir",
        str(tmp_path / "runs" / "w"),
        "--model",
        "mean_pool",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        f"tracking_uri={tracking_uri}",
        "model_args={mean_pool: {hidden_size: 32, num_layers: 1}}",
    ]


def test_two_worker_processes_share_one_study(tiny_features: Path, tmp_path: Path, store: str) -> None:
    """Create the study, then two worker processes with --trials 4 on one journal file: 4 distinct trials."""
    base = base_config(tiny_features, tmp_path, store)
    cfg = search_config(tmp_path, trials=0)
    prepare_study(cfg, base)  # worker 0
    # A generous stale window: two processes on 2 cores may starve a heartbeat thread for a few seconds,
    # and this test is about sharing; failing a live trial is covered by the heartbeat test above.
    args = worker_args(tiny_features, tmp_path, store, cfg, trials=4, epochs=1, stale_after_s=60)
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    study = optuna.load_study(study_name="unit", storage=storage_for(cfg)[0])
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)  # no live trial was taken for dead
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    proposed = [tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("baseline")]
    assert len(set(proposed)) == len(proposed) == 3  # the workers did not propose the same parameters
    assert set(collections.Counter(t.user_attrs["worker"] for t in trials)) <= {1, 2}  # 4 between them
    assert all(t.user_attrs["sampler_seed"] == worker_seed(0, t.user_attrs["worker"], False) for t in trials)
    assert {int(r.data.tags["worker"]) for r in trial_runs(study, store)} == {1, 2}


def test_a_killed_worker_s_trial_is_failed_and_retried_by_the_next_worker(
    tiny_features: Path, tmp_path: Path, store: str
) -> None:
    base = base_config(tiny_features, tmp_path, store)
    cfg = search_config(tmp_path, trials=0)
    study = prepare_study(cfg, base)
    worker = subprocess.Popen(
        worker_args(tiny_features, tmp_path, store, cfg, trials=50, epochs=4),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not any(t.state == TrialState.RUNNING and t.intermediate_values for t in study.get_trials()):
        assert time.time() < deadline and worker.poll() is None
        time.sleep(0.05)  # the baseline in the middle of training: parameters drawn, an epoch reported
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = study.get_trials()
    (killed,) = [t for t in before if t.state == TrialState.RUNNING]
    (run,) = trial_runs(study, store, f"tags.trial = '{killed.number}'")
    assert run.info.status == "RUNNING"  # what a kill -9 leaves behind
    # The next worker judges with its own stale_after_s: a short one, passed before it starts (it would be,
    # anyway, by the time it has imported torch), finds the dead trial without a wait.
    time.sleep(max(0.0, killed.system_attrs["heartbeat"] + 0.6 - time.time()))
    restarted = subprocess.run(
        worker_args(tiny_features, tmp_path, store, cfg, trials=1, stale_after_s=0.5),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restarted.returncode == 0, restarted.stdout[-2000:]
    after = study.get_trials()
    assert [t.number for t in after] == [0, 1]  # same study, numbering continues
    # The dead worker's trial is failed, not left RUNNING, and its parameters were run again: still the baseline.
    assert after[killed.number].state == TrialState.FAIL
    retry = after[-1]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["retry_of"] == killed.number and retry.user_attrs["worker"] == 2
    assert retry.user_attrs["baseline"] is True
    parent = tracking.mlflow_client(store).get_run(study.user_attrs[PARENT_ATTR])
    assert parent.data.metrics["baseline_value"] == retry.value  # the study still answers "did we beat it?"
    (run,) = trial_runs(study, store, f"tags.trial = '{killed.number}'")
    assert run.info.status == "KILLED" and run.data.tags["optuna_state"] == "FAIL"
    (rerun,) = trial_runs(study, store, f"tags.trial = '{retry.number}'")
    assert rerun.info.status == "FINISHED" and rerun.data.tags["retry_of"] == str(killed.number)


# ----------------------------------------------------------------------- output


def test_summary_table_keeps_every_number_at_80_columns() -> None:
    """Eight parameters with long names; the best five and the baseline shown, a pruned trial's value not."""
    study = optuna.create_study(study_name="a-study-with-a-long-name", direction="maximize")
    distributions = {
        "classifier_dropout": FloatDistribution(0.0, 0.6),
        "dropout": FloatDistribution(0.0, 0.5),
        "hidden_size": CategoricalDistribution([64, 128, 256]),
        "label_smoothing": FloatDistribution(0.0, 0.3),
        "lr": FloatDistribution(1e-5, 1e-2, log=True),
        "num_heads": CategoricalDistribution([2, 4, 8]),
        "num_layers": IntDistribution(1, 4),
        "weight_decay": FloatDistribution(1e-4, 1.0, log=True),
    }

    def params(i: int) -> dict:
        return {
            "classifier_dropout": 0.0123 * i,
            "dropout": 0.0456 * i,
            "hidden_size": [64, 128, 256][i % 3],
            "label_smoothing": 0.0111 * i,
            "lr": 1.234e-5 * (i + 1),
            "num_heads": [2, 4, 8][i % 3],
            "num_layers": 1 + i % 4,
            "weight_decay": 1.5e-4 * (i + 1),
        }

    values = [0.4321, 0.8123, 0.7234, 0.9345, 0.6456, 0.8567, 0.5678, 0.7789]
    for i, value in enumerate(values):
        attrs = {"baseline": True} if i == 0 else {}
        study.add_trial(
            optuna.create_trial(params=params(i), distributions=distributions, value=value, user_attrs=attrs)
        )
    pruned = optuna.create_trial(
        params=params(8),
        distributions=distributions,
        state=TrialState.PRUNED,
        value=0.9999,  # as Optuna stores it: the last reported value
        intermediate_values={0: 0.9999},
    )
    study.add_trial(pruned)
    study.add_trial(optuna.create_trial(params=params(9), distributions=distributions, state=TrialState.FAIL))

    console = Console(width=80, record=True)
    console.print(summary_table(study))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    shown = [*sorted(range(1, 8), key=lambda i: values[i], reverse=True)[:5], 0]
    for i in shown:
        assert f"{values[i]:.4f}" in text and f"{values[i] - values[0]:+.4f}" in text
        for key, value in params(i).items():  # every name=value whole on one line
            assert (f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}") in text
    assert "0 (baseline)" in text
    assert "0.9999" not in text  # a pruned trial's value is an early epoch's, not a result
    assert f"{values[4]:.4f}" not in text and f"{values[6]:.4f}" not in text  # sixth and seventh best
    assert "10 trials: 8 COMPLETE, 1 PRUNED, 1 FAIL" in text


def test_dotted_names_reach_model_args_and_every_model_is_checked(tmp_path: Path) -> None:
    base = tiny_train_config(tmp_path, tmp_path, model="linear", model_args={"linear": {"pooling": "mean"}})
    cfg = with_params(base, {"model_args.linear.pooling": "mean+std", "model_args.gru.x": 1, "lr": 0.01})
    assert cfg.model_args == {"linear": {"pooling": "mean+std"}, "gru": {"x": 1}} and cfg.lr == 0.01
    assert base.model_args == {"linear": {"pooling": "mean"}}  # the base config is not changed under a study
    pooling = {"type": "categorical", "choices": ["mean", "mean+std"]}
    check_space({"model_args.linear.pooling": pooling}, base)
    with pytest.raises(ConfigError, match="outside the search space"):
        check_space({"model_args.linear.pooling": {"type": "categorical", "choices": ["max"]}}, base)
    with pytest.raises(ConfigError, match="dict fields"):
        check_space({"lr.scale": {"type": "float", "low": 0, "high": 1}}, base)
    models = {"type": "categorical", "choices": ["linear", "transformer"]}
    with pytest.raises(ConfigError, match="do not fit"):  # heads that the transformer's width cannot split
        check_space(
            {"model": models, "model_args.transformer.num_heads": {"type": "categorical", "choices": [2, 7]}}, base
        )
    with pytest.raises(ConfigError, match=r"takes no argument 'hiden_size' \(did you mean 'hidden_size'\?\)"):
        check_space({"model_args.transformer.hiden_size": {"type": "categorical", "choices": [8]}}, base)
