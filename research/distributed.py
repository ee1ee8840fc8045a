"""torchrun (torch.distributed) plumbing: rank and world, process group, sharding, barriers.

Under ``torchrun`` the environment holds RANK / WORLD_SIZE / LOCAL_RANK; without
it everything degrades to rank 0 of 1 and no process group is created, so the
same code runs on one CPU-only machine. gloo is used on CPU, nccl on CUDA.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


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


def device_for(requested: str, ctx: Context | None = None) -> torch.device:
    """``auto`` -> this rank's GPU when there is one, else the CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", (ctx or context()).local_rank)
        return torch.device("cpu")
    return torch.device(requested)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if needed): processes on one machine take turns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
