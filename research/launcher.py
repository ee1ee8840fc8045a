"""Independent jobs run one after another, as a local pool of processes or as one Slurm array: the library's one
home for running a list of jobs (the trainings of a cross-validation, the shards of an extraction).

A ``Job`` is a module-level function and its argument, a name, a key (``job_key``: a digest of everything that
determines its result) and the file its result goes to. ``run_jobs(jobs, cfg)``, ``cfg`` a ``LaunchConfig``:

- re-uses every job whose result file holds its key (one ``re-used`` line each) and runs the rest:
  ``serial`` in this process, one after another (today's behaviour: the jobs print to the terminal);
  ``processes`` each in a fresh interpreter, at most ``workers`` at once, each pinned to its threads (the
  OpenMP/MKL variables set before it starts, torch's threads before the job) and on CUDA to its own GPU (the only
  one it sees), its output in ``LOG_DIR/NAME.log``; ``slurm`` through submitit's ``AutoExecutor``, every job in
  one ``map_array`` (one ``sbatch --array``);
- calls each job's function as ``fn(arg, where)`` (``Where``: its device and threads) and writes what it returns
  (JSON), with the key, into the job's result file, atomically and last: a job is finished exactly when that
  file holds its key (``finished``; ``result_of`` reads the value back);
- waits, showing jobs done of total and failed, one line per finished job, and raises one ``JobsFailedError``
  line naming each failed job, why, and its log when any failed: the others stay finished, so the same command
  runs only the failed ones again;
- on Ctrl-C or SIGTERM while waiting stops the running jobs (processes: SIGTERM, SIGKILL after a grace; Slurm:
  scancel) and keeps what finished; a worker whose launcher is killed outright (SIGKILL) is stopped by the kernel
  (``PR_SET_PDEATHSIG``, Linux);
- records the ids of the jobs it submits to Slurm (``LOG_DIR/submitted.json``): a cluster's jobs outlive the
  process that submitted them, and a run started again after that process was lost (a login node's session
  gone, kill -9) waits for those still queued or running instead of submitting them twice.

Why a fresh process per job rather than long-lived pool workers: a job killed mid-run (out of memory, kill -9)
then costs that job alone (``concurrent.futures`` breaks the whole pool), its log is the process's own file
descriptors (C-level output included), and its thread and GPU settings are in its environment before anything
is imported. The price, an interpreter and torch imported per job (seconds), is small beside a training.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule

from research import interrupts
from research.config import LaunchConfig
from research.errors import Terminated, UserError, ensure_dir
from research.files import folder_lock, shown_path, write_text_atomic

log = logging.getLogger(__name__)
console = Console(stderr=True)

POLL_S = 0.5  # how often running jobs are looked at: a finished job is seen within half a second
STOP_GRACE_S = 10.0  # a stopped job's time to run its finally blocks (its MLflow run marked KILLED) before SIGKILL
RESULT_GRACE_S = 30.0  # a Slurm job that ended is failed only once its result file stays missing this long (NFS)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PARENT_VARIABLE = "RESEARCH_LAUNCHER_PID"  # a worker's launcher: the worker stops when it is gone
ROOT = Path(__file__).resolve().parents[1]  # the folder holding this package: every worker imports this copy
SUBMITTED = "submitted.json"  # the Slurm jobs submitted from a log folder: {job name: {key, job_id, cluster}}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a job's name is a file name in its log folder
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


class JobsFailedError(UserError):
    """Some jobs of a list failed; the others are finished and kept."""


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a job runs: the torch device it should use and its threads (``None``: torch's own default).

    The launcher has set torch's threads (and, in a worker, the OpenMP/MKL variables and the one GPU it sees)
    before the job's function is called; the function puts its work on ``device`` (a ``TrainConfig.device``)."""

    device: str  # "cpu", "cuda:0" (the one GPU the job sees), or "auto" (serial: the job's own choice)
    threads: int | None
    gpu: str | None = None  # the GPU behind cuda:0 as CUDA_VISIBLE_DEVICES names it (processes on CUDA)

    def device_for(self, requested: str) -> str:
        """The device a job puts its work on: the launcher's, or where the launcher leaves the choice to the job
        (``auto``, serial), the one its own config asks for (``train.device``, ``extract.device``)."""
        return requested if self.device == "auto" else self.device

    def describe(self) -> str:
        """``cpu, 1 thread``, ``GPU 3, 4 threads`` or ``this process`` (serial): the line a user reads."""
        device = f"GPU {self.gpu}" if self.gpu is not None else self.device.replace("auto", "this process")
        threads = "" if self.threads is None else f", {self.threads} thread{'s' if self.threads > 1 else ''}"
        return device + threads


@dataclasses.dataclass(frozen=True)
class Job:
    """One independent job: ``fn(arg, where)`` run once for its key, its result in the JSON file ``result``.

    ``fn`` must be a module-level function and ``arg`` picklable: both travel to a fresh interpreter (processes)
    or a cluster node (slurm) by reference and by value. ``key`` is a digest of everything that determines the
    result (``job_key``). The job is finished exactly when ``result`` holds ``{"key": key, ...}`` at its top
    level: written by ``fn`` itself, atomically and last (``research.files.write_text_atomic``), or, where ``fn``
    leaves it, by the launcher with what ``fn`` returned (JSON). A result file holding another key is from other
    inputs, and the job runs again; to run a job again for another reason, remove its result file."""

    name: str  # unique in its list: its log file and its line in the progress and in errors
    key: str
    fn: Callable[[Any, Where], Any]
    arg: Any
    result: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", Path(self.result))


def job_key(*parts: Any) -> str:
    """A digest of ``parts`` (plain data, dataclasses, paths): the same parts, the same key, in any process."""
    text = json.dumps(parts, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"job_key: a {type(value).__name__} has no stable text; pass its fields or its digest")


def _record(job: Job) -> dict[str, Any] | None:
    try:
        data = json.loads(job.result.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == job.key else None


def finished(job: Job) -> bool:
    """The job's result file holds its key: it ran to the end for exactly these inputs."""
    return _record(job) is not None


def result_of(job: Job) -> Any:
    """What the job's function returned (from its result file), or the file itself where the function wrote it."""
    record = _record(job)
    if record is None:
        raise UserError(f"job {job.name} has no result for its inputs in {shown_path(job.result)}: run it first")
    return record["value"] if "value" in record and record.get("name") == job.name else record


# ----------------------------------------------------------------- in the job's process


@dataclasses.dataclass(frozen=True)
class _Task:
    """A job as its process receives it: where it runs, and where its reason goes if it fails."""

    job: Job
    where: Where
    failure: Path  # LOG_DIR/NAME.failed.json


def _set_threads(threads: int | None) -> int | None:
    """torch's threads set to ``threads``; returns the previous count (None: nothing changed)."""
    if threads is None:
        return None
    import torch  # only where threads are set: the launcher itself runs without torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


def _reason(err: BaseException) -> str:
    """One line: a user error's message, or the exception's type and first line."""
    text = " ".join(str(err).split()) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
    return text.splitlines()[0] if text else type(err).__name__


def execute(task: _Task) -> None:
    """Run one job on its threads; then, unless the function wrote its own result file holding the key, write
    what it returned into it, last. On an exception write the reason first (beside its log)."""
    job, where = task.job, task.where
    task.failure.unlink(missing_ok=True)
    previous = _set_threads(where.threads)
    start = time.perf_counter()
    try:
        value = job.fn(job.arg, where)
        seconds = time.perf_counter() - start
        text = None
        if _record(job) is None:  # the function returned its result: the launcher writes it
            record = {"name": job.name, "key": job.key, "value": value, "seconds": seconds, "where": where.describe()}
            text = json.dumps(record, indent=1)
    except Exception as err:
        ensure_dir(task.failure.parent, "log folder")
        trace = traceback.format_exc()
        write_text_atomic(task.failure, json.dumps({"key": job.key, "reason": _reason(err), "trace": trace}))
        raise
    finally:
        _set_threads(previous)
    if text is not None:
        ensure_dir(job.result.parent, "result folder")
        write_text_atomic(job.result, text)


def _stop_on_sigterm() -> None:
    """SIGTERM (a stop, a scheduler's preemption) raises ``Terminated`` so the job's finally blocks run."""

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        interrupts.terminate()

    signal.signal(signal.SIGTERM, stop)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends this process SIGTERM when its launcher dies, however it dies (kill -9 too)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the launcher died before the line above: nobody waits for this job
        sys.exit(143)


def worker_main(task_file: str) -> None:
    """A ``processes`` worker (``python -c``): run one pickled task; its exit status says how it went."""
    _die_with_parent(int(os.environ[PARENT_VARIABLE]))
    _stop_on_sigterm()
    with open(task_file, "rb") as fh:
        task: _Task = pickle.load(fh)
    print(f"{task.job.name}: pid {os.getpid()} on {task.where.describe()}", flush=True)
    try:
        execute(task)
    except KeyboardInterrupt as err:
        print(f"{task.job.name}: stopped", flush=True)
        sys.exit(143 if isinstance(err, Terminated) else 130)


def execute_submitted(task: _Task) -> None:
    """A Slurm (submitit) job: ``execute`` with SIGTERM stopping it cleanly (submitit ignores SIGTERM)."""
    _stop_on_sigterm()
    execute(task)


# ------------------------------------------------------------------------ where jobs run


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a list runs on this machine: the launcher, and one ``Where`` per job that may run at once."""

    launcher: str  # serial, processes or slurm
    slots: tuple[Where, ...]


def cores() -> int:
    """The cores this process may use (its CPU affinity: a Slurm allocation, taskset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _gpus(cfg: LaunchConfig) -> tuple[list[int], list[str]]:
    """The GPUs jobs may use (torch's numbering), and the names CUDA_VISIBLE_DEVICES gives every visible GPU."""
    import torch  # the GPU count: torch's view, which CUDA_VISIBLE_DEVICES limits

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = list(range(count)) if cfg.devices is None else list(cfg.devices)
    beyond = [d for d in devices if d >= count]
    if beyond:
        raise UserError(
            f"launch.devices {cfg.devices}: this machine has {count} visible GPU(s), so {beyond} do not exist"
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    names = [v.strip() for v in visible.split(",")] if visible.strip() else [str(i) for i in range(count)]
    return devices, names


def plan(cfg: LaunchConfig) -> Plan:
    """Resolve ``auto``, the workers and their threads and devices on this machine (``LaunchConfig``)."""
    if cfg.launcher == "slurm":
        device = "cuda:0" if cfg.slurm_gpus_per_job else "cpu"  # Slurm gives a job its GPUs as cuda:0...
        return Plan("slurm", (Where(device, cfg.slurm_cpus_per_job),))
    gpus, names = _gpus(cfg)
    n = cores()
    if gpus:
        workers = cfg.workers or len(gpus)
        threads = cfg.threads or max(1, n // workers)
        slots = tuple(Where("cuda:0", threads, names[gpus[i % len(gpus)]]) for i in range(workers))
    else:
        workers = cfg.workers or max(1, n // (cfg.threads or 1))
        threads = cfg.threads or max(1, n // workers)
        slots = tuple(Where("cpu", threads) for _ in range(workers))
    if cfg.launcher == "processes" or (cfg.launcher == "auto" and workers > 1):
        return Plan("processes", slots)
    serial_device = "auto" if cfg.devices is None else f"cuda:{cfg.devices[0]}" if cfg.devices else "cpu"
    return Plan("serial", (Where(serial_device, cfg.threads),))


def check_available(cfg: LaunchConfig) -> None:
    """Refuse, in one line, a launcher this machine cannot run: Slurm without sbatch (never quietly local)."""
    if cfg.launcher != "slurm":
        return
    if cfg.slurm_cluster == "slurm":
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise UserError(
                f"launcher: slurm submits with sbatch, and this machine has no {' or '.join(missing)} (run from a "
                "Slurm login node), or set slurm_cluster: local to run the array's jobs as processes here"
            )
    elif cfg.slurm_gpus_per_job:
        gpus, _ = _gpus(dataclasses.replace(cfg, devices=None))
        if len(gpus) < cfg.slurm_gpus_per_job:
            raise UserError(
                f"slurm_cluster: local runs the jobs on this machine, which has {len(gpus)} GPU(s), not the "
                f"{cfg.slurm_gpus_per_job} of slurm_gpus_per_job: set slurm_gpus_per_job: {len(gpus)}"
            )


def log_folder(jobs: Sequence[Job], cfg: LaunchConfig) -> Path:
    """``cfg.log_dir``, else ``jobs/`` in the folder that holds every job's result."""
    if cfg.log_dir:
        return Path(cfg.log_dir)
    common = os.path.commonpath([str(job.result.resolve().parent) for job in jobs])
    return Path(common) / "jobs"


# ----------------------------------------------------------------------------- run_jobs


@dataclasses.dataclass(frozen=True)
class _Failure:
    name: str
    reason: str
    log: Path


def run_jobs(jobs: Sequence[Job], cfg: LaunchConfig, name: str = "research") -> None:
    """Run every job of ``jobs`` that has no result for its key yet, as ``cfg`` says; raise ``JobsFailedError``
    naming each failed one (the finished ones are kept). ``name``: the Slurm array's job name."""
    _check_list(jobs)
    pending = []
    for job in jobs:
        if finished(job):
            log.info("%s: re-used %s (finished for the same inputs)", job.name, shown_path(job.result))
        else:
            pending.append(job)
    if not pending:
        return
    check_available(cfg)
    how = plan(cfg)
    logs = ensure_dir(log_folder(jobs, cfg), "log folder")
    run = {"serial": _serial, "processes": _processes, "slurm": _slurm}[how.launcher]
    with folder_lock(logs, "jobs", ".launch.lock"):
        failures = run(pending, how, cfg, logs, name)
    if failures:
        listed = "; ".join(f"{f.name}: {f.reason} (log: {shown_path(f.log)})" for f in failures)
        kept = len(pending) - len(failures)
        raise JobsFailedError(
            f"{len(failures)} of {len(pending)} job(s) failed, {kept} finished and kept; the same command runs only "
            f"the failed ones again: {listed}"
        )


def _check_list(jobs: Sequence[Job]) -> None:
    """Names are file names, unique; functions importable by another interpreter (a programming error else)."""
    names: set[str] = set()
    results: set[Path] = set()
    for job in jobs:
        if not NAME.match(job.name) or job.name in names:
            raise ValueError(f"job name {job.name!r}: names are unique and made of letters, digits, '.', '_', '-'")
        if job.result.resolve() in results:
            raise ValueError(f"job {job.name}: its result file {job.result} is another job's too")
        names.add(job.name)
        results.add(job.result.resolve())
        if getattr(job.fn, "__module__", "__main__") == "__main__" or "<" in getattr(job.fn, "__qualname__", "<"):
            raise ValueError(f"job {job.name}: its function must be defined at a module's top level, not in __main__")


def _task(job: Job, where: Where, logs: Path) -> _Task:
    return _Task(job, where, logs / f"{job.name}.failed.json")


def _failure_reason(task: _Task, otherwise: str) -> str:
    try:
        record = json.loads(task.failure.read_text())
    except (OSError, ValueError):
        return otherwise
    return record["reason"] if record.get("key") == task.job.key else otherwise


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
    )


def _done_line(job: Job, seconds: float, where: Where) -> str:
    return f"[green]done[/green] {job.name} in {seconds:.0f} s ({where.describe()})"


def _failed_line(failure: _Failure) -> str:
    return f"[red]failed[/red] {failure.name}: {failure.reason} (log: {shown_path(failure.log)})"


# ------------------------------------------------------------------------------- serial


def _serial(pending: list[Job], how: Plan, cfg: LaunchConfig, logs: Path, name: str) -> list[_Failure]:
    """One job after another in this process: its output in the terminal, its traceback (if any) in its log."""
    where = how.slots[0]
    failures = []
    for i, job in enumerate(pending, 1):
        console.print(Rule(f"[bold]job {i}/{len(pending)}: {job.name}"))
        task = _task(job, where, logs)
        start = time.perf_counter()
        try:
            execute(task)
        except Exception as err:
            trace = logs / f"{job.name}.log"
            trace.write_text(traceback.format_exc())
            failures.append(_Failure(job.name, _reason(err), trace))
            console.print(_failed_line(failures[-1]), soft_wrap=True)
        else:
            console.print(_done_line(job, time.perf_counter() - start, where))
    return failures


# ---------------------------------------------------------------------------- processes


@dataclasses.dataclass
class _Running:
    task: _Task
    process: subprocess.Popen
    log: Path
    start: float


def _environment(where: Where) -> dict[str, str]:
    """The worker's environment: its threads and GPU set before it starts, this copy of the package first."""
    env = dict(os.environ)
    if where.threads is not None:
        env |= {name: str(where.threads) for name in THREAD_VARIABLES}
    if where.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = where.gpu
    elif where.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job puts nothing on a GPU by accident
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env["PYTHONUNBUFFERED"] = "1"
    env[PARENT_VARIABLE] = str(os.getpid())
    return env


def _start(task: _Task, logs: Path) -> _Running:
    """A fresh interpreter for one task, in a session of its own (the launcher alone decides when it stops)."""
    task.failure.unlink(missing_ok=True)  # an earlier attempt's reason is not this one's
    task_file = logs / f"{task.job.name}.task.pkl"
    with open(task_file, "wb") as fh:
        pickle.dump(task, fh)
    log_path = logs / f"{task.job.name}.log"
    code = f"import sys; from {__name__} import worker_main; worker_main(sys.argv[1])"
    with open(log_path, "a") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {task.job.name} (key {task.job.key})\n")
        out.flush()
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(task_file)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(task.where),
            start_new_session=True,
        )
    return _Running(task, process, log_path, time.perf_counter())


def _exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _processes(pending: list[Job], how: Plan, cfg: LaunchConfig, logs: Path, name: str) -> list[_Failure]:
    """At most one job per slot at once, each in its own process; a slot is given to the next job when free."""
    queue, free = list(pending), list(how.slots)
    running: list[_Running] = []
    failures: list[_Failure] = []
    console.print(
        f"{len(pending)} job(s) on {len(free)} worker(s) ({free[0].describe()} each); logs in {shown_path(logs)}"
    )
    with _progress() as progress:
        bar = progress.add_task("jobs", total=len(pending), failed=0)
        try:
            while queue or running:
                while queue and free:
                    running.append(_start(_task(queue.pop(0), free.pop(0), logs), logs))
                time.sleep(POLL_S)
                for item in [r for r in running if r.process.poll() is not None]:
                    running.remove(item)
                    free.append(item.task.where)
                    job, code = item.task.job, item.process.returncode
                    if code == 0 and finished(job):
                        progress.console.print(_done_line(job, time.perf_counter() - item.start, item.task.where))
                    else:
                        reason = _failure_reason(item.task, _exit_reason(code))
                        failures.append(_Failure(job.name, reason, item.log))
                        progress.console.print(_failed_line(failures[-1]), soft_wrap=True)
                    progress.update(bar, advance=1, failed=len(failures))
        except BaseException:  # Ctrl-C, SIGTERM (Terminated) or a bug here: no worker outlives the launcher
            _stop(running)
            raise
    return failures


def _stop(running: list[_Running]) -> None:
    """SIGTERM to every running job, SIGKILL to the process group of any still alive after the grace."""
    if not running:
        return
    for item in running:
        with contextlib.suppress(ProcessLookupError):
            item.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for item in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.process.wait(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(item.process.pid, signal.SIGKILL)  # the worker and anything it started (decoders)
        item.process.wait()
    names = ", ".join(item.task.job.name for item in running)
    console.print(f"[yellow]stopped[/yellow] {len(running)} running job(s): {names}; finished jobs are kept")


# -------------------------------------------------------------------------------- slurm


class _Adopted:
    """A job of submitit's LocalExecutor started by an earlier, lost launcher: its controller's pid is its id."""

    def __init__(self, job_id: str, folder: Path) -> None:
        self.job_id = job_id
        self.paths = submitit.core.utils.JobPaths(folder, job_id, 0)

    def done(self) -> bool:
        try:
            fields = Path(f"/proc/{int(self.job_id)}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{int(self.job_id)}/cmdline").read_bytes()
        except (OSError, ValueError):
            return True
        return fields[0] in ("Z", "X") or b"submitit" not in cmdline  # a zombie, or the pid given to another

    @property
    def state(self) -> str:
        return "FINISHED" if self.done() else "RUNNING"

    def cancel(self, check: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(self.job_id), signal.SIGINT)  # as LocalJob.cancel: the controller stops its task


@dataclasses.dataclass
class _Submitted:
    task: _Task
    job: Any  # a submitit Job, or _Adopted
    ended_at: float | None = None  # when the job was first seen ended without a result


def _slurm_parameters(cfg: LaunchConfig, name: str, threads: int) -> dict[str, Any]:
    """submitit's parameters: the shared ones, then each cluster's own (prefixed slurm_ / local_)."""
    env = [f"export {v}={threads}" for v in THREAD_VARIABLES]
    env.append(f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}")
    return {
        "name": name,
        "timeout_min": cfg.slurm_time_min,
        "mem_gb": cfg.slurm_mem_gb,
        "cpus_per_task": cfg.slurm_cpus_per_job,
        "gpus_per_node": cfg.slurm_gpus_per_job,
        "tasks_per_node": 1,
        "nodes": 1,
        "stderr_to_stdout": True,  # one log per job, its traceback where its output stopped
        "slurm_partition": cfg.slurm_partition,
        "slurm_array_parallelism": cfg.slurm_array_parallelism,
        "slurm_additional_parameters": dict(cfg.slurm_extra),
        "slurm_setup": [*cfg.slurm_setup, *env],
        "local_setup": env,  # not the cluster's own lines (module load ...): this machine has none of them
    }


def _read_submitted(logs: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((logs / SUBMITTED).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _adopt(record: dict[str, str], cluster: str, folder: Path) -> Any:
    """A job an earlier launcher submitted, to wait for; None when it is no longer queued or running."""
    job: Any = _Adopted(record["job_id"], folder) if cluster == "local" else submitit.SlurmJob(folder, record["job_id"])
    return None if job.done() else job


def _slurm(pending: list[Job], how: Plan, cfg: LaunchConfig, logs: Path, name: str) -> list[_Failure]:
    """Every job not already queued or running as one array (``map_array``); wait for all of them."""
    cluster = cfg.slurm_cluster
    folder = logs / cluster
    where = how.slots[0]
    records = _read_submitted(logs)
    submitted: dict[str, _Submitted] = {}
    for job in pending:
        record = records.get(job.name)
        if record and record.get("key") == job.key and record.get("cluster") == cluster:
            adopted = _adopt(record, cluster, folder)
            if adopted is not None:
                submitted[job.name] = _Submitted(_task(job, where, logs), adopted)
    if submitted:
        ids = ", ".join(s.job.job_id for s in submitted.values())
        console.print(f"waiting for {len(submitted)} job(s) submitted earlier and still queued or running ({ids})")
    fresh = [_task(job, where, logs) for job in pending if job.name not in submitted]
    for task in fresh:
        task.failure.unlink(missing_ok=True)  # an earlier attempt's reason is not this one's
    if fresh:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        executor.update_parameters(**_slurm_parameters(cfg, name, where.threads or 1))
        jobs = executor.map_array(execute_submitted, fresh)
        for task, job in zip(fresh, jobs, strict=True):
            submitted[task.job.name] = _Submitted(task, job)
            records[task.job.name] = {"key": task.job.key, "job_id": job.job_id, "cluster": cluster}
        write_text_atomic(logs / SUBMITTED, json.dumps(records, indent=1, sort_keys=True))
        array = jobs[0].job_id.split("_")[0]
        console.print(f"submitted {len(fresh)} job(s) as one array ({cluster} {array}); logs in {shown_path(folder)}")
    return _wait_submitted(list(submitted.values()), cluster)


def _wait_submitted(waiting: list[_Submitted], cluster: str) -> list[_Failure]:
    failures: list[_Failure] = []
    total = len(waiting)
    with _progress() as progress:
        bar = progress.add_task("jobs", total=total, failed=0)
        try:
            while waiting:
                time.sleep(POLL_S)
                for item in list(waiting):
                    job = item.task.job
                    if finished(job):
                        waiting.remove(item)
                        seconds = (_record(job) or {}).get("seconds", 0.0)
                        progress.console.print(_done_line(job, seconds, item.task.where))
                    elif item.job.done():
                        item.ended_at = item.ended_at or time.monotonic()
                        grace = RESULT_GRACE_S if cluster == "slurm" else 0.0  # a shared file system may lag
                        if time.monotonic() - item.ended_at < grace:
                            continue
                        waiting.remove(item)
                        reason = _failure_reason(item.task, f"ended without a result ({item.job.state})")
                        failures.append(_Failure(job.name, reason, item.job.paths.stdout))
                        progress.console.print(_failed_line(failures[-1]), soft_wrap=True)
                    else:
                        continue
                    progress.update(bar, completed=total - len(waiting), failed=len(failures))
        except BaseException:  # Ctrl-C or SIGTERM here: a deliberate stop stops the array's unfinished jobs
            _cancel(waiting, cluster)
            raise
    return failures


def _cancel(waiting: list[_Submitted], cluster: str) -> None:
    if not waiting:
        return
    if cluster == "slurm":
        with contextlib.suppress(OSError):
            subprocess.call(["scancel", *[item.job.job_id for item in waiting]])
    else:
        for item in waiting:
            with contextlib.suppress(OSError):
                item.job.cancel(check=False)
    names = ", ".join(item.task.job.name for item in waiting)
    console.print(f"[yellow]cancelled[/yellow] {len(waiting)} unfinished job(s): {names}; finished jobs are kept")


__all__ = [
    "Job",
    "JobsFailedError",
    "Plan",
    "Where",
    "check_available",
    "cores",
    "execute",
    "finished",
    "job_key",
    "log_folder",
    "plan",
    "result_of",
    "run_jobs",
    "worker_main",
]
