"""Real servers for the tests: PostgreSQL from the ``pgserver`` wheel and ``mlflow server`` on it.

One PostgreSQL per test session (started on first use, stopped at the end), listening on a Unix
socket in a temporary folder; each test asks for a database of its own. A test that crashes its
database starts a PostgreSQL of its own the same way, in its own folder (``kill``, ``restart``). An
MLflow tracking server is a real ``mlflow server`` process with its backend store in such a database
and its artifacts in a folder, on a free port of 127.0.0.1. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Postgres:
    server: object  # pgserver's PostgresServer
    socket_dir: str

    def database(self, prefix: str = "db") -> str:
        """A new, empty database; its SQLAlchemy URL (the psycopg 3 driver)."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.server.psql(f"CREATE DATABASE {name};")  # type: ignore[attr-defined]
        return f"postgresql+psycopg://postgres:@/{name}?host={self.socket_dir}"

    def sql(self, statement: str) -> str:
        return self.server.psql(statement)  # type: ignore[attr-defined]

    def kill(self) -> None:
        """``kill -9`` on the postmaster, then on the processes it had started (they would end by themselves once
        they noticed, but a restart before then finds its shared memory in use): a crash, nothing shut down."""
        import psutil

        postmaster = psutil.Process(self.server.get_pid())  # type: ignore[attr-defined]
        postmaster.suspend()  # SIGSTOP: no backend is forked between listing its children and killing them
        children = postmaster.children(recursive=True)
        for process in (postmaster, *children):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs([postmaster, *children], timeout=10)

    def restart(self) -> None:
        """The server again on the same data folder and socket, after ``kill``: PostgreSQL replays its WAL."""
        with self.server._lock:  # type: ignore[attr-defined]  # pgserver's own start runs under its file lock
            self.server.ensure_postgres_running()  # type: ignore[attr-defined]


def start_postgres(folder: Path) -> Postgres:
    import pgserver

    server = pgserver.get_server(str(folder), cleanup_mode="stop")
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/tmp/...
    return Postgres(server, uri.split("host=", 1)[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    process: subprocess.Popen
    url: str
    artifacts: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def get(self, path: str) -> bytes:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}{path}", timeout=30) as response:
            return response.read()


def start_mlflow_server(backend: str, folder: Path, timeout_s: float = 180) -> MlflowServer:
    """``mlflow server`` on ``backend`` (a database URL), artifacts proxied into ``folder``; returns once it
    answers ``/health``."""
    port = free_port()
    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow), "server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = MlflowServer(process, f"http://127.0.0.1:{port}", artifacts)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if server.get("/health"):
                return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
