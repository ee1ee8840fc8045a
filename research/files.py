"""Writing files so that a crash, a full disk or a second process never leaves a wrong one behind.

- ``temporary_path``: a per-process temporary name next to a target; finished files are
  renamed into place, so a reader sees the old file or the new one, never half of one,
  and two processes never write the same temporary file.
- ``replaced_atomically``: the rename (and the clean-up on failure) for any writer;
  ``write_text_atomic``, the same for small text files (JSON reports, settings).
- ``folder_lock``: one writer per output folder; a second process is refused in one line
  naming the holder (pid, host, since when) instead of racing on the same files.
- ``exclusive``: the lock underneath, ``flock`` where the file system supports it, else (Lustre or NFS
  mounted without locking: ENOSYS, EOPNOTSUPP, ENOLCK) a lock file made with ``O_EXCL`` that records its
  holder and keeps a heartbeat, so a dead holder's lock is cleared once its heartbeat is old
  (``HeartbeatLock``).
- ``disk_errors``: an out-of-space ``OSError`` anywhere inside becomes one user error that
  names the folder and says that re-running resumes from the committed work.
- ``write_record`` / ``read_record``: what was computed of a file's content (a digest), kept beside it in
  ``NAME.record.json`` with the file's identity (size, mtime, ctime, inode: ``stat_identity``) and trusted
  only while that identity, and that of the files it reads from, is unchanged; ``settle_mtime`` makes a
  write in the same clock tick as a just-written file's last one change its mtime all the same.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from research.errors import UserError

# errno values that mean "this file system cannot take more": a full disk, a quota, a file-size limit.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class OutOfSpaceError(UserError):
    """The output folder's file system is full; committed work is kept for the next run."""


class FolderBusyError(UserError):
    """Another process is writing into the same output folder."""


HOST = socket.gethostname()


def temporary_path(target: Path) -> Path:
    """``NAME.<host>.<pid>.tmp`` beside ``target``: this process's own, renamed onto ``target`` when complete.

    The host is in the name because array tasks on several machines write into one shared folder, where
    two of them may have the same pid."""
    return target.with_name(f"{target.name}.{HOST}.{os.getpid()}.tmp")


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


RECORD_SUFFIX = ".record.json"
# A file changed this recently may change again within the same tick of a coarse file-system clock (1-2 s on
# some file systems) and keep its identity: what is computed of it then is not recorded.
RACY_NS = 2_000_000_000


def stat_identity(path: str | Path) -> dict[str, int]:
    """What identifies a file's content without reading it: size, mtime, ctime and inode. A write changes
    mtime and ctime, a replacement (rename, copy) the inode or ctime; none can be set back by hand but mtime."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def settle_mtime(path: str | Path) -> None:
    """Set a just-written file's mtime 1 ns before its last write (or one clock step, on a coarse file
    system): any later write, even in the same tick of the clock, then changes it, so a record made of the
    file now (``write_record``) is never trusted for changed content."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 1))


def record_path(path: str | Path) -> Path:
    """``NAME.record.json`` beside ``path``: where ``write_record`` keeps what was computed of it."""
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def identify(path: str | Path, sources: Sequence[Path] = ()) -> dict:
    """The identities of ``path`` and of ``sources`` (files it reads from), and when they were taken: what
    ``write_record`` keeps, taken *before* the values to record are computed of the content."""
    path = Path(path)
    return {
        "file": stat_identity(path),
        "sources": {os.path.relpath(s, path.parent): stat_identity(s) for s in sources},
        "taken_ns": time.time_ns(),
    }


def write_record(path: str | Path, values: dict, identity: dict, fresh: bool = False) -> bool:
    """Keep ``values``, computed of ``path``'s content after ``identity`` was taken (``identify``), beside
    it; returns whether they were kept. Nothing is kept when the file or a source changed meanwhile, nor,
    unless ``fresh``, when one changed within ``RACY_NS`` before ``identity`` was taken (a later change in
    the same tick of a coarse clock could keep its identity). ``fresh``: the caller has just written the
    file, and ``settle_mtime`` made it safe to record at once. A folder that cannot be written (read-only,
    full) keeps nothing: the values are computed again next time."""
    path = Path(path)
    try:
        kept = {"file": identity["file"], "sources": identity["sources"]}
        now = identify(path, [path.parent / name for name in kept["sources"]])
        if (now["file"], now["sources"]) != (kept["file"], kept["sources"]):
            return False
        stamps = [i[k] for i in (kept["file"], *kept["sources"].values()) for k in ("mtime_ns", "ctime_ns")]
        if not fresh and identity["taken_ns"] - max(stamps) < RACY_NS:
            return False
        write_text_atomic(record_path(path), json.dumps(kept | {"values": values}))
    except OSError:
        return False
    return True


def read_record(path: str | Path) -> dict | None:
    """The values ``write_record`` kept for ``path``, or None when there are none or the file, or one it
    reads from, is no longer the one they were computed of (another size, mtime, ctime or inode)."""
    path = Path(path)
    try:
        record = json.loads(record_path(path).read_text())
        if record["file"] != stat_identity(path):
            return None
        for name, identity in record["sources"].items():
            if identity != stat_identity(path.parent / name):
                return None
        return record["values"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


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


def _holder_text(info: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (since {since}: {info.get('command', '')})"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    return _holder_text(info)


def _holder_record() -> dict:
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return {"pid": os.getpid(), "host": HOST, "since": time.time(), "command": command}


# flock's errno values meaning "this file system does not do flock" (Lustre without -o flock, some NFS mounts)
NO_FLOCK = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK, errno.EINVAL}


def _read_or_empty(path: str) -> str:
    """A small system file's text (``/proc``: Linux), or "" where there is none."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


# What makes a pid mean one process: this host, booted this once, in this pid namespace (containers that share
# a hostname have namespaces of their own). Only a holder recorded with all three can be judged by its pid.
PID_SCOPE = {"host": HOST, "boot": _read_or_empty("/proc/sys/kernel/random/boot_id"), "pidns": _pid_namespace()}


class HeartbeatLock:
    """A lock for file systems without ``flock``: the file ``PATH.held``, created with ``O_EXCL``.

    It records its holder (host, pid, a random token) and a heartbeat: a thread touches it every
    ``heartbeat`` seconds. Another process judges it stale by the heartbeat's age: older than ``stale_after``
    seconds, whatever the record says (a machine that died or lost the mount, a pid that was reused, a
    container that shares the hostname), also when the file is empty or unreadable (its holder died, or
    the disk filled, between creating it and writing its record). Host and pid only speed up the local
    case: a holder recorded on this host, this boot and this pid namespace whose pid is gone is stale at
    once. A live pid proves nothing (it may have been reused).

    Clearing never deletes what was not judged: one process at a time clears (it holds ``PATH.held.clearing``,
    made with ``O_EXCL``), and it removes the lock file only if it is still the very file judged stale (the
    same inode, mtime and text); a heartbeat, or a new holder, in between keeps it. No hard link, no
    rename: file systems without ``flock`` often have no hard links either.
    """

    def __init__(self, path: Path, heartbeat: float = 30.0, stale_after: float = 120.0) -> None:
        self.path = path.with_name(path.name + ".held")
        self.clearing = path.with_name(path.name + ".held.clearing")
        self.heartbeat, self.stale_after = heartbeat, stale_after
        self.record = _holder_record() | PID_SCOPE | {"token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict | None:
        """The holder's record, or None when nobody holds the lock; ``{}`` when its file is empty or unreadable."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return _record_of(text)

    def acquire(self) -> bool:
        """Take the lock without waiting: True when taken (a stale lock is cleared first), False when held."""
        for _ in range(3):  # a stale lock cleared, then taken; a race lost to a faster process: held
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._clear_stale():
                    return False
                continue
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(self.record))
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException:  # a full disk: no empty lock file left behind for others to wait out
                self.path.unlink(missing_ok=True)
                raise
            self._thread = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
            self._thread.start()
            return True
        return False

    def _stale(self, info: dict, age: float) -> bool:
        """Whether a lock file whose record is ``info`` (``{}``: empty or unreadable) and whose heartbeat is
        ``age`` seconds old has a dead holder."""
        if age > self.stale_after:
            return True
        if not info or any(info.get(k) != v for k, v in PID_SCOPE.items()) or not all(PID_SCOPE.values()):
            return False  # not provably this machine's pid: its heartbeat alone decides
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError, OverflowError):
            return False
        return False

    def _judge(self, path: Path) -> tuple[os.stat_result, str] | None:
        """The lock file's stat and text (what a judgement is made of), or None when there is none."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        try:
            return st, path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # unreadable, or not text: judged by its heartbeat alone
            return st, ""

    def _clear_stale(self) -> bool:
        """Remove a dead holder's lock file; False when its holder may be alive (or another process clears it)."""
        judged = self._judge(self.path)
        if judged is None:
            return True  # released meanwhile
        st, text = judged
        info = _record_of(text)
        if not self._stale(info, time.time() - st.st_mtime):
            return False
        try:
            os.close(os.open(self.clearing, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            self._clear_abandoned_clearing()
            return False  # another process is clearing it: held until it has
        try:
            now = self._judge(self.path)
            if now is None:
                return True
            if (now[0].st_ino, now[0].st_mtime_ns, now[1]) != (st.st_ino, st.st_mtime_ns, text):
                return False  # a heartbeat, or a new holder, since it was judged: not the file judged stale
            self.path.unlink()
        finally:
            self.clearing.unlink(missing_ok=True)
        whose = _holder_text(info) if info else f"an empty or unreadable record ({time.time() - st.st_mtime:.0f} s old)"
        print(f"warning: cleared the stale lock {self.path} of {whose}", file=sys.stderr)
        return True

    def _clear_abandoned_clearing(self) -> None:
        """A clearer takes milliseconds: its file older than ``stale_after`` is one that died clearing."""
        judged = self._judge(self.clearing)
        if judged is not None and time.time() - judged[0].st_mtime > self.stale_after:
            again = self._judge(self.clearing)
            if again is not None and again[0].st_ino == judged[0].st_ino:
                self.clearing.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if (self.holder() or {}).get("token") == self.record["token"]:
            self.path.unlink(missing_ok=True)


def _record_of(text: str) -> dict:
    """A lock file's record; ``{}`` when it is empty or not a record (cut short by a crash or a full disk)."""
    try:
        info = json.loads(text or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


_warned: set[str] = set()


def _flock_unsupported(path: Path, err: OSError) -> None:
    """One line, once per folder, saying that locks there are lock files with a heartbeat."""
    if str(path.parent) not in _warned:
        _warned.add(str(path.parent))
        print(
            f"warning: {path.parent} does not support flock ({os.strerror(err.errno or 0)}): locking with the "
            "file NAME.held (host, pid, heartbeat) instead; a dead holder's lock is cleared",
            file=sys.stderr,
        )


@contextlib.contextmanager
def exclusive(path: str | Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``: yields True when held, False when another process holds it
    (``wait=False`` only). ``flock`` where the file system supports it, else a ``HeartbeatLock``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:  # closing it releases the lock; the file stays (a waiting process holds it)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        except OSError as err:
            if err.errno not in NO_FLOCK:
                raise
            _flock_unsupported(path, err)
        else:
            yield True
            return
    fallback = HeartbeatLock(path)
    while not fallback.acquire():
        if not wait:
            yield False
            return
        time.sleep(0.2)
    try:
        yield True
    finally:
        fallback.release()


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, name: str = ".lock") -> Iterator[None]:
    """Hold ``folder/name`` exclusively while writing there; refuse at once when another process does.

    ``flock`` is released by the kernel when the holder dies (kill -9 included), so a stale
    lock file never blocks the next run; the file's text only says who holds it. Where the file
    system has no ``flock`` the lock is a ``HeartbeatLock`` (``exclusive``).
    """
    path = Path(folder) / name
    with exclusive(path, wait=False) as held:
        if not held:
            fallback = HeartbeatLock(path)
            record = fallback.holder()
            if record is None:
                holder = _holder(path)
            elif record:
                holder = _holder_text(record)
            else:  # an empty record: its holder is writing it, or died first (stale once its heartbeat is old)
                holder = f"a process whose lock file {fallback.path.name} holds no record yet"
            raise FolderBusyError(
                f"{Path(folder)} is in use by another {what}: {holder}. Wait for it to finish, "
                "or choose another --out-dir"
            )
        with contextlib.suppress(OSError):  # who holds it is only a courtesy: a full disk must not stop the lock
            path.write_text(json.dumps(_holder_record()))
        yield


__all__ = [
    "FolderBusyError",
    "HeartbeatLock",
    "OutOfSpaceError",
    "disk_errors",
    "exclusive",
    "folder_lock",
    "identify",
    "is_out_of_space",
    "read_record",
    "record_path",
    "replaced_atomically",
    "settle_mtime",
    "stat_identity",
    "temporary_path",
    "write_record",
    "write_text_atomic",
]
