"""research.tracking on a real SQLite MLflow store: experiment kind and view, run helpers, the mlflow boundary."""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from research import tracking
from research.engine.report import plot_confusion
from research.errors import UserError
from research.tracking import links as mlflow_links

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
    # Evaluations log their final row under fixed names: the evaluate experiment's view shows them.
    evaluate = client.get_experiment(tracking.get_experiment_id("evaluate", store))
    assert evaluate.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "metrics.`macro_f1`" in json.loads(evaluate.tags["mlflow.sharedViewState.default"])["selectedColumns"]
    assert tracking.runs_view_url("evaluate", store).endswith("viewStateShareKey=default")
    # An experiment without a fixed set of metrics gets the kind, and no view that would show empty columns.
    assert "viewStateShareKey" not in tracking.runs_view_url("t-no-view", store)
    assert not any(k.startswith("mlflow.sharedViewState") for k in client.get_experiment_by_name("t-no-view").tags)
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


def test_a_resumed_run_reopens_under_the_parent_run_of_its_process(store: str) -> None:
    """A CV fold's member killed mid-training continues its own run when the CV runs again: re-opened inside
    the CV's parent run (MLflow refuses a second active run unless it is nested)."""
    with (
        tracking.start_run("t-resume", run_name="cv", uri=store) as parent,
        tracking.start_run("t-resume", run_name="fold-member", uri=store, parent_run_id=parent.info.run_id) as m,
    ):
        member = m.info.run_id
    with tracking.start_run("t-resume", run_name="cv again", uri=store) as again:
        with tracking.start_run("t-resume", uri=store, run_id=member) as resumed:
            assert resumed.info.run_id == member
        assert tracking.mlflow_client(store).get_run(again.info.run_id).info.status == "RUNNING"
    assert tracking.mlflow_client(store).get_run(member).info.status == "FINISHED"


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
    assert importers == {"research/tracking/__init__.py"}
    # Library modules report through their return values and their own console, never through the CLI.
    assert not {"research.cli", "research.commands"} & (
        _imports(ROOT / "research/tuning/search.py") | _imports(ROOT / "research/tracking/__init__.py")
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


# ------------------------------------------------------------ the links a newcomer opens


def demo_like_store(uri: str, tmp_path: Path) -> tuple[list[str], str]:
    """Four members tagged ensemble=demo (with the train view's metrics and params), one run of another
    ensemble, and an evaluation run with its confusion matrix: what make demo leaves, in miniature."""
    members = []
    for seed in (1, 2, 3, 4):
        tags = {"ensemble": "demo", "seed": seed}
        with tracking.start_run("train", run_name=f"linear-seed{seed}", uri=uri, tags=tags) as run:
            tracking.log_params({"model": "linear", "lr": 1e-3, "seed": seed, "model.dropout": 0.1})
            tracking.log_metrics({"best_val_macro_f1": 0.8 + seed / 100, "test_macro_f1": 0.7, "test_accuracy": 0.75})
            members.append(run.info.run_id)
    with tracking.start_run("train", run_name="someone-else", uri=uri, tags={"ensemble": "other"}):
        tracking.log_metrics({"best_val_macro_f1": 0.1})

    plot_confusion(
        [[5, 1], [0, 6]], ["animation", "gaming"], "ensemble+tta (12 videos)", tmp_path / "confusion_matrix.png"
    )
    with tracking.start_run("evaluate", run_name="evaluate-demo", uri=uri, tags={"ensemble": "demo"}) as run:
        tracking.log_metrics({"accuracy": 0.9, "macro_f1": 0.88, "ensemble_tta_macro_f1": 0.88})
        tracking.log_artifact(tmp_path / "confusion_matrix.png")
        evaluation = run.info.run_id
    return members, evaluation


def test_ui_links_open_on_the_members_and_the_evaluation(tracking_uri: str, tmp_path: Path) -> None:
    members, evaluation = demo_like_store(tracking_uri, tmp_path)
    links = mlflow_links.ui_links("demo", members, evaluation, tracking_uri, ui="http://h:5000")
    client = tracking.mlflow_client(tracking_uri)
    train = client.get_experiment_by_name("train")
    # (a) the train runs list, model-training side, on a shared view that holds the filter and the columns:
    # a searchFilter (or any search facet) in the address would make the UI drop the view and its columns.
    assert links["members"] == (
        f"http://h:5000/#/experiments/{train.experiment_id}/runs?workflowType=machine_learning"
        "&viewStateShareKey=ensemble-demo"
    )
    query = urllib.parse.parse_qs(links["members"].split("?", 1)[1])
    assert set(query) == {"workflowType", "viewStateShareKey"}
    view = json.loads(train.tags["mlflow.sharedViewState.ensemble-demo"])
    found = client.search_runs([train.experiment_id], view["searchFilter"])
    assert sorted(r.info.run_id for r in found) == sorted(members)  # exactly the members, the other run left out
    for column in ("metrics.`best_val_macro_f1`", "metrics.`test_macro_f1`", "params.`model`", "params.`lr`"):
        assert column in view["selectedColumns"]
        kind, name = column.split(".", 1)
        assert all(name.strip("`") in getattr(r.data, kind) for r in found)  # a column every member fills
    # No compare-page link: its address lists every run id (about 300 characters), too long to paste.
    assert "compare" not in links and all(len(url) < 160 for url in links.values())
    # (b) the evaluation run: its page, and its Artifacts tab opened on the confusion matrix.
    evaluate_id = client.get_run(evaluation).info.experiment_id
    page = f"http://h:5000/#/experiments/{evaluate_id}/runs/{evaluation}"
    assert links["evaluation"] == f"{page}?workflowType=machine_learning"
    assert links["confusion_matrix"] == f"{page}/artifacts/confusion_matrix.png?workflowType=machine_learning"
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(evaluation)}
    assert links["evaluations"].endswith(
        f"/experiments/{evaluate_id}/runs?workflowType=machine_learning&viewStateShareKey=default"
    )
    # No member runs (checkpoints trained without MLflow): the view falls back to the ensemble tag.
    assert set(mlflow_links.ui_links("demo", [], None, tracking_uri)) == {"command", "members"}
    view = json.loads(client.get_experiment(train.experiment_id).tags["mlflow.sharedViewState.ensemble-demo"])
    assert view["searchFilter"] == "tags.ensemble = 'demo'"


def test_ui_command_is_the_venvs_mlflow_on_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    db = tmp_path / "mlruns" / "mlflow.db"
    assert (
        mlflow_links.ui_command(f"sqlite:///{db}")
        == ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db"
    )
    elsewhere = tmp_path.parent / "x.db"
    monkeypatch.setattr(sys, "executable", "/opt/py/bin/python")
    assert (
        mlflow_links.ui_command(f"sqlite:///{elsewhere}")
        == f"/opt/py/bin/mlflow ui --backend-store-uri sqlite:///{elsewhere}"
    )
    assert "tracking server itself" in mlflow_links.ui_command("http://mlflow.example:5000")


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dom(url: str) -> str:
    """The page as headless Chromium renders it (the UI is a single-page app: the DOM after its requests)."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1700,1000"]
    args += ["--virtual-time-budget=20000", "--dump-dom", url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs headless Chromium (apt-get install chromium)")
def test_the_links_in_a_real_browser(tracking_uri: str, tmp_path: Path) -> None:
    """mlflow ui on the store, the links opened in headless Chromium: the members with their metric and param
    columns (and no other run), the confusion matrix shown on the evaluation run's page."""
    members, evaluation = demo_like_store(tracking_uri, tmp_path)
    port = _free_port()
    ui = f"http://127.0.0.1:{port}"
    links = mlflow_links.ui_links("demo", members, evaluation, tracking_uri, ui=ui)
    mlflow_exe = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_exe), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers in a group of their own, ended together below
    )
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 120
        while True:
            try:
                if opener.open(f"{ui}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "mlflow ui did not start"
            time.sleep(1)
        page = _dom(links["members"])
        assert "shared view" in page
        assert all(f"linear-seed{seed}" in page for seed in (1, 2, 3, 4)) and "someone-else" not in page
        assert "best_val_macro_f1" in page and "test_macro_f1" in page
        page = _dom(links["confusion_matrix"])
        assert 'alt="confusion_matrix.png"' in page and "evaluate-demo" in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def assert_whole_lines(printed: str, links: dict[str, str]) -> None:
    """Every command and URL of ``links`` stands whole on one line of ``printed``, and every URL there parses."""
    lines = [line.strip() for line in printed.splitlines()]
    for value in links.values():
        assert value in lines, f"{value!r} is not one line of:\n{printed}"
    urls = [word for line in lines for word in line.split() if "://" in word]
    assert urls and all(urllib.parse.urlsplit(u).netloc and u in links.values() for u in urls if "http" in u)


def test_links_print_whole_at_80_columns() -> None:
    """The label above, the command or URL alone below it: nothing folded at 80 columns (a log, a pipe)."""
    long_url = "http://127.0.0.1:5000/#/experiments/2/runs?workflowType=machine_learning&viewStateShareKey=" + "x" * 90
    links = {"command": ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db", "members": long_url}
    out = io.StringIO()
    mlflow_links.print_links(Console(file=out, width=80), links)
    lines = out.getvalue().splitlines()
    assert lines[:4] == ["", "MLflow", "  start the UI", f"    {links['command']}"]
    assert lines[5] == f"    {long_url}" and len(lines) == 6
    assert_whole_lines(out.getvalue(), links)
