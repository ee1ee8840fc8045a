"""Shared fixtures: small real data made once per session (generated videos, extracted features)."""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def session_tracking_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tests never write into the project's mlruns/: one throwaway SQLite store for the session."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 videos per class (3 train / 1 val / 1 test), 1-2 s each, real H.264 from the generator."""
    from videogen.writing import generate

    root = tmp_path_factory.mktemp("videos")
    # easy videos (few confusers): tests check plumbing and that a model learns, not the demo's hard slope
    generate(root, 5, seed=7, min_seconds=1.0, max_seconds=2.0, difficulty=(0.0, 0.3), workers=2, progress=False)
    return root


@dataclass
class Finished:
    """What a command left behind, as ``subprocess.run`` reports it."""

    returncode: int
    stdout: str
    stderr: str


def run_entry_point(args: list[str] | str, cwd: Path = ROOT) -> Finished:
    """``python ARGS`` (``X.py ...`` or ``-m MODULE ...``) run in this interpreter, as the shell would run it.

    For commands that need no fresh interpreter (no torchrun, no signal, no import-time check):
    torch, mlflow and optuna are imported once per session instead of once per command.
    """
    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    out, err, saved = io.StringIO(), io.StringIO(), (sys.argv, os.getcwd())
    code: object = 0
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if argv[0] == "-m":
                    sys.argv = [argv[1], *argv[2:]]
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = argv
                    runpy.run_path(str(Path(argv[0]).resolve()), run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
    return Finished(0 if code is None else code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def committed_parts(out_dir: Path, rank: str = "*") -> int:
    """Part files an extraction has committed (a ``.tmp.npz`` being written does not count)."""
    return sum(not p.name.endswith(".tmp.npz") for p in out_dir.glob(f".work/*/{rank}/part_*.npz"))


def torchrun_cmd(script: str, args: list[str], port: int) -> list[str]:
    """Two local processes under torchrun (gloo on CPU), on a fixed port per test."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
    return [*launcher, str(ROOT / script), *args]


def tiny_extract_config(data_dir: Path, out_dir: Path, **overrides):
    from research.config import ExtractConfig

    values = dict(
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        backbone="mobilenet_v2",
        frames=8,
        image_size=96,
        batch_size=16,
        num_workers=0,
        clip_seconds=None,
    )
    return ExtractConfig(**{**values, **overrides})


# The kill-and-resume tests' settings: one part file per video, so a kill lands between commits.
RESUME_SETTINGS = dict(frames=16, image_size=128, batch_size=8, flush_every=1, splits=["train"])


def resume_config(data_dir: Path, out_dir: Path, **overrides):
    return tiny_extract_config(data_dir, out_dir, **(RESUME_SETTINGS | {"log_mlflow": False} | overrides))


@pytest.fixture(scope="session")
def resume_reference(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean, uninterrupted run at the resume settings: what every killed-and-resumed run must equal."""
    from research.features.extraction import extract

    out = tmp_path_factory.mktemp("resume_reference")
    extract(resume_config(tiny_videos, out))
    return out


@pytest.fixture(scope="session")
def tiny_features(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real mobilenet_v2 features of ``tiny_videos``: single- and multi-scale, all splits."""
    from research.features.extraction import extract

    out = tmp_path_factory.mktemp("features")
    extract(tiny_extract_config(tiny_videos, out))
    return out


@pytest.fixture(scope="session")
def real_means() -> dict:
    """benchmarks/real's 381 clips as the probe sees them, without extracting (``tests/data/real_means/make.py``
    made them from the demo's features): ``x`` [381, 1280] float64 masked frame means of efficientnet_lite0
    features (stored at 8 bits per feature over its own range), ``labels``, ``sources``, ``families`` and
    ``split`` (the demo's split by family: train, val or test)."""
    import numpy as np

    with np.load(ROOT / "tests" / "data" / "real_means" / "real_means.npz") as f:
        lo, hi = f["lo"].astype(np.float64), f["hi"].astype(np.float64)
        x = lo + f["q"].astype(np.float64) / 255 * (hi - lo)
        return {"x": x} | {k: f[k] for k in ("labels", "sources", "families", "split")}


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MLflow SQLite store with its tables made (the migrations take seconds), nothing logged."""
    from research.tracking import mlflow_client

    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    mlflow_client(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def tracking_uri(tmp_path: Path, empty_store: Path) -> str:
    """A fresh SQLite MLflow store of the test's own: a copy of the session's empty one."""
    path = tmp_path / "mlruns" / "mlflow.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store, path)
    return f"sqlite:///{path}"


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` (root only: skipped elsewhere, saying why), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
