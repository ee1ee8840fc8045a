"""research.tracking on a real SQLite MLflow store: experiment kind and view, run helpers, the mlflow boundary."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

from research import tracking
from research.errors import UserError

from .conftest import ROOT


@pytest.fixture()
def store(session_tracking_store: str) -> str:
    """The session's MLflow store (a new one costs ~2 s of migrations); tests keep to their own experiments."""
    return session_tracking_store


def test_experiments_open_on_the_runs_list_with_a_default_view(store: str) -> None:
    client = tracking.mlflow_client(store)
    search = client.get_experiment(tracking.get_experiment_id("search", store))
    assert search.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(search.tags["mlflow.sharedViewState.default"])
    assert "metrics.`best_val_macro_f1`" in view["selectedColumns"] and "tags.`optuna_state`" in view["selectedColumns"]
    # The runs tab (a redirect to it would drop the view key), as classic ML (the UI's own switch wins over the tag).
    runs = f"http://h:5000/#/experiments/{search.experiment_id}/runs"
    url = tracking.runs_view_url("search", store, ui="http://h:5000/")
    assert url == f"{runs}?workflowType=machine_learning&viewStateShareKey=default"
    # An experiment without a fixed set of metrics gets the kind, and no view that would show empty columns.
    evaluate = client.get_experiment(tracking.get_experiment_id("evaluate", store))
    assert evaluate.tags["mlflow.experimentKind"] == "custom_model_development"
    assert not any(k.startswith("mlflow.sharedViewState") for k in evaluate.tags)
    assert "viewStateShareKey" not in tracking.runs_view_url("evaluate", store)
    # A store made before these tags (or by hand): the next use adds them.
    old = tracking.get_experiment_id("train", store)
    for key in ("mlflow.experimentKind", "mlflow.sharedViewState.default"):
        client.delete_experiment_tag(old, key)
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert tracking.get_experiment_id("train", store) == old
    tags = client.get_experiment(old).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert json.loads(tags["mlflow.sharedViewState.default"]) == tracking.DEFAULT_VIEWS["train"]


def test_active_run_helpers_and_checkpoint_download(store: str, tmp_path: Path) -> None:
    checkpoint = tmp_path / "best_ensemble_model_1.pt"
    checkpoint.write_bytes(b"weights")
    with tracking.start_run("t-helpers", run_name="with-checkpoint", uri=store) as run:
        tracking.log_text("a: 1\n", "config.yaml")
        tracking.log_artifact(tmp_path / "best_ensemble_model_1.pt", "checkpoints")
        tracking.set_tag("stage", 3)
    with tracking.start_run("t-helpers", run_name="without", uri=store) as bare:
        tracking.log_text("only text", "notes/readme.txt")
    client = tracking.mlflow_client(store)
    logged = client.get_run(run.info.run_id)
    assert logged.data.tags["stage"] == "3" and logged.info.run_name == "with-checkpoint"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"checkpoints", "config.yaml"}

    path = tracking.download_checkpoint(run.info.run_id, tmp_path / "out", store)
    assert path == tmp_path / "out" / "checkpoints" / run.info.run_id / checkpoint.name
    assert path.read_bytes() == b"weights"
    with pytest.raises(UserError, match=rf"run {bare.info.run_id} has no checkpoint"):
        tracking.download_checkpoint(bare.info.run_id, tmp_path / "out", store)
    with pytest.raises(UserError, match="no MLflow run 0123456789abcdef"):
        tracking.download_checkpoint("0123456789abcdef", tmp_path / "out", store)


def test_finished_runs_are_newest_first_and_terminated_runs_are_not_finished(store: str) -> None:
    ids = []
    for i in range(3):
        with tracking.start_run("t-finished", run_name=f"r{i}", uri=store, tags={"ensemble": "a"}) as run:
            ids.append(run.info.run_id)
        time.sleep(0.01)  # distinct start times: the order is by start time
    with tracking.start_run("t-finished", uri=store, tags={"ensemble": "b"}):
        pass
    tracking.terminate_run(ids[1], "KILLED", store)
    assert tracking.mlflow_client(store).get_run(ids[1]).info.status == "KILLED"

    found = tracking.finished_runs("t-finished", "tags.ensemble = 'a'", store)
    assert [r.info.run_id for r in found] == [ids[2], ids[0]]
    assert len(tracking.finished_runs("t-finished", "", store)) == 3  # no filter: every finished run
    assert tracking.finished_runs("no-such-experiment", "tags.ensemble = 'a'", store) == []


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_mlflow_is_imported_by_the_tracking_module_only() -> None:
    sources = [*ROOT.glob("research/**/*.py"), *ROOT.glob("*.py")]
    importers = {
        p.relative_to(ROOT).as_posix()
        for p in sources
        if any(name == "mlflow" or name.startswith("mlflow.") for name in _imports(p))
    }
    assert importers == {"research/tracking.py"}
    # Library modules report through their return values and their own console, never through the CLI.
    assert not {"research.cli", "research.commands"} & (
        _imports(ROOT / "research/search.py") | _imports(ROOT / "research/tracking.py")
    )


def test_a_sqlite_store_waits_for_the_write_lock(tracking_uri: str) -> None:
    """Workers sharing one SQLite store wait up to 60 s for its lock (sqlite's own 5 s crashed a loaded worker)."""
    import mlflow
    from mlflow.store.db.utils import create_sqlalchemy_engine

    tracking.get_experiment_id("train", tracking_uri)
    connected = mlflow.get_tracking_uri()
    assert connected == f"{tracking_uri}?timeout=60"
    with create_sqlalchemy_engine(connected).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
