"""Beyond one machine, on real servers: an Optuna study on PostgreSQL shared by worker processes started as
a second machine would start them, and an MLflow tracking server backed by PostgreSQL that the stages and
the pipeline log to. PostgreSQL comes from the ``pgserver`` wheel (a dev requirement), ``mlflow server``
from MLflow itself; both are started here and stopped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from research.config import SearchConfig
from research.tracking import mlflow_client
from research.tuning.storage import storage_for

from .conftest import ROOT, run_entry_point
from .servers import Postgres, free_port, start_mlflow_server, start_postgres
from .test_annotations import REAL, real_rows, write_clip_list


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.server.cleanup()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def mlflow_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory):
    server = start_mlflow_server(postgres.database("mlflow"), tmp_path_factory.mktemp("mlflow_server"))
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------ Optuna


def test_an_unreachable_storage_is_one_line_naming_it_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://lab:s3cret@127.0.0.1:{free_port()}/optuna"  # nothing listens there
    cmd = [sys.executable, str(ROOT / "train.py"), "--search", "--study", "s", "--trials", "1", "--storage", url]
    done = subprocess.run([*cmd, "--features-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot open the study storage postgresql+psycopg://lab:***@127.0.0.1:" in errors[0]
    assert "s3cret" not in done.stderr + done.stdout and "Connection refused" in errors[0]


def test_a_connection_the_server_closed_while_idle_is_replaced(postgres: Postgres) -> None:
    """The server ends sessions idle for 1 s (as a firewall or pgbouncer would during a long trial): a plain
    connection pool then fails on its next query; the study's storage checks a connection before use."""
    import sqlalchemy

    url = postgres.database("idle")
    name = url.split("@/", 1)[1].split("?", 1)[0]
    postgres.sql(f"ALTER DATABASE {name} SET idle_session_timeout = '1s';")  # for sessions opened from now on
    storage, _ = storage_for(SearchConfig(storage=url, study="idle"))
    study = optuna.create_study(study_name="idle", storage=storage)
    plain = sqlalchemy.create_engine(url)
    with plain.connect() as connection:
        connection.execute(sqlalchemy.text("select 1"))
    time.sleep(2.5)  # both pools now hold a connection the server has closed
    with pytest.raises(sqlalchemy.exc.OperationalError, match="idle-session timeout"), plain.connect() as connection:
        connection.execute(sqlalchemy.text("select 1"))
    study.enqueue_trial({"x": 1.0})
    time.sleep(2.5)
    trial = study.ask()
    study.tell(trial, 0.5)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def worker_command(
    features: Path,
    folder: Path,
    storage: str,
    trials: int,
    epochs: int = 1,
    stale_after_s: float = 120,  # above the default retry (60) and the beat: a live trial is never taken for dead
    storage_retry_s: float = 60,
) -> list[str]:
    """What every machine runs: the same command and storage URL, its own folders."""
    config = folder / "search.yaml"
    config.write_text(
        "search:\n  space: {lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}\n  pruner: none\n"
        f"  heartbeat_s: 1\n  stale_after_s: {stale_after_s}\n  storage_retry_s: {storage_retry_s}\n"
    )
    return [
        sys.executable, str(ROOT / "train.py"), "--search", "--config", str(config), "--study", "lab",
        "--trials", str(trials), "--storage", storage, "--features-dir", str(features),
        "--out-dir", str(folder / "runs"), "--model", "mean_pool", "--epochs", str(epochs), "--batch-size", "4",
        "model_args={mean_pool: {hidden_size: 32, num_layers: 1}}",
    ]  # fmt: skip


def test_three_workers_on_postgresql_run_exactly_the_studys_trials(
    postgres: Postgres, mlflow_server, tiny_features: Path, tmp_path: Path
) -> None:
    """Three processes, each in a folder of its own, one PostgreSQL URL and one MLflow server: --trials 5 is
    the study's total (not 5 each), the parameters are distinct, every trial is a run on the server."""
    storage = postgres.database("optuna")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
    workers = []
    for k in range(3):
        folder = tmp_path / f"machine{k}"
        folder.mkdir()
        cmd = worker_command(tiny_features, folder, storage, trials=5)
        workers.append(subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True))  # fmt: skip
    logs = [w.communicate(timeout=400)[0] for w in workers]
    (tmp_path / "workers.log").write_text("\n=====\n".join(logs))
    assert all(w.returncode == 0 for w in workers), [log[-2000:] for log in logs]
    study = optuna.load_study(study_name="lab", storage=storage)
    finished = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5, [(t.number, t.state) for t in study.get_trials()]
    assert len({t.params["lr"] for t in finished}) == 5
    assert all(t.user_attrs.get("over_budget") for t in study.get_trials() if t.state == TrialState.FAIL)
    client = mlflow_client(mlflow_server.url)
    search = client.get_experiment_by_name("search")
    runs = client.search_runs([search.experiment_id], "tags.study = 'lab'")
    trial_runs = [r for r in runs if "trial" in r.data.tags]  # the study's parent run is tagged too
    assert sorted(int(r.data.tags["trial"]) for r in trial_runs) == sorted(t.number for t in finished)


def test_a_killed_worker_s_trial_is_failed_by_heartbeat_and_run_again_on_postgresql(
    postgres: Postgres, mlflow_server, tiny_features: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-trial leaves the trial RUNNING in PostgreSQL; its heartbeat stops, and the next worker
    (another folder, the same URL) fails it and runs its parameters again, once."""
    import signal

    storage = postgres.database("killed")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    quick = {"stale_after_s": 3, "storage_retry_s": 1}  # a dead worker found in seconds (1 + 1 beat < 3)
    worker = subprocess.Popen(worker_command(tiny_features, first, storage, trials=50, epochs=200, **quick),
                              cwd=first, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while True:  # the baseline trial in the middle of its training
        assert time.monotonic() < deadline and worker.poll() is None
        try:
            study = optuna.load_study(study_name="lab", storage=storage)
            if any(t.state == TrialState.RUNNING and t.intermediate_values for t in study.get_trials()):
                break
        except KeyError:  # the study is not made yet
            pass
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    (killed,) = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    time.sleep(3.5)  # past the grace period: its last heartbeat is stale
    done = subprocess.run(worker_command(tiny_features, second, storage, trials=1, epochs=1, **quick),
                          cwd=second, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trials = study.get_trials()
    assert trials[killed.number].state == TrialState.FAIL
    retry = trials[-1]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["retry_of"] == killed.number


@pytest.fixture()
def own_postgres() -> Iterator[Postgres]:
    """A PostgreSQL of the test's own, to crash and restart (the session's one serves the other tests).

    Outside pytest's temporary folders: each pytest session run as root makes /tmp/pytest-of-root private
    again, and the server's own user must still reach its data folder when it starts again."""
    folder = tempfile.TemporaryDirectory(prefix="own_postgres_")
    server = start_postgres(Path(folder.name) / "data")
    # A restart after kill -9 first fsyncs the whole data folder (4 s here); off, it takes a fraction of a second.
    # The data stays safe from a killed server, as the kernel keeps what it was given (not from a lost machine).
    server.sql("ALTER SYSTEM SET fsync = off; SELECT pg_reload_conf();")
    yield server
    server.server.cleanup()  # type: ignore[attr-defined]  # stops it if it runs
    folder.cleanup()


def wait_for_a_trial_in_training(storage: str, worker: subprocess.Popen) -> optuna.trial.FrozenTrial:
    """The worker's running trial once it has reported an epoch: parameters drawn, training under way."""
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline and worker.poll() is None, worker.communicate()[0][-3000:]
        try:
            study = optuna.load_study(study_name="lab", storage=storage)
            running = [t for t in study.get_trials() if t.state == TrialState.RUNNING and t.intermediate_values]
            if running:
                return running[0]
        except KeyError:  # the study is not made yet
            pass
        time.sleep(0.1)


def test_a_database_restart_mid_trial_is_ridden_through(
    own_postgres: Postgres, tiny_features: Path, tmp_path: Path
) -> None:
    """kill -9 on the PostgreSQL that holds the study and the tracking server's runs, in the middle of a trial,
    and the server started again on the same data folder a second later: the worker waits it out and finishes
    the study, every trial once; the tracking degrades at worst to a warning."""
    storage = own_postgres.database("optuna")
    mlflow_server = start_mlflow_server(own_postgres.database("mlflow"), tmp_path / "mlflow")
    try:
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url, "COLUMNS": "400"}  # log lines unwrapped
        cmd = worker_command(tiny_features, tmp_path, storage, trials=2, epochs=8, storage_retry_s=30)
        worker = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)  # fmt: skip
        interrupted = wait_for_a_trial_in_training(storage, worker)
        own_postgres.kill()
        down = time.monotonic()
        time.sleep(1)
        own_postgres.restart()
        print(f"database down for {time.monotonic() - down:.1f} s")
        log = worker.communicate(timeout=300)[0]
    finally:
        mlflow_server.stop()
    (tmp_path / "worker.log").write_text(log)
    assert worker.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "not answering" in log and "answers again" in log, log[-3000:]
    trials = optuna.load_study(study_name="lab", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [(t.number, t.state) for t in trials]
    assert len({t.params["lr"] for t in trials}) == 2 and not any("retry_of" in t.user_attrs for t in trials)
    assert trials[interrupted.number].intermediate_values.keys() == set(range(8))  # told after its last epoch
    warnings = [line for line in log.splitlines() if line.startswith("warning:")]
    assert len(warnings) <= 1 and all(mlflow_server.url in line for line in warnings), warnings


def test_a_database_that_stays_down_stops_the_worker_in_one_line(
    own_postgres: Postgres, tiny_features: Path, tmp_path: Path, tracking_uri: str
) -> None:
    """kill -9 on the study's PostgreSQL mid-trial, never started again: past storage_retry_s the worker exits 2
    with one line (the URL without its password, the trial, what to do), no traceback, and the trial's
    MLflow run (in a store that stays up) is not left RUNNING."""
    storage = own_postgres.database("optuna").replace("postgres:@", "postgres:s3cret@")  # trust: never asked for
    cmd = worker_command(tiny_features, tmp_path, storage, trials=3, epochs=200, storage_retry_s=3)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    worker = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    interrupted = wait_for_a_trial_in_training(storage, worker)
    own_postgres.kill()
    down = time.monotonic()
    out, err = worker.communicate(timeout=120)
    print(f"exit {worker.returncode} {time.monotonic() - down:.1f} s after the kill")
    assert worker.returncode == 2 and time.monotonic() - down < 3 + 10, err[-3000:]
    assert "Traceback" not in out + err and "s3cret" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    shown = f"postgresql+psycopg://postgres:***@/{storage.split('@/', 1)[1].split('?', 1)[0]}?host="
    assert errors[0].startswith(f"error: the study's storage {shown}"), errors
    assert f"stopped answering during trial {interrupted.number} (OperationalError: " in errors[0], errors
    assert "Connection refused" in errors[0], errors
    assert "finished trials are kept; run the same command again when it is back" in errors[0], errors
    client = mlflow_client(tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("search").experiment_id], f"tags.trial = '{interrupted.number}'"
    )
    assert run.info.status in ("FAILED", "KILLED")


# ------------------------------------------------------------------------------------------ MLflow


def test_training_and_evaluation_log_to_the_tracking_server(
    mlflow_server, tiny_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.py and evaluate.py with MLFLOW_TRACKING_URI=http://...: checkpoints where --out-dir says; the
    metrics, params, confusion matrix and predictions.csv on the server (client and HTTP API)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    args = f"train.py --features-dir {tiny_features} --out-dir {tmp_path / 'runs'} --model mean_pool --epochs 2"
    done = run_entry_point(f"{args} --batch-size 4 'model_args={{mean_pool: {{hidden_size: 32}}}}' ensemble=srv")
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = tmp_path / "runs" / "best_ensemble_model_1.pt"
    assert checkpoint.is_file()
    done = run_entry_point(f"evaluate.py --checkpoints {checkpoint} --out-dir {tmp_path / 'eval'}")
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(mlflow_server.url)
    (member,) = client.search_runs([client.get_experiment_by_name("train").experiment_id], "tags.ensemble = 'srv'")
    assert member.info.status == "FINISHED" and "best_val_macro_f1" in member.data.metrics
    assert member.data.params["model"] == "mean_pool"
    evaluation = client.search_runs([client.get_experiment_by_name("evaluate").experiment_id])[0]
    assert {"predictions.csv", "confusion_matrix.png"} <= {
        a.path for a in client.list_artifacts(evaluation.info.run_id)
    }
    served = mlflow_server.get(f"/get-artifact?path=predictions.csv&run_uuid={evaluation.info.run_id}").decode()
    assert served == (tmp_path / "eval" / "predictions.csv").read_text()


def test_the_pipeline_logs_its_members_to_the_server_and_links_to_it(
    mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    rows = real_rows()
    write_clip_list(tmp_path / "clips.csv", rows)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    sizes = "extract.frames=4 extract.image_size=64 train.epochs=2 train.model_args.super_enhanced.hidden_size=32"
    command = f"-m research.commands.pipeline --annotations clips.csv --data-root {REAL} --name lab {sizes} cv.folds=3"
    command += " launcher=serial"
    done = run_entry_point(command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    links = [line.strip() for line in done.stderr.splitlines() if "://" in line]
    assert links and all(line.startswith(mlflow_server.url) for line in links if line.startswith("http"))
    # the fold members, through the server's REST API
    request = urllib.request.Request(
        f"{mlflow_server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=cv", method="GET"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    experiment = json.loads(opener.open(request, timeout=30).read())["experiment"]["experiment_id"]
    body = json.dumps({"experiment_ids": [experiment], "filter": "tags.ensemble LIKE 'lab-fold%'"}).encode()
    search = urllib.request.Request(
        f"{mlflow_server.url}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
    )
    runs = json.loads(opener.open(search, timeout=30).read())["runs"]
    seeds = sorted(int(t["value"]) for r in runs for t in r["data"]["tags"] if t["key"] == "seed")
    assert seeds == [1, 1, 1, 2, 2, 2] and all(r["info"]["status"] == "FINISHED" for r in runs)  # 3 folds x 2


def test_a_server_lost_mid_run_costs_the_tracking_not_the_training(
    mlflow_server, tiny_features: Path, tmp_path: Path
) -> None:
    """The tracking server dies while train.py trains: training finishes, its checkpoint is written, exit 0,
    and one line at the end says what was lost. (The module's server: this test is the module's last.)"""
    from research.engine.checkpoints import load_checkpoint

    server = mlflow_server
    try:
        cmd = [sys.executable, str(ROOT / "train.py"), "--features-dir", str(tiny_features), "--out-dir",
               str(tmp_path / "runs"), "--model", "mean_pool", "--epochs", "150", "--batch-size", "4", "keep=last",
               "model_args={mean_pool: {hidden_size: 32}}", "ensemble=lost"]  # fmt: skip
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
        training = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        client = mlflow_client(server.url)
        deadline = time.monotonic() + 240
        while True:  # until the run has logged a few epochs on the server
            assert time.monotonic() < deadline and training.poll() is None, training.communicate()[1][-2000:]
            experiment = client.get_experiment_by_name("train")
            runs = client.search_runs([experiment.experiment_id], "tags.ensemble = 'lost'") if experiment else []
            if runs and len(client.get_metric_history(runs[0].info.run_id, "val_macro_f1")) >= 3:
                break
            time.sleep(0.2)
        server.stop()
        _, err = training.communicate(timeout=400)
    finally:
        server.stop()
    assert training.returncode == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"the MLflow tracking server {server.url} was lost during the run" in warnings[0]
    assert "Traceback" not in err
    checkpoint = load_checkpoint(tmp_path / "runs" / "best_ensemble_model_1.pt")
    assert checkpoint["epoch"] == 149  # every epoch trained, the last kept
