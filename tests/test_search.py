from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from research.config import ConfigError, SearchConfig, TrainConfig
from research.search import PARENT_ATTR, check_space, prepare_study, run_search, storage_for

from .conftest import ROOT
from .test_training import tiny_train_config

SPACE = {
    "hidden_size": {"type": "categorical", "choices": [16, 32]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


def search_config(tmp_path: Path, **overrides) -> SearchConfig:
    values = dict(study="unit", trials=2, storage=str(tmp_path / "study.journal"), space=SPACE, pruner="none")
    return SearchConfig(**{**values, **overrides})


def base_config(tiny_features: Path, tmp_path: Path, tracking_uri: str, **overrides) -> TrainConfig:
    return tiny_train_config(
        tiny_features, tmp_path / "runs" / "base", **{"epochs": 3, "tracking_uri": tracking_uri, **overrides}
    )


def test_space_is_checked_before_any_trial(tiny_features: Path, tmp_path: Path) -> None:
    base = tiny_train_config(tiny_features, tmp_path, model="transformer", hidden_size=32, num_heads=4)
    check_space(
        {
            "hidden_size": {"type": "categorical", "choices": [32, 64]},
            "num_heads": {"type": "categorical", "choices": [2, 4]},
        },
        base,
    )
    with pytest.raises(ConfigError, match=r"invalid for transformer: \[\(36, 8\)\]"):
        check_space(
            {
                "hidden_size": {"type": "categorical", "choices": [32, 36]},
                "num_heads": {"type": "categorical", "choices": [4, 8]},
            },
            base,
        )
    with pytest.raises(ConfigError, match="outside the search space"):
        check_space({"lr": {"type": "float", "low": 0.1, "high": 0.2}}, base)


def test_trial_zero_is_the_baseline_and_restarts_continue_numbering(
    tiny_features: Path, tmp_path: Path, tracking_uri: str
) -> None:
    import mlflow

    base = base_config(tiny_features, tmp_path, tracking_uri)
    cfg = search_config(tmp_path)
    run_search(cfg, base)
    summary = run_search(cfg, base)  # the same study again: resumes
    study = optuna.load_study(study_name="unit", storage=storage_for(cfg)[0])
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[0].params == {"hidden_size": base.hidden_size, "dropout": base.dropout, "lr": base.lr}
    assert trials[0].user_attrs["baseline"] is True
    assert (
        summary["baseline_value"] == trials[0].value
        and summary["improvement"] == summary["best_value"] - trials[0].value
    )
    parent = mlflow.get_run(study.user_attrs[PARENT_ATTR])
    assert parent.data.metrics["trials"] == 4 and "best_value" in parent.data.metrics
    children = mlflow.search_runs(
        experiment_names=["search"],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    assert sorted(int(r.data.tags["trial"]) for r in children) == [0, 1, 2, 3]
    assert all(r.data.tags["optuna_state"] == "COMPLETE" for r in children)
    assert {r.data.params["hidden_size"] for r in children} <= {"16", "32"}
    client = mlflow.MlflowClient(tracking_uri)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "plots")} >= {"plots/optimization_history.png"}


def test_pruner_stops_a_hopeless_trial_early(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    """Designed case: after the baseline, a trial with a learning rate too small to learn anything."""
    base = base_config(tiny_features, tmp_path, tracking_uri, epochs=6, patience=10)
    space = {"lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}}
    cfg = search_config(
        tmp_path, space=space, pruner="median", pruner_startup_trials=1, pruner_warmup_epochs=1, trials=0
    )
    study = prepare_study(cfg, base)
    study.enqueue_trial({"lr": 1e-9})
    run_search(SearchConfig(**{**cfg.__dict__, "trials": 2}), base)
    hopeless = study.get_trials()[1]
    assert hopeless.params["lr"] == 1e-9
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert max(hopeless.intermediate_values) < base.epochs - 1  # stopped before its last epoch


def worker_args(
    tiny_features: Path, tmp_path: Path, tracking_uri: str, cfg: SearchConfig, trials: int, epochs: int = 2
) -> list[str]:
    config = tmp_path / "search.yaml"
    # A beat every second, stale after 3 s: a killed worker's trial is found quickly, a live one never.
    config.write_text(f"# test\nsearch:\n  space: {SPACE}\n  pruner: none\n  heartbeat_s: 1\n  stale_after_s: 3\n")
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
        "--hidden-size",
        "32",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        f"tracking_uri={tracking_uri}",
        "model_args={}",
    ]


def test_two_worker_processes_share_one_study(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    """Create the study, then two worker processes run 2 trials each on one journal file: 4 distinct trials."""
    base = base_config(tiny_features, tmp_path, tracking_uri)
    cfg = search_config(tmp_path, trials=0)
    prepare_study(cfg, base)
    args = worker_args(tiny_features, tmp_path, tracking_uri, cfg, trials=2)
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    study = optuna.load_study(study_name="unit", storage=storage_for(cfg)[0])
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # no live trial was taken for dead
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    proposed = [tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("baseline")]
    assert len(set(proposed)) == len(proposed) == 3  # the workers did not propose the same parameters
    seeds = {v for k, v in study.user_attrs.items() if k.startswith("worker_")}
    assert len(seeds) == 3  # the creating process and the two workers: one sampler seed each


def test_killed_study_restarts_and_trial_numbers_continue(
    tiny_features: Path, tmp_path: Path, tracking_uri: str
) -> None:
    import signal
    import time

    base = base_config(tiny_features, tmp_path, tracking_uri)
    cfg = search_config(tmp_path, trials=0)
    study = prepare_study(cfg, base)
    worker = subprocess.Popen(
        worker_args(tiny_features, tmp_path, tracking_uri, cfg, trials=50, epochs=4),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials()) < 2:
        assert time.time() < deadline and worker.poll() is None
        time.sleep(0.2)
    while not any(t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values for t in study.get_trials()):
        time.sleep(0.05)  # a trial in the middle of training: all its parameters drawn, an epoch reported
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = study.get_trials()
    (killed,) = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    time.sleep(3)  # longer than stale_after_s
    restarted = subprocess.run(
        worker_args(tiny_features, tmp_path, tracking_uri, cfg, trials=1), capture_output=True, text=True, timeout=300
    )
    assert restarted.returncode == 0, restarted.stdout[-2000:]
    after = study.get_trials()
    assert [t.number for t in after] == list(range(len(before) + 1))  # same study, numbering continues
    assert after[-1].state == optuna.trial.TrialState.COMPLETE
    assert all(a.state == b.state for a, b in zip(before, after, strict=False) if a.state.is_finished())  # nothing lost
    # The dead worker's trial is failed, not left RUNNING, and its parameters were run again.
    assert after[killed.number].state == optuna.trial.TrialState.FAIL
    assert after[-1].params == killed.params and after[-1].system_attrs["failed_trial"] == killed.number
    import mlflow

    (run,) = mlflow.search_runs(
        experiment_names=["search"], filter_string=f"tags.trial = '{killed.number}'", output_format="list"
    )
    assert run.info.status == "KILLED" and run.data.tags["optuna_state"] == "FAIL"


def test_default_space_surrounds_the_config_and_an_empty_space_is_refused(tiny_features: Path, tmp_path: Path) -> None:
    from research.search import default_space, resolve_space

    demo = TrainConfig(hidden_size=128, num_layers=1, num_heads=4, dropout=0.2)  # the demo's sizes
    space = resolve_space(SearchConfig(space=None), demo)
    assert space == default_space(demo)
    assert {"hidden_size", "num_layers", "num_heads", "dropout"} <= set(space)
    check_space(space, demo)  # valid for every pair, and the baseline lies inside
    assert set(default_space(dataclasses.replace(demo, model="mean_pool"))) == {"hidden_size", "num_layers", "dropout"}
    with pytest.raises(ConfigError, match=r"search\.space is empty"):
        resolve_space(SearchConfig(space={}), demo)


def test_summary_table_keeps_every_number_at_80_columns(tiny_features: Path, tmp_path: Path, tracking_uri: str) -> None:
    from rich.console import Console

    from research.search import summary_table

    base = base_config(tiny_features, tmp_path, tracking_uri)
    run_search(search_config(tmp_path, trials=2), base)
    study = optuna.load_study(study_name="unit", storage=storage_for(search_config(tmp_path))[0])
    console = Console(width=80, record=True)
    console.print(summary_table(study))
    text = console.export_text()
    for trial in study.get_trials():
        assert f"{trial.value:.4f}" in text and "…" not in text
    experiment = mlflow_experiment("search", tracking_uri)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    names = {r.info.run_name for r in mlflow_runs(experiment, tracking_uri)}
    assert {"unit-trial0000", "unit-trial0001"} <= names


def mlflow_experiment(name: str, uri: str):
    from research.tracking import mlflow_client

    return mlflow_client(uri).get_experiment_by_name(name)


def mlflow_runs(experiment, uri: str) -> list:
    from research.tracking import mlflow_client

    return mlflow_client(uri).search_runs([experiment.experiment_id])
