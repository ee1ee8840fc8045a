"""SIGTERM that waits for a tracking-store write to finish.

``run_cli`` turns SIGTERM into ``Terminated`` so every ``finally:`` runs and the MLflow run is
marked KILLED. Raised in the middle of an SQLite write, though, it left the store locked: the
half-done transaction held the lock while the KILLED mark waited for it ("database is locked"
after 20 s, seen in the SIGTERM test). Store writes therefore run ``deferring_termination``:
a SIGTERM that arrives during one is raised as soon as the write returns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from research.errors import Terminated

F = TypeVar("F", bound=Callable[..., Any])
_depth = 0  # store writes under way in this process (nested calls count once each)
_pending = False  # a SIGTERM arrived during one


def terminate() -> None:
    """What the SIGTERM handler does: raise ``Terminated`` now, or when the current store write ends."""
    global _pending
    if _depth:
        _pending = True
        return
    raise Terminated


@contextmanager
def termination_deferred() -> Iterator[None]:
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            _pending = False
            raise Terminated


def deferring_termination(fn: F) -> F:
    """Run ``fn`` with SIGTERM deferred until it returns (a store write must not be cut in half)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with termination_deferred():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["deferring_termination", "terminate", "termination_deferred"]
