"""Work over several processes: torchrun's ranks, and independent array tasks (shards).

Under ``torchrun`` the environment holds RANK / WORLD_SIZE / LOCAL_RANK; without
it everything degrades to rank 0 of 1 and no process group is created, so the
same code runs on one CPU-only machine. gloo is used on CPU, nccl on CUDA.

A shard (``extract.py --shard K/N``) is one of N independent tasks of a job array: no process
group, no barrier, nothing shared but the output folder. ``Shard.parse`` reads ``K/N`` or takes
the index (and count) from the scheduler: Slurm's ``SLURM_ARRAY_TASK_ID`` and
``SLURM_ARRAY_TASK_COUNT``, a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX``, AWS Batch's
``AWS_BATCH_JOB_ARRAY_INDEX`` (the last two with the count given: ``auto/N``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from research.errors import ConfigError
from research.files import exclusive


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def context() -> Context:
    return Context(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def init(device_type: str = "cpu") -> Context:
    """Join the process group when launched by torchrun; a no-op otherwise."""
    ctx = context()
    if ctx.distributed and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        # Long timeout: rank 0 may assemble big files while the others wait at a barrier.
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    return ctx


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(items: list, ctx: Context) -> list:
    """Round-robin: rank r takes items r, r+W, ... (balanced, deterministic, order-preserving)."""
    return items[ctx.rank :: ctx.world_size]


# Variables a job array's scheduler sets to the task's index, in the order they are looked for.
INDEX_VARIABLES = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``: a contiguous block of the entries, so that the shards' files,
    in index order, hold the rows in the order one process writes them."""

    index: int
    count: int

    @property
    def tag(self) -> str:
        """``shard0002-of-0004``: in file and folder names (zero-padded, so they sort by index)."""
        return f"shard{self.index:04d}-of-{self.count:04d}"

    def block(self, items: Sequence) -> list:
        """This shard's items: ``items[K*n//N : (K+1)*n//N]`` (sizes differ by one at most)."""
        n = len(items)
        return list(items[self.index * n // self.count : (self.index + 1) * n // self.count])

    @classmethod
    def parse(cls, spec: str, env: Mapping[str, str] | None = None) -> Shard:
        """``K/N``; ``auto`` (Slurm: index and count from the array's variables); ``auto/N`` (the index from
        ``INDEX_VARIABLES``, the count given: Kubernetes and AWS Batch do not put it in the environment)."""
        env = os.environ if env is None else env
        text = spec.strip()
        head, _, tail = text.partition("/")
        try:
            count = int(tail) if tail else None
            index = None if head == "auto" else int(head)
            if index is not None and count is None:
                raise ValueError(spec)
        except ValueError:
            raise ConfigError(f"--shard {spec!r}: expected K/N (from 0: 0/4 ... 3/4), auto or auto/N") from None
        if index is not None and count is not None:
            return cls._checked(index, count, spec)
        found = [name for name in INDEX_VARIABLES if env.get(name, "") != ""]
        if not found:
            raise ConfigError(f"--shard {spec}: none of {', '.join(INDEX_VARIABLES)} is set (not in a job array?)")
        name = found[0]
        index = int(env[name])
        if name == "SLURM_ARRAY_TASK_ID":  # --array=1-8 or 0-15:4: the task's place in the array, from 0
            step = int(env.get("SLURM_ARRAY_TASK_STEP") or 1)
            index = (index - int(env.get("SLURM_ARRAY_TASK_MIN") or 0)) // step
            slurm_count = env.get("SLURM_ARRAY_TASK_COUNT")
            if slurm_count and count is not None and int(slurm_count) != count:
                raise ConfigError(f"--shard {spec}: the Slurm array has {slurm_count} tasks, not {count}")
            count = count if count is not None else int(slurm_count) if slurm_count else None
        if count is None:
            raise ConfigError(f"--shard auto: {name} gives the index only; give the count as auto/N")
        return cls._checked(index, count, f"{spec} ({name}={env[name]})")

    @classmethod
    def _checked(cls, index: int, count: int, spec: str) -> Shard:
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {spec}: shard index {index} is not in 0..{count - 1}")
        return cls(index, count)


def device_for(requested: str, ctx: Context | None = None) -> torch.device:
    """``auto`` -> this rank's GPU when there is one, else the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", (ctx or context()).local_rank)
        return torch.device("cpu")
    return torch.device(requested)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if needed), waiting for it: processes take turns.

    ``flock``, or a lock file with a heartbeat where the file system has no flock (``research.files.exclusive``).
    """
    with exclusive(path, wait=True):
        yield


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
