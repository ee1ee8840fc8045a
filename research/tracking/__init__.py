"""MLflow: where the store lives, how runs open, and the logging helpers every stage shares.

The store is SQLite under ``mlruns/`` (MLflow 3 refuses the old file store), with
artifacts beside it in ``mlruns/artifacts/``. ``MLFLOW_TRACKING_URI``, when set,
wins over our default, as MLflow's own convention says. The first process to
touch a store creates it under a file lock, so parallel workers (Optuna, torchrun,
``make -j``) never race the schema migration.

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db

Every experiment the project creates is tagged of MLflow 3's classic-ML kind, and
``train``/``search``/``evaluate`` carry a default runs-table view (``DEFAULT_VIEWS``). The
MLflow 3.17 UI itself opens on its GenAI pages until told otherwise: ``runs_view_url`` gives
the link that opens an experiment on its runs list, with those columns (``research.tracking.links``:
the command and every link a newcomer needs after an evaluation). ``import mlflow``
appears in this module only: every other module logs through the helpers here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from research.distributed import file_lock
from research.errors import UserError
from research.interrupts import deferring_termination

log = logging.getLogger(__name__)

# MLflow 3's experiment kind; the key and value are the UI's own (ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in
# its JS bundle). MLflow 3 UIs built without workflow-based navigation open an experiment by this tag. The
# 3.17 UI (built with it) ignores the tag: it takes the kind from its sidebar switch "GenAI | Model
# training" (browser local storage ``mlflow.workflowType``, GenAI by default) or from the URL parameter
# ``workflowType=machine_learning``, which ``runs_view_url`` therefore sets (checked with headless Chromium
# against ``mlflow server`` 3.17.2: without it, the GenAI Overview; with it, the runs list).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# MLflow 3 keeps the runs table's columns in the browser (local storage), not in the store, and the UI
# opens with Source/Models/Dataset columns only. The one store-side hook it reads is a *shared view*:
# an experiment tag ``mlflow.sharedViewState.<key>`` holding the table state as JSON, opened with
# ``#/experiments/<id>/runs?viewStateShareKey=<key>`` (what the UI's "Share" button writes; read from the
# installed UI bundle, and seen to work in 3.17.2: "You're viewing a shared view" with these columns). The
# key must be on the runs tab's URL: a redirect from ``#/experiments/<id>`` drops it. Column keys are
# ``<metrics|params|tags|attributes>.`<name>```; a column no run has is not shown.
VIEW_KEY = "default"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_TAG = f"{VIEW_TAG_PREFIX}{VIEW_KEY}"
_TRAINING_COLUMNS = [
    "metrics.`best_val_macro_f1`",
    "metrics.`test_macro_f1`",
    "metrics.`test_accuracy`",
    "params.`model`",
    "params.`model.hidden_size`",  # the family's arguments as built (training logs model.<argument>)
    "params.`model.num_layers`",
    "params.`model.num_heads`",
    "params.`model.dropout`",
    "params.`lr`",
    "params.`seed`",
    "attributes.`Duration`",
]
DEFAULT_VIEWS: dict[str, dict[str, Any]] = {
    "train": {"selectedColumns": ["tags.`ensemble`", *_TRAINING_COLUMNS]},
    # Trial runs, and the parent run's study-level numbers beside them.
    "search": {
        "selectedColumns": [
            "tags.`optuna_state`",
            "metrics.`best_value`",
            "metrics.`improvement`",
            *_TRAINING_COLUMNS,
        ]
    },
    # The one CV's fold members: which fold, beside the training columns.
    "cv": {"selectedColumns": ["tags.`ensemble`", "tags.`fold`", *_TRAINING_COLUMNS]},
    # Every evaluation logs its final row (ensemble+TTA, or the last row there is) as accuracy/macro_f1.
    "evaluate": {
        "selectedColumns": [
            "tags.`ensemble`",
            "tags.`final_row`",
            "metrics.`macro_f1`",
            "metrics.`macro_f1_low`",
            "metrics.`macro_f1_high`",
            "metrics.`accuracy`",
            "metrics.`ensemble_macro_f1`",
            "metrics.`member_1_macro_f1`",
            "metrics.`member_1_tta_macro_f1`",
            "params.`tta`",
            "params.`split`",
            "tags.`features`",
        ]
    },
}

DEFAULT_DIR = Path("mlruns")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(DEFAULT_DIR / 'mlflow.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///").split("?")[0]) if uri.startswith("sqlite:///") else None


def _connect_uri(uri: str) -> str:
    """The URI MLflow connects with: a SQLite store waits up to 60 s for the write lock, not sqlite's 5 s.

    Several workers (``train.py --search`` twice) share one SQLite file; on a loaded 2-core
    machine one of them held the lock past 5 s and the other crashed with "database is locked".
    """
    return f"{uri}?timeout=60" if uri.startswith("sqlite:///") and "?" not in uri else uri


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    db = _sqlite_path(uri)
    if db is None:  # a server or remote DB serialises on its own
        yield
        return
    with file_lock(db.with_suffix(".lock")):
        yield


# MLflow's HTTP client retries a lost server 7 times with a doubling back-off (minutes per call); 3 short
# tries tell a blip from a lost server in seconds, and a lost one then stops costing anything (``_lost``).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")

_lost: dict[str, str] = {}  # the tracking server this process lost, and why (empty: none)


def lost() -> str | None:
    """One line on the tracking server this process lost mid-run, or None: the work went on without it."""
    if not _lost:
        return None
    return (
        f"the MLflow tracking server {_lost['uri']} was lost during the run ({_lost['why']}): the work finished "
        f"and its files are kept; the run stays {_lost.get('state', 'RUNNING')} there without what came after"
    )


def _unreachable(err: BaseException) -> bool:
    """A tracking server that does not answer (refused, reset, timed out), however MLflow wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{type(current).__name__}: {current}"
        if any(s in text for s in ("ConnectionError", "Connection refused", "Max retries exceeded", "Read timed out")):
            return True
        current = current.__cause__ or current.__context__
    return False


def _lose(err: BaseException) -> None:
    if not _lost:
        _lost.update(uri=resolve_tracking_uri(), why=str(err).splitlines()[0][:200])
        log.warning("MLflow tracking lost (%s): the run goes on without it", _lost["why"])


def tolerant(write: Callable[..., Any]) -> Callable[..., Any]:
    """A logging call that a lost tracking server skips instead of failing the work it records."""

    @functools.wraps(write)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _lost:
            return None
        try:
            return write(*args, **kwargs)
        except Exception as err:
            if not _unreachable(err):
                raise
            _lose(err)
            return None

    return guarded


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _experiment_tags(name: str) -> dict[str, str]:
    tags = dict(EXPERIMENT_KIND)
    if name in DEFAULT_VIEWS:
        tags[VIEW_TAG] = json.dumps(DEFAULT_VIEWS[name])
    return tags


def get_experiment_id(name: str, uri: str | None = None) -> str:
    """Create the store (once, under a lock) and the experiment if needed, of the classic-ML kind; return its id."""
    _quiet_mlflow()
    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(_connect_uri(uri))
    with _store_lock(uri):
        client = mlflow.MlflowClient(_connect_uri(uri))
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            for key, value in _experiment_tags(name).items():
                if key not in experiment.tags:  # stores made before these tags existed
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        db = _sqlite_path(uri)
        location = (db.parent / "artifacts" / name).resolve().as_uri() if db else None
        try:
            return client.create_experiment(name, artifact_location=location, tags=_experiment_tags(name))
        except MlflowException as err:  # a server shared by several machines: another one created it first
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return client.get_experiment_by_name(name).experiment_id


UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` listens by default
ML = "workflowType=machine_learning"


def runs_view_url(experiment: str, uri: str | None = None, ui: str = UI, view: str | None = None) -> str:
    """The experiment's runs list in ``mlflow ui`` (not its GenAI pages), with its default columns if it has a view.

    ``view`` names another shared view of the experiment (``members_view``)."""
    experiment_id = get_experiment_id(experiment, uri)
    url = f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{ML}"
    view = view or (VIEW_KEY if experiment in DEFAULT_VIEWS else None)
    return f"{url}&viewStateShareKey={view}" if view else url


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    uri: str | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    enabled: bool = True,
    run_id: str | None = None,
) -> Iterator[Any]:
    """Open an MLflow run (or nothing when ``enabled`` is false); failed runs end FAILED, interrupted
    ones (Ctrl-C, SIGTERM as ``research.errors.Terminated``) KILLED.

    ``run_id`` re-opens an existing run (a resumed training continues its own run).
    """
    if not enabled:
        yield None
        return
    experiment_id = get_experiment_id(experiment, uri)
    if run_id is not None:  # under a parent run of this process (a CV's folds): re-opened nested in it
        resumed = mlflow.start_run(run_id=run_id, nested=nested or mlflow.active_run() is not None)
        with resumed as run, _killed_when_interrupted():
            yield run
        return
    all_tags = {"git_commit": git_commit(), **{k: str(v) for k, v in (tags or {}).items()}}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    active = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=all_tags, nested=nested or bool(parent_run_id)
    )
    with _ending_without_a_lost_server(active) as run, _killed_when_interrupted():
        yield run


@contextlib.contextmanager
def _ending_without_a_lost_server(active: Any) -> Iterator[Any]:
    """MLflow's active run, ended as MLflow ends it; if the server was lost meanwhile, the run is only
    taken off this process's stack (ending it on the server cannot be done), and the work's own outcome
    stands."""
    failed: BaseException | None = None  # what the work itself raised, which must come out as it was
    try:
        with active as run:
            try:
                yield run
            except BaseException as err:
                failed = err
                raise
    except Exception as err:
        if err is failed or not (_lost or _unreachable(err)):
            raise
        _lose(err)  # ending the run on the server failed: it is lost
        stack = mlflow.tracking.fluent._active_run_stack.get()
        if stack and stack[-1].info.run_id == active.info.run_id:
            stack.pop()
        if failed is not None:
            raise failed from None


@contextlib.contextmanager
def _killed_when_interrupted() -> Iterator[None]:
    """End the active run KILLED on a KeyboardInterrupt (MLflow itself says FAILED for every exception)."""
    try:
        yield
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")  # no longer active: MLflow's own exit leaves it as it is
        raise


@tolerant
@deferring_termination
def log_params(params: dict[str, Any]) -> None:
    """Log params in batches (MLflow caps a batch at 100); values cut to MLflow's 6000 chars."""
    items = [(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))


@tolerant
@deferring_termination
def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    clean = {k.replace("/", "_"): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if clean:
        mlflow.log_metrics(clean, step=step)


# ------------------------------------------------------------ what other modules need


@tolerant
@deferring_termination
def log_text(text: str, artifact_file: str) -> None:
    """A text artifact of the active run."""
    mlflow.log_text(text, artifact_file)


@tolerant
@deferring_termination
def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """A file of the active run, under ``artifact_path``."""
    mlflow.log_artifact(str(path), artifact_path)


def run_tag(run_ids: list[str], key: str, uri: str | None = None) -> str | None:
    """The value of tag ``key`` the runs share (None if they differ, lack it, or a run is gone)."""
    client = mlflow_client(uri)
    values = set()
    for run_id in run_ids:
        try:
            values.add(client.get_run(run_id).data.tags.get(key))
        except MlflowException:
            return None
    return values.pop() if len(values) == 1 else None


@tolerant
@deferring_termination
def set_tag(key: str, value: Any) -> None:
    """A tag of the active run."""
    mlflow.set_tag(key, str(value))


def mlflow_client(uri: str | None = None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(_connect_uri(resolve_tracking_uri(uri)))


def _search_all(
    client: mlflow.MlflowClient, experiment_ids: list[str], filter_string: str, order_by: list[str] | None = None
) -> list:
    """Every matching run: MLflow returns pages of at most 1000."""
    runs: list = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def download_checkpoint(run_id: str, out_dir: Path, uri: str | None = None) -> Path:
    """The first ``*.pt`` artifact under a run's ``checkpoints/``, downloaded to ``out_dir/checkpoints/<run_id>/``."""
    client = mlflow_client(uri)
    try:
        artifacts = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints") if a.path.endswith(".pt"))
    except MlflowException as err:
        raise UserError(f"no MLflow run {run_id} in {resolve_tracking_uri(uri)}: {err.message}") from None
    if not artifacts:
        raise UserError(
            f"MLflow run {run_id} has no checkpoint (*.pt) under its artifacts' checkpoints/; "
            "give a training run's id, or the checkpoint file itself"
        )
    target = Path(out_dir) / "checkpoints" / run_id
    target.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifacts[0], str(target)))


def finished_runs(experiment: str, filter_string: str, uri: str | None = None) -> list:
    """FINISHED runs of ``experiment`` matching ``filter_string``, newest first ([] if no such experiment)."""
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    finished = "attributes.status = 'FINISHED'"
    query = f"{filter_string} and {finished}" if filter_string.strip() else finished
    return _search_all(client, [exp.experiment_id], query, order_by=["attributes.start_time DESC"])


@tolerant
@deferring_termination
def terminate_run(run_id: str, status: str, uri: str | None = None) -> None:
    """End a run that is not (or no longer) the active one, e.g. KILLED when its process died."""
    mlflow_client(uri).set_terminated(run_id, status)


@tolerant
@deferring_termination
def log_to_run(
    run_id: str, metrics: dict[str, float] | None = None, tags: dict[str, Any] | None = None, uri: str | None = None
) -> None:
    """Metrics and tags onto a run that is not the active one (a study's parent run)."""
    c = mlflow_client(uri)
    for key, value in (metrics or {}).items():
        _once_more_on_conflict(c.log_metric, run_id, key, float(value))
    for key, value in (tags or {}).items():
        _once_more_on_conflict(c.set_tag, run_id, key, str(value))


def _once_more_on_conflict(write: Any, *args: Any) -> None:
    """Two study workers that finish together both write the parent run's summary; the store inserts a tag
    or latest metric it has not seen, so the slower insert fails on the unique key. The row exists by
    then, and writing again updates it."""
    try:
        write(*args)
    except Exception as err:  # MlflowException or SQLAlchemy's IntegrityError, depending on the store's path
        if "IntegrityError" not in str(err) and "UNIQUE constraint" not in str(err):
            raise
        log.info("concurrent write of the same MLflow key (%s): writing it again", args[1])
        time.sleep(0.5)
        write(*args)


def log_figure_to_run(run_id: str, figure: Any, artifact_file: str, uri: str | None = None) -> None:
    mlflow_client(uri).log_figure(run_id, figure, artifact_file)


def child_runs(parent_run_id: str, filter_string: str = "", uri: str | None = None) -> list:
    """Runs nested under ``parent_run_id`` (any status), optionally filtered further."""
    c = mlflow_client(uri)
    experiment = c.get_run(parent_run_id).info.experiment_id
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" + (f" and {filter_string}" if filter_string else "")
    return _search_all(c, [experiment], query)
