"""Writing files so that a crash, a full disk or a second process never leaves a wrong one behind.

- ``temporary_path``: a per-process temporary name next to a target; finished files are
  renamed into place, so a reader sees the old file or the new one, never half of one,
  and two processes never write the same temporary file.
- ``replaced_atomically``: the rename (and the clean-up on failure) for any writer;
  ``write_text_atomic``, the same for small text files (JSON reports, settings).
- ``folder_lock``: one writer per output folder; a second process is refused in one line
  naming the holder (pid, host, since when) instead of racing on the same files.
- ``disk_errors``: an out-of-space ``OSError`` anywhere inside becomes one user error that
  names the folder and says that re-running resumes from the committed work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from research.errors import UserError

# errno values that mean "this file system cannot take more": a full disk, a quota, a file-size limit.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class OutOfSpaceError(UserError):
    """The output folder's file system is full; committed work is kept for the next run."""


class FolderBusyError(UserError):
    """Another process is writing into the same output folder."""


def temporary_path(target: Path) -> Path:
    """``NAME.<pid>.tmp`` beside ``target``: this process's own, renamed onto ``target`` when complete."""
    return target.with_name(f"{target.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replaced_atomically(target: Path) -> Iterator[Path]:
    """Yield this process's temporary path for ``target``; rename it onto ``target`` when the block ends well.

    On any failure (a full disk included) the temporary file is removed and ``target`` is untouched.
    """
    tmp = temporary_path(target)
    try:
        yield tmp
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def shown_path(path: str | Path) -> str:
    """``path`` as a report or a printed line shows it: relative to the current folder when it lies below it
    (so nothing written into a checkout carries where the checkout lies), else as it is."""
    path = Path(path)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return path.relative_to(Path.cwd()).as_posix()
    return path.as_posix()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, fsync and a rename."""
    path = Path(path)
    with replaced_atomically(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def is_out_of_space(err: BaseException) -> bool:
    """An ``OSError`` of a full file system, also when a library (h5py) lost the errno on the way."""
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return True
    text = str(err).lower()
    return isinstance(err, OSError) and ("no space left" in text or "file too large" in text)


def out_of_space_cause(err: BaseException) -> BaseException | None:
    """The full disk behind ``err``, if any: an ``OSError`` of one anywhere in its chain of causes, or a
    database that says so (SQLite's "database or disk is full", under SQLAlchemy and MLflow)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_out_of_space(current) or "database or disk is full" in str(current).lower():
            return current
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def disk_errors(folder: str | Path) -> Iterator[None]:
    """Turn running out of space inside into one ``OutOfSpaceError`` naming ``folder``."""
    try:
        yield
    except OSError as err:
        if not is_out_of_space(err):
            raise
        raise OutOfSpaceError(
            f"out of disk space writing to {Path(folder).resolve()} ({err.strerror or err}): finished work is "
            "kept; free some space (or choose another --out-dir) and re-run the same command to resume"
        ) from None


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (since {since}: {info.get('command', '')})"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, name: str = ".lock") -> Iterator[None]:
    """Hold ``folder/name`` exclusively while writing there; refuse at once when another process does.

    ``flock`` is released by the kernel when the holder dies (kill -9 included), so a stale
    lock file never blocks the next run; the file's text only says who holds it.
    """
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:  # closing it releases the lock; the file stays (a waiting process holds it)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{Path(folder)} is in use by another {what}: {_holder(path)}. Wait for it to finish, "
                "or choose another --out-dir"
            ) from None
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": command}
        with contextlib.suppress(OSError):  # who holds it is only a courtesy: a full disk must not stop the lock
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(holder))
            fh.flush()
        yield


__all__ = [
    "FolderBusyError",
    "OutOfSpaceError",
    "disk_errors",
    "folder_lock",
    "is_out_of_space",
    "replaced_atomically",
    "temporary_path",
    "write_text_atomic",
]
