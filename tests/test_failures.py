"""Every failure a clear error, nothing silently wrong (issue #22): the training and evaluation side.

Each test makes the real thing: HDF5 files written by ``write_features`` (with NaN, huge values,
truncated, not HDF5), ``.pt`` files that are not our checkpoints, broken YAML, a ``train.py``
sent SIGTERM, and a second process holding a training's lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research.cli import run_cli
from research.config import EvalConfig
from research.data.dataset import FeatureDataset
from research.engine.checkpoints import build_model, load_checkpoint, save_checkpoint
from research.engine.evaluation import evaluate
from research.engine.training import train
from research.errors import CheckpointError, FeatureFileError, Terminated, TrainingDivergedError
from research.features.writing import write_features
from research.files import FolderBusyError
from research.tracking import mlflow_client

from .conftest import ROOT, small_filesystem
from .test_cli import assert_one_line_error, run
from .test_training import tiny_train_config

MAPPING = json.dumps({"a": 0, "b": 1, "c": 2, "d": 3})


def write_split(path: Path, n: int, scale: float = 1.0, nan_row: int | None = None) -> Path:
    """A real multi-scale feature file: class-dependent random features, ``[n, 6, 16]``."""
    rng = np.random.default_rng(n)
    labels = np.arange(n) % 4
    features = rng.standard_normal((n, 6, 16)).astype(np.float32) + labels[:, None, None]
    features *= scale
    if nan_row is not None:
        features[nan_row, 2, 5] = np.nan
    ids = [f"train/{'abcd'[y]}/sub/clip_{i:02d}" for i, y in enumerate(labels)]
    return write_features(path, features, labels, {"multi_scale": True, "category_mapping": MAPPING}, ids)


def make_features(folder: Path, scale: float = 1.0, nan_row: int | None = None) -> Path:
    write_split(folder / "train_features_multiscale.h5", 16, scale, nan_row)
    write_split(folder / "val_features_multiscale.h5", 8, scale)
    write_split(folder / "test_features_multiscale.h5", 8, scale)
    return folder


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_features(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def good_checkpoint(features: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good")
    return Path(train(tiny_train_config(features, out, epochs=1, log_mlflow=False))["checkpoint"])


def statuses(uri: str, experiment: str = "train") -> list[str]:
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(experiment)
    return [r.info.status for r in client.search_runs([exp.experiment_id])] if exp else []


# ------------------------------------------------------------------ non-finite numbers


@pytest.mark.parametrize("in_memory", ["yes", "no"])
def test_features_with_nan_are_refused_naming_the_file_and_the_video(
    features: Path, tmp_path: Path, in_memory: str
) -> None:
    bad = make_features(tmp_path / "nan", nan_row=11)
    with pytest.raises(FeatureFileError) as err:
        train(tiny_train_config(bad, tmp_path / "runs", in_memory=in_memory, log_mlflow=False))
    message = str(err.value)
    assert str(bad / "train_features_multiscale.h5") in message and "train/d/sub/clip_11" in message
    assert "non-finite" in message and "\n" not in message
    assert not list((tmp_path / "runs").glob("*.pt"))


def test_a_diverging_loss_stops_the_run_failed_and_never_saves_nonfinite_weights(
    features: Path, good_checkpoint: Path, tmp_path: Path, tracking_uri: str
) -> None:
    huge = make_features(tmp_path / "huge", scale=1e30)  # finite, so the file passes; the loss does not
    out = tmp_path / "runs"
    with pytest.raises(TrainingDivergedError, match=r"training diverged at epoch 0, step 0: the loss is nan"):
        train(tiny_train_config(huge, out, tracking_uri=tracking_uri))
    assert statuses(tracking_uri) == ["FAILED"]
    assert not list(out.glob("*.pt"))
    # the writer itself refuses non-finite weights, so a good best checkpoint is never replaced by them
    shutil.copy(good_checkpoint, out / good_checkpoint.name)
    before = (out / good_checkpoint.name).read_bytes()
    broken = load_checkpoint(good_checkpoint)
    next(iter(broken["model_state"].values())).fill_(float("inf"))
    with pytest.raises(CheckpointError, match="non-finite weights"):
        save_checkpoint(broken, out / good_checkpoint.name)
    assert (out / good_checkpoint.name).read_bytes() == before and not list(out.glob("*.tmp"))


def test_a_checkpoint_with_nonfinite_weights_is_refused_by_evaluation(good_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(good_checkpoint)
    name = next(k for k, v in ckpt["model_state"].items() if v.is_floating_point())
    ckpt["model_state"][name][0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)  # what a diverged run of an older version left behind
    with pytest.raises(CheckpointError, match=rf"{bad} holds non-finite weights \(NaN or infinity in {name}\)"):
        evaluate(EvalConfig(checkpoints=[str(bad)], out_dir=str(tmp_path / "eval"), log_mlflow=False))


def test_weights_that_do_not_fit_the_architecture_and_a_damaged_last_pt(
    good_checkpoint: Path, features: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(good_checkpoint)
    ckpt["model"]["kwargs"] = ckpt["model"]["kwargs"] | {"hidden_size": 2 * ckpt["model"]["kwargs"]["hidden_size"]}
    with pytest.raises(CheckpointError, match=r"weights do not fit its .* architecture: size mismatch"):
        build_model(ckpt)
    out = tmp_path / "runs"
    out.mkdir()
    (out / "last_1.pt").write_bytes(b"half a file")  # a resume point damaged by a crash: trained afresh, not fatal
    assert Path(train(tiny_train_config(features, out, epochs=1, log_mlflow=False))["checkpoint"]).is_file()


# ----------------------------------------------------------------------- damaged files


def test_truncated_non_hdf5_and_incomplete_feature_files_are_one_line_errors(features: Path, tmp_path: Path) -> None:
    source = (features / "val_features_multiscale.h5").read_bytes()
    truncated, text, incomplete = tmp_path / "truncated.h5", tmp_path / "text.h5", tmp_path / "incomplete.h5"
    truncated.write_bytes(source[: len(source) // 2])
    text.write_text("not an HDF5 file\n")
    with h5py.File(incomplete, "w") as f:  # a writer that died before the features
        f["labels"] = np.zeros(3, np.int64)
        f.attrs["feature_dim"] = 16
    for path, needle in ((truncated, "truncated file"), (text, "signature"), (incomplete, "no features, num_frames")):
        with pytest.raises(FeatureFileError) as err:
            FeatureDataset(path)
        assert str(path) in str(err.value) and needle in str(err.value) and "\n" not in str(err.value)
    # through train.py itself: one error line naming the file, exit 2
    damaged = tmp_path / "damaged"
    shutil.copytree(features, damaged)
    (damaged / "train_features_multiscale.h5").write_bytes(source[:4096])
    proc = run(["train.py", "--features-dir", str(damaged), "--out-dir", str(tmp_path / "runs"), "--no-log-mlflow"])
    assert_one_line_error(proc, str(damaged / "train_features_multiscale.h5"), "cannot be read as an HDF5")


def test_a_pt_file_that_is_not_our_checkpoint_is_one_line_naming_it(tmp_path: Path, capsys) -> None:
    hello, foreign, plain = tmp_path / "hello.pt", tmp_path / "foreign.pt", tmp_path / "plain.pt"
    hello.write_text("hello")
    torch.save({"a": torch.ones(3)}, foreign)
    torch.save("just a string", plain)
    cases = ((hello, "damaged, or not a file torch.save wrote"), (foreign, "no model_state"), (plain, "str"))
    for path, needle in cases:
        with pytest.raises(CheckpointError, match=needle) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value)
    # what evaluate.py prints: run_cli in-process, as the script runs it
    cfg = EvalConfig(checkpoints=[str(foreign)], out_dir=str(tmp_path / "eval"), log_mlflow=False)
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: evaluate(cfg))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {foreign} is not a checkpoint this project wrote")


def test_broken_yaml_in_a_file_a_flag_or_an_override_names_it_with_line_and_column(tmp_path: Path) -> None:
    tab = tmp_path / "tab.yaml"
    tab.write_text("train:\n\tlr: 0.1\n")
    assert_one_line_error(run(["train.py", "--config", str(tab)]), f"{tab} is not valid YAML at line 2, column 1")
    assert_one_line_error(run(["train.py", "--model-args", "{gru: [1"]), "--model-args is not valid YAML at line 1")
    assert_one_line_error(run(["train.py", "model_args={gru: [1"]), "override 'model_args={gru: [1'", "column 9")


# ---------------------------------------------------------------------------- signals


def test_sigterm_ends_train_py_killed_keeping_its_work(features: Path, tmp_path: Path, tracking_uri: str) -> None:
    out = tmp_path / "runs"
    args = ["--features-dir", str(features), "--out-dir", str(out), "--model", "mean_pool", "epochs=100000"]
    args += ["patience=100000", "batch_size=4", "num_workers=0", "model_args={mean_pool: {hidden_size: 16}}"]
    env = os.environ | {"MLFLOW_TRACKING_URI": tracking_uri, "COLUMNS": "200"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:  # a file, not a pipe: a full pipe would stall the child's logging
        proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env, stderr=err, stdout=err)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("last_*.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)  # training: at least one epoch finished
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    stderr = log.read_text()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "terminated: finished work is kept; re-run the same command to resume" in stderr
    assert statuses(tracking_uri) == ["KILLED"]
    assert (out / "last_1.pt").is_file() and (out / "best_ensemble_model_1.pt").is_file()


def test_ctrl_c_and_sigterm_exit_130_and_143_and_an_interrupted_run_ends_killed(
    features: Path, tmp_path: Path, tracking_uri: str, capsys
) -> None:
    for error, code, word in ((KeyboardInterrupt, 130, "interrupted"), (Terminated, 143, "terminated")):

        def stop(epoch: int, metrics: dict, error: type = error) -> None:
            raise error

        cfg = tiny_train_config(features, tmp_path / word, tracking_uri=tracking_uri)
        with pytest.raises(SystemExit) as exit_:
            run_cli(lambda cfg=cfg, stop=stop: train(cfg, epoch_callback=stop))
        last = capsys.readouterr().err.strip().splitlines()[-1]  # after the epoch's log line
        assert exit_.value.code == code and last.startswith(f"{word}: finished work is kept")
    assert statuses(tracking_uri) == ["KILLED", "KILLED"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # run_cli gave the handler back


# ----------------------------------------------------------------------- one writer


def test_a_second_training_of_the_same_seed_is_refused_while_other_seeds_train(features: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from research.files import folder_lock\n"
            f"with folder_lock({str(out)!r}, 'training of seed 1', '.train_1.lock'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"in use by another training of seed 1: pid {holder.pid} on "):
            train(tiny_train_config(features, out, epochs=1, log_mlflow=False))
        other = train(tiny_train_config(features, out, seed=2, epochs=1, log_mlflow=False))
        assert Path(other["checkpoint"]).is_file() and not (out / "best_ensemble_model_1.pt").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_sigterm_during_a_store_write_is_raised_when_the_write_returns() -> None:
    """Raised inside SQLite's commit, Terminated left the store locked; inside a write it waits for its end."""
    from research import interrupts
    from research.errors import Terminated

    finished = []
    with pytest.raises(Terminated), interrupts.termination_deferred():
        interrupts.terminate()  # what the SIGTERM handler calls
        finished.append("the write")  # ... and the write still completes
    assert finished == ["the write"]
    with pytest.raises(Terminated):
        interrupts.terminate()  # outside a write: at once


@pytest.mark.parametrize("full", ["checkpoint folder", "tracking store"])
def test_a_full_disk_under_training_is_one_line_and_exit_2(features: Path, tmp_path: Path, full: str) -> None:
    """A checkpoint (torch.save lost the errno: "unexpected pos") or an MLflow SQLite store (SQLAlchemy's
    "database or disk is full") on a full file system: exit 2 and one line, in a real process."""
    with small_filesystem(tmp_path / "disk", "300k" if full == "checkpoint folder" else "200k") as disk:
        out, uri = (disk / "run", f"sqlite:///{tmp_path / 'mlflow.db'}")
        if full == "tracking store":
            out, uri = tmp_path / "run", f"sqlite:///{disk / 'mlflow.db'}"
        cmd = [sys.executable, str(ROOT / "train.py"), "--features-dir", str(features), "--out-dir", str(out)]
        proc = subprocess.run([*cmd, "epochs=1", f"tracking_uri={uri}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "out of disk space" in errors[0] and "re-run the same command" in errors[0]
    assert "Traceback" not in proc.stderr
