"""Uncompressed training copies of feature files (``lazy_reading: copy``): where they lie, what they are keyed on,
who reads them, and how many stay.

A copy ``NAME.h5.uncompressed`` lies beside the feature file ``NAME.h5``: its features uncompressed and
contiguous, which training memory-maps (``research.data.dataset``). It records the content digest of the file
it was made from (``hdf5.content_fingerprint``: recorded with the file, cheap while the file, and the shard
files a joined one reads, are unchanged on disk) and is read only while the file still has that digest: a file
extracted again, or a joined file one of whose shards was replaced, gets a new copy, never the old rows.

A copy takes the file's features uncompressed, 1.7-2x the gzip file (bytes per clip: benchmarks/RESULTS.md).
So that copies do not pile up (every fold of a cross-validation has its own files), a process keeps the copies
it counts under ``TrainConfig.copy_budget_gb``: before it makes one, it removes the least recently used of the
copies it has read and those beside the new one's file, skipping any copy a process still reads, until the new
one fits; a copy that cannot fit is not made (the file is read directly, with a warning). A process reading a
copy holds a shared ``flock`` on it, which the kernel releases when the process ends (``kill -9`` included); a
copy is removed only under an exclusive one, so a copy in use is never removed. On a file system without
``flock`` nobody's use can be seen, and nothing there is removed automatically.

``python -m research.commands.features clean [FOLDER ...]`` lists the copies under folders (size, file, whether
the file still matches, last use, in use) and removes them with ``--remove``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import h5py
import numpy as np

from research.errors import FeatureFileError
from research.features.hdf5 import content_fingerprint
from research.files import NO_FLOCK

SUFFIX = ".uncompressed"  # NAME.h5.uncompressed: beside its file, not matching *.h5
KEY_ATTR = "source_fingerprint"  # the copy's attribute: the content digest of the file it was made from
GB = 1e9  # copy_budget_gb counts decimal gigabytes, as df -H and quotas do

log = logging.getLogger(__name__)

_read_here: set[Path] = set()  # the copies this process has read: counted under its budget wherever they lie


def training_copy_path(path: str | Path) -> Path:
    """Where the uncompressed training copy of a feature file lives: next to it, not matching ``*.h5``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def source_of(copy: Path) -> Path:
    """The feature file a copy was made from."""
    return copy.with_name(copy.name.removesuffix(SUFFIX))


def copy_key(path: str | Path) -> str:
    """What a copy of ``path`` is keyed on: its content digest (the file, and for a joined file its shards)."""
    return content_fingerprint(path)


def open_copy(copy: Path, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The copy's rows memory-mapped, or None when it is missing, made from other content, damaged or not
    contiguous.

    Mapped copy-on-write: a row is a view as cheap as an in-memory row (no copy, no h5py call), writable like
    one (torch is never given a read-only array), and nothing written to it ever reaches the file."""
    if not copy.is_file():
        return None
    try:
        with h5py.File(copy, "r") as f:
            rows = f.get("features")
            current = f.attrs.get(KEY_ATTR) == key and bool(f.attrs.get("all_finite", False))
            offset = rows.id.get_offset() if current and rows is not None and rows.shape == shape else None
            dtype = rows.dtype if offset is not None else None
    except (OSError, KeyError):
        return None
    if offset is None:
        return None
    with open(copy, "rb") as fh:  # the map outlives the file object (and the map the array's views)
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    return np.frombuffer(mapped, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)


def _same_file(fh: IO[bytes], path: Path) -> bool:
    """The open file is still the one at ``path`` (not removed, nor replaced by a newer copy meanwhile)."""
    try:
        return os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def hold(copy: Path) -> IO[bytes] | None:
    """Mark ``copy`` as read by this process until the returned file is closed (a shared ``flock``: no process
    removes it meanwhile), and as used now; None when there is no copy there. Where ``flock`` is not supported
    the use cannot be marked, and such copies are never removed automatically (``remove_unless_read``)."""
    for _ in range(3):  # a copy removed or replaced between the open and the lock: look again
        try:
            fh = open(copy, "rb")  # noqa: SIM115 (returned open: closing it ends the hold)
        except OSError:  # none there (or a folder, or unreadable): no copy to read
            return None
        try:
            fcntl.flock(fh, fcntl.LOCK_SH)  # waits only while a remover holds it (a moment)
        except OSError as err:
            if err.errno not in NO_FLOCK:
                fh.close()
                raise
        if _same_file(fh, copy):
            with contextlib.suppress(OSError):  # another user's copy: its last use is theirs to record
                os.utime(copy)  # used now: the last to be removed
            _read_here.add(copy.resolve())
            return fh
        fh.close()
    return None


def read_by_a_process(copy: Path) -> bool | None:
    """Whether a process holds ``copy`` (``hold``); None when this file system cannot tell (no ``flock``)."""
    try:
        with open(copy, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False
    except OSError as err:
        if err.errno in NO_FLOCK:
            return None
        raise
    return False


def remove_unless_read(copy: Path) -> bool:
    """Remove ``copy`` (and its lock file) unless a process reads it; True when it is gone. Under an exclusive
    ``flock``, which a reader's shared one refuses; where ``flock`` is not supported, never (who reads it
    cannot be told)."""
    try:
        with open(copy, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            except OSError as err:
                if err.errno in NO_FLOCK:
                    return False
                raise
            if not _same_file(fh, copy):  # replaced by a new copy meanwhile: that one is judged on its own
                return False
            copy.unlink()
    except FileNotFoundError:
        return True
    lock = copy.with_name(copy.name + ".lock")
    with contextlib.suppress(OSError):
        lock.unlink()  # a maker waiting on it holds its own descriptor; a later one creates it again
    _read_here.discard(copy.resolve())
    return True


def _copies_in(folder: Path) -> set[Path]:
    return {p.resolve() for p in folder.glob(f"*.h5{SUFFIX}") if p.is_file()}


def make_room(copy: Path, needed_bytes: int, budget_gb: float | None) -> bool:
    """Whether a copy of ``needed_bytes`` at ``copy`` fits under ``budget_gb`` (None: no bound) beside the copies
    counted (those this process has read and those in ``copy``'s folder), once the least recently used of them
    that no process reads are removed, as far as needed."""
    if budget_gb is None:
        return True
    budget = budget_gb * GB
    target = copy.resolve()
    stats = {}
    for path in _read_here | _copies_in(copy.parent):
        if path != target:
            with contextlib.suppress(FileNotFoundError):  # removed by another process meanwhile
                stats[path] = path.stat()
    counted = set(stats)
    total = sum(st.st_size for st in stats.values()) + needed_bytes
    if needed_bytes > budget:
        return False
    for old in sorted(counted, key=lambda p: stats[p].st_mtime):  # least recently used first
        if total <= budget:
            break
        if remove_unless_read(old):
            total -= stats[old].st_size
            log.info(
                "removed the training copy %s (%.1f GB, last used %s) to keep the copies under "
                "train.copy_budget_gb (%g GB)",
                old,
                stats[old].st_size / GB,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(stats[old].st_mtime)),
                budget_gb,
            )
    return total <= budget


# ----------------------------------------------------------------- listing (features clean)


@dataclass(frozen=True)
class CopyInfo:
    """One training copy as ``features clean`` lists it."""

    path: Path
    size: int
    source: Path
    matches: bool
    why: str  # "" when it matches; else what makes it stale
    last_used: float  # seconds since the epoch: the copy's mtime (``hold`` sets it)
    read: bool | None  # a process holds it now; None: cannot tell (no flock)


def find_copies(folders: list[Path]) -> Iterator[Path]:
    """Every ``*.h5.uncompressed`` under ``folders`` (hidden folders skipped: a virtual environment, .git)."""
    for folder in folders:
        if folder.is_file():
            if folder.name.endswith(f".h5{SUFFIX}"):
                yield folder
            continue
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from (Path(root) / name for name in sorted(files) if name.endswith(f".h5{SUFFIX}"))


def describe(copy: Path) -> CopyInfo:
    """A copy, its file and whether the file still has the content the copy was made from. The file's digest
    is its recorded one, or (a file changed since, or written by other tools) read from it in full."""
    source = source_of(copy)
    try:
        with h5py.File(copy, "r") as f:
            key = str(f.attrs.get(KEY_ATTR, ""))
    except OSError:
        key = ""
    why = ""
    if not key:
        why = "not a complete copy (made by an older version, or cut short)"
    elif not source.is_file():
        why = f"{source.name} is gone"
    else:
        try:
            if copy_key(source) != key:
                why = f"{source.name} changed since"
        except (FeatureFileError, OSError) as err:
            why = f"{source.name} cannot be read ({' '.join(str(err).split())})"
    st = copy.stat()
    return CopyInfo(copy, st.st_size, source, not why, why, st.st_mtime, read_by_a_process(copy))
