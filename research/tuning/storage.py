"""Where an Optuna study lives, and how its workers stay honest with each other.

- ``storage_for``: a journal file (several processes on one machine) or an RDB URL (several
  machines), both with heartbeats: Optuna's own for RDB, ``HeartbeatJournalStorage`` for files;
- ``RetryingRDBStorage``: an RDB storage whose calls ride through a database restart (tried again for
  ``storage_retry_s``), and past that stop the worker in one line (``StorageLost``, ``lost_in_one_line``);
- ``StaleTrialHandler``: a trial whose worker died (no heartbeat for ``stale_after_s``) is
  failed by Optuna before the next trial starts; this ends its MLflow run KILLED and queues its
  parameters again, once;
- ``worker_seed``: each worker's sampler seed, from the study seed and the worker's number.

The study itself (objective, workers, summary) is ``research.tuning.search``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
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
        # A connection the server closed while a trial trained (an idle timeout, a restart) is replaced before
        # use, not reported as a failed trial (optuna #5600).
        engine: dict[str, Any] = {"pool_pre_ping": True, "pool_recycle": 300}
        if _is_postgresql(cfg.storage):  # libpq waits ~2 min for a host that drops packets: longer than the bound
            engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        for attempt in range(3):  # workers starting together race to create the schema: the loser tries again
            try:
                storage = RetryingRDBStorage(
                    cfg.storage,
                    retry_s=cfg.storage_retry_s,
                    engine_kwargs=engine,
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


def _is_postgresql(url: str) -> bool:
    try:
        parsed = make_url(url)
    except Exception:  # not a URL sqlalchemy reads: RDBStorage says so in one line
        return False
    return parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query


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


# ------------------------------------------------------------------ a database that blinks

CONNECT_TIMEOUT_S = 10  # one try to reach a PostgreSQL server: a bounded part of storage_retry_s
HEARTBEAT = "record_heartbeat"
# Every RDBStorage method that opens a database session (``_create_scoped_session`` in
# optuna/storages/_rdb/storage.py; a test checks the list against the installed Optuna): the calls of a
# running study (ask, tell, report, heartbeat, the trial-budget count) and the private ones through which
# Optuna's cache (``_CachedStorage``) makes them.
RIDE_THROUGH = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "_create_new_trial", "_set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial", "_get_trials",
    "_get_best_trial_id", HEARTBEAT, "_get_stale_trial_ids",
)  # fmt: skip


class StorageLost(UserError):
    """The study's database stopped answering for longer than ``storage_retry_s`` (exit 2, one line)."""


def _outage(err: BaseException) -> BaseException | None:
    """The database error under ``err`` when it says the database is not answering (refused, reset, starting
    up, a connection the server dropped), else None. Optuna wraps it in a ``StorageInternalError``."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return current
        if getattr(current, "connection_invalidated", False):  # any DBAPI error SQLAlchemy calls a disconnect
            return current
        current = current.__cause__ or current.__context__
    return None


def _riding_through(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of ``RetryingRDBStorage``, tried again while the database does not answer."""

    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._ride_through(method, args, kwargs)

    return call


class RetryingRDBStorage(RDBStorage):
    """Optuna's RDB storage, riding through a database restart or failover.

    A call that meets a database that does not answer is tried again, with a back-off of 0.25 s doubling to
    2 s, until the outage has lasted ``retry_s``: one clock for every thread (the worker and its heartbeat),
    started by the first failure and stopped by the first answer. Then the storage is ``lost``: every call
    raises ``StorageLost`` at once (the heartbeat thread ends quietly instead, leaving the main thread to say
    why), and ``lost_in_one_line`` turns what comes out of Optuna into one line.

    Writes are mostly safe to repeat (attributes, intermediate values and heartbeats are upserts, a
    parameter already written is an ignored duplicate). A tell whose commit went through but whose answer
    was lost is recognised on its repeat (``set_trial_state_values``) instead of failing the trial. Not
    covered: a trial created (or a queued one taken) in the instant between the commit and the lost answer,
    which Optuna cannot tell from another worker's; that trial stays RUNNING without a heartbeat.
    """

    def __init__(self, url: str, retry_s: float, **kwargs: Any) -> None:
        self.shown_url, self.retry_s = shown_url(url), retry_s
        self.lost: str | None = None  # why the database was given up on (the driver's first line); None: it answers
        self._since: float | None = None  # when the current outage began (monotonic), over every thread
        self._guard = threading.Lock()
        self._gone = threading.Event()  # set when lost: wakes every thread that waits to try again
        self._local = threading.local()  # per thread: inside a call (nested calls are retried as a whole), a retry
        super().__init__(url, **kwargs)

    def _ride_through(self, method: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        local = self._local
        if getattr(local, "inside", False):  # an outer call of this thread tries again as a whole
            return method(self, *args, **kwargs)
        local.inside, attempt = True, 0
        try:
            while True:
                if self.lost is not None:
                    if method.__name__ == HEARTBEAT:  # a traceback in the heartbeat thread would say nothing more
                        return None
                    raise StorageLost(self.lost_line())
                local.retried = attempt > 0
                try:
                    result = method(self, *args, **kwargs)
                except Exception as err:
                    cause = _outage(err)
                    if cause is None:
                        raise
                    self._gone.wait(self._failed(cause, attempt))
                    attempt += 1
                else:
                    self._answered()
                    return result
        finally:
            local.inside = local.retried = False

    def _failed(self, cause: BaseException, attempt: int) -> float:
        """Seconds to wait before the next try; 0 once the outage has lasted ``retry_s`` (``lost`` is set then)."""
        now = time.monotonic()
        with self._guard:
            if self._since is None:
                self._since = now
                log.warning(
                    "the study's storage %s is not answering (%s): trying again for up to %g s",
                    self.shown_url,
                    _reason(cause),
                    self.retry_s,
                )
            left = self._since + self.retry_s - now
            if left <= 0 and self.lost is None:
                self.lost = _reason(cause)
                self._gone.set()
        return max(0.0, min(left, 0.25 * 2**attempt, 2.0))

    def _answered(self) -> None:
        if self._since is None:
            return
        with self._guard:
            if self._since is not None:
                log.warning(
                    "the study's storage answers again after %.1f s: the study goes on", time.monotonic() - self._since
                )
                self._since = None

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        try:
            return super().set_trial_state_values(trial_id, state, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            # A repeated tell whose first try was committed before the answer was lost: done is done.
            if getattr(self._local, "retried", False) and state.is_finished():
                trial = super().get_trial(trial_id)
                if trial.state == state and trial.values == (list(values) if values is not None else None):
                    return True
            raise

    def lost_line(self, trial: int | None = None) -> str:
        """The one line a worker stops with once the database is lost (``trial``: the one under way)."""
        during = f" during trial {trial}" if trial is not None else ""
        again = (
            f" (a worker that starts once trial {trial}'s last heartbeat is {self.grace_period:g} s old fails it "
            "and runs it again)"
            if trial is not None
            else ""
        )
        return (
            f"the study's storage {self.shown_url} stopped answering{during} ({self.lost}; tried again for "
            f"{self.retry_s:g} s, search.storage_retry_s); finished trials are kept; run the same command again "
            f"when it is back{again}"
        )


for _name in RIDE_THROUGH:
    setattr(RetryingRDBStorage, _name, _riding_through(getattr(RetryingRDBStorage, _name)))


@contextlib.contextmanager
def lost_in_one_line(storage: optuna.storages.BaseStorage, trial: Callable[[], int | None]) -> Iterator[None]:
    """Whatever comes out of Optuna once ``storage`` is lost becomes its one line (``UserError``, exit 2):
    Optuna's own errors on the way out (``StorageInternalError``, its ``UnboundLocalError: updated_state``)
    are consequences, not causes. ``trial`` names the trial under way, if any."""
    try:
        yield
    except Exception:
        if not isinstance(storage, RetryingRDBStorage) or storage.lost is None:
            raise
        raise StorageLost(storage.lost_line(trial())) from None


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
            _end_killed(parent, trial.number, self.uri)
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


@tracking.tolerant  # a tracking server lost mid-study costs the tracking, not the study
def _end_killed(parent_run_id: str, trial_number: int, uri: str | None) -> None:
    """The MLflow run of a dead worker's trial: tagged ``optuna_state=FAIL`` and, if still RUNNING, ended KILLED."""
    for run in tracking.child_runs(parent_run_id, f"tags.trial = '{trial_number}'", uri):
        tracking.log_to_run(run.info.run_id, tags={"optuna_state": "FAIL"}, uri=uri)
        if run.info.status == "RUNNING":
            tracking.terminate_run(run.info.run_id, "KILLED", uri)


def worker_seed(study_seed: int, worker: int, shared_machines: bool) -> int:
    """A sampler seed per worker: reproducible for (study seed, worker number); ``shared_machines`` mixes in
    host and pid, for a number that another machine may have drawn too."""
    entropy = [study_seed, worker]
    if shared_machines:  # no file lock across machines: two workers could draw one number
        entropy += [os.getpid(), int.from_bytes(socket.gethostname().encode()[:8].ljust(8, b"\0"), "little")]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
