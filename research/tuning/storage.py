"""Where an Optuna study lives, and how its workers stay honest with each other.

- ``storage_for``: a journal file (several processes on one machine) or an RDB URL (several
  machines), both with heartbeats: Optuna's own for RDB, ``HeartbeatJournalStorage`` for files;
- ``StaleTrialHandler``: a trial whose worker died (no heartbeat for ``stale_after_s``) is
  failed by Optuna before the next trial starts; this ends its MLflow run KILLED and queues its
  parameters again, once;
- ``worker_seed``: each worker's sampler seed, from the study seed and the worker's number.

The study itself (objective, workers, summary) is ``research.tuning.search``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from research import tracking
from research.config import SearchConfig
from research.errors import UserError

log = logging.getLogger(__name__)
PARENT_ATTR = "mlflow_parent_run_id"  # the study's MLflow parent run (a study user attribute)
HEARTBEAT_ATTR = "heartbeat"
RUN_ATTRS = ("worker", "sampler_seed", "mlflow_run_id", "test_macro_f1")  # of one run, not of its parameters
# Optuna marks its heartbeat API experimental; we rely on it on purpose.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


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
        for attempt in range(3):  # workers starting together race to create the schema: the loser tries again
            try:
                storage = RDBStorage(
                    cfg.storage,
                    # A connection the server closed while a trial trained (an idle timeout, a restart) is
                    # replaced before use, not reported as a failed trial (optuna #5600).
                    engine_kwargs={"pool_pre_ping": True, "pool_recycle": 300},
                    heartbeat_interval=interval,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=callback,
                )
                return storage, None
            except Exception as err:  # sqlalchemy's OperationalError, a missing driver, a malformed URL
                if attempt == 2 or isinstance(err, sqlalchemy.exc.OperationalError):  # no server: no second try
                    raise UserError(f"cannot open the study storage {shown_url(cfg.storage)}: {_reason(err)}") from None
                time.sleep(1.0 + attempt)
    path = Path(cfg.storage or Path("mlruns") / "optuna" / f"{cfg.study}.journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    interval = max(0.1, cfg.heartbeat_s)
    # Two missed beats at least: one late write under a contended file lock must not kill a live trial.
    grace = max(2 * interval, cfg.stale_after_s)
    return HeartbeatJournalStorage(str(path), interval, grace, callback), path


def shown_url(url: str) -> str:
    """A database URL as printed: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy reads: show none of it past the scheme
        return url.split("://", 1)[0] + "://..."


def _reason(err: Exception) -> str:
    """The first line of the driver's own message (sqlalchemy wraps it with SQL and a link)."""
    inner = getattr(err, "orig", None) or err
    return f"{type(inner).__name__}: {str(inner).strip().splitlines()[0] if str(inner).strip() else ''}"


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
