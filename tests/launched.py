"""Job functions the launcher's tests run in real workers: module-level, so another interpreter imports them.

torch is imported inside the functions that need it, so the workers of the quick jobs start in a fraction of a
second (they stand for a training where only the launcher's behaviour is tested)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from research.errors import UserError
from research.files import write_text_atomic
from research.launcher import Job, Where, job_key


def train_job(cfg: Any, where: Where) -> dict[str, Any]:
    """A real training on ``where``'s device; its checkpoint in ``cfg.out_dir``, its metrics returned."""
    from research.engine.training import train  # torch: only the training jobs' workers pay for it

    result = train(dataclasses.replace(cfg, device=where.device))
    keys = ("best_val_macro_f1", "best_val_loss", "test_macro_f1", "test_loss", "checkpoint")
    return {k: result[k] for k in keys}


def wait_job(arg: dict[str, Any], where: Where) -> dict[str, Any]:
    """Record that it started (and its pid), then wait until ``arg['go']`` exists: a job to kill mid-run."""
    Path(arg["started"]).write_text(f"{os.getpid()}\n")
    while not Path(arg["go"]).exists():
        time.sleep(0.1)
    return {"value": arg["value"], "pid": os.getpid()}


def quick_job(arg: dict[str, Any], where: Where) -> dict[str, Any]:
    """Returns at once, recording each run in ``arg['runs']`` (a file of one line per run)."""
    with open(arg["runs"], "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return {"value": arg["value"]}


def failing_job(arg: dict[str, Any], where: Where) -> None:
    """A job that fails the way a user's mistake does: one line, no traceback."""
    raise UserError(f"the features in {arg['features']} do not exist\n(second line of the message)")


def threads_job(arg: dict[str, Any], where: Where) -> dict[str, Any]:
    """What the job's process was given: torch's threads, the OpenMP variable, the GPUs it sees."""
    import torch  # only here: the thread count torch runs with

    return {
        "torch_threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device": where.device,
        "threads": where.threads,
    }


def waiting_jobs(root: Path, names: tuple[str, ...] = ("a", "b", "c")) -> list[Job]:
    """The first job quick, the others waiting for ``root/go``: a list whose launcher can be stopped mid-run."""
    jobs = [
        Job(
            names[0],
            job_key("quick", names[0]),
            quick_job,
            {"runs": str(root / "runs.txt"), "value": 0},
            root / f"{names[0]}.json",
        )
    ]
    for i, name in enumerate(names[1:], 1):
        arg = {"started": str(root / f"{name}.started"), "go": str(root / "go"), "value": i}
        jobs.append(Job(name, job_key("wait", name), wait_job, arg, root / f"{name}.json"))
    return jobs


def own_result_job(arg: dict[str, Any], where: Where) -> Path:
    """Writes its own result file, the key at its top level, last (as ``run_member_job`` does); returns a path."""
    path = Path(arg["result"])
    write_text_atomic(path, json.dumps({"key": arg["key"], "answer": 42, "device": where.device}))
    return path
