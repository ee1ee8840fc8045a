"""MLflow: where the store lives, how runs open, and the logging helpers every stage shares.

The store is SQLite under ``mlruns/`` (MLflow 3 refuses the old file store), with
artifacts beside it in ``mlruns/artifacts/``. ``MLFLOW_TRACKING_URI``, when set,
wins over our default, as MLflow's own convention says. The first process to
touch a store creates it under a file lock, so parallel workers (Optuna, torchrun,
``make -j``) never race the schema migration.

    mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow

from research.distributed import file_lock
from research.errors import UserError

log = logging.getLogger(__name__)

# MLflow 3's UI opens an experiment by its kind; without one it lands on the GenAI "Traces" page.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

DEFAULT_DIR = Path("mlruns")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI > ``$MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(DEFAULT_DIR / 'mlflow.db').resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    db = _sqlite_path(uri)
    if db is None:  # a server or remote DB serialises on its own
        yield
        return
    with file_lock(db.with_suffix(".lock")):
        yield


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def get_experiment_id(name: str, uri: str | None = None) -> str:
    """Create the store (once, under a lock) and the experiment if needed, of the classic-ML kind; return its id."""
    _quiet_mlflow()
    uri = resolve_tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            for key, value in EXPERIMENT_KIND.items():
                if key not in experiment.tags:  # stores made before the kind was set
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        db = _sqlite_path(uri)
        location = (db.parent / "artifacts" / name).resolve().as_uri() if db else None
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


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
    """Open an MLflow run (or nothing when ``enabled`` is false); failed runs end FAILED.

    ``run_id`` re-opens an existing run (a resumed training continues its own run).
    """
    if not enabled:
        yield None
        return
    experiment_id = get_experiment_id(experiment, uri)
    if run_id is not None:
        with mlflow.start_run(run_id=run_id) as run:
            yield run
        return
    all_tags = {"git_commit": git_commit(), **{k: str(v) for k, v in (tags or {}).items()}}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=all_tags, nested=nested or bool(parent_run_id)
    ) as run:
        yield run


def log_params(params: dict[str, Any]) -> None:
    """Log params in batches (MLflow caps a batch at 100); values cut to MLflow's 6000 chars."""
    items = [(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i : i + 100]))


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    clean = {k.replace("/", "_"): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if clean:
        mlflow.log_metrics(clean, step=step)


# ------------------------------------------------------------ what other modules need


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def set_tag(key: str, value: Any) -> None:
    mlflow.set_tag(key, str(value))


def download_checkpoint(run_id: str, out_dir: Path, uri: str | None = None) -> Path:
    """The first ``*.pt`` artifact under a run's ``checkpoints/``, downloaded to ``out_dir/checkpoints/<run_id>/``."""

    client = mlflow.MlflowClient(resolve_tracking_uri(uri))
    artifacts = [a.path for a in client.list_artifacts(run_id, "checkpoints") if a.path.endswith(".pt")]
    if not artifacts:
        raise UserError(f"MLflow run {run_id} has no checkpoint artifact under checkpoints/")
    target = Path(out_dir) / "checkpoints" / run_id
    target.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, artifacts[0], str(target)))


def finished_runs(experiment: str, filter_string: str, uri: str | None = None) -> list:
    """FINISHED runs of ``experiment`` matching ``filter_string``, newest first ([] if no such experiment)."""
    client = mlflow.MlflowClient(resolve_tracking_uri(uri))
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs(
        [exp.experiment_id],
        filter_string=f"{filter_string} and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )


def terminate_run(run_id: str, status: str, uri: str | None = None) -> None:
    mlflow.MlflowClient(resolve_tracking_uri(uri)).set_terminated(run_id, status)


def mlflow_client(uri: str | None = None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(resolve_tracking_uri(uri))


def log_to_run(
    run_id: str, metrics: dict[str, float] | None = None, tags: dict[str, Any] | None = None, uri: str | None = None
) -> None:
    """Metrics and tags onto a run that is not the active one (a study's parent run)."""
    c = mlflow_client(uri)
    for key, value in (metrics or {}).items():
        c.log_metric(run_id, key, float(value))
    for key, value in (tags or {}).items():
        c.set_tag(run_id, key, str(value))


def log_figure_to_run(run_id: str, figure: Any, artifact_file: str, uri: str | None = None) -> None:
    mlflow_client(uri).log_figure(run_id, figure, artifact_file)


def child_runs(parent_run_id: str, filter_string: str = "", uri: str | None = None) -> list:
    """Runs nested under ``parent_run_id`` (any status), optionally filtered further."""
    c = mlflow_client(uri)
    experiment = c.get_run(parent_run_id).info.experiment_id
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'" + (f" and {filter_string}" if filter_string else "")
    return c.search_runs([experiment], filter_string=query)
