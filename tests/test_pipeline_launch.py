"""The pipeline's trainings through the launcher (issue 50): serially, as a local pool and as a Slurm array through
submitit's local executor (docs/several-machines.md's own ``launch:`` block), the same report and the same fold
members; a run killed while it waits resumes from
the jobs that finished, and only the others run again."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import ROOT
from .test_demo import tiny_demo_config, tiny_real_collection, training_runs
from .test_launcher import page_launch_config

# 3 folds x 1 seed, one epoch: the smallest CV that still trains a member per fold
SMALL = {"cv": {"seeds": [1]}, "train": {"epochs": 1}}


def fold_checkpoints(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        p.relative_to(root).as_posix(): torch.load(p, map_location="cpu", weights_only=True)["model_state"]
        for p in sorted(root.glob("runs/cv/fold_*/runs/best_ensemble_model_*.pt"))
    }


def test_serial_a_pool_and_a_slurm_array_give_the_same_report_and_members(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One thread per job everywhere, so the sums run in the same order: bit-identical members and reports. The
    pool and the array train on the features the serial run extracted (extraction as an array through each
    launcher equals one process: ``test_launcher.test_extraction_as_an_array_equals_one_process``)."""
    from research.commands.pipeline import run_pipeline

    tiny_real_collection(tmp_path / "real", sources_per_class=4)
    reports, members = {}, {}
    launches = {
        "serial": {"launcher": "serial", "threads": 1},
        "processes": {"launcher": "processes", "workers": 2, "threads": 1},
        # docs/several-machines.md's own launch: block, on this machine (submitit's local executor, no GPU, one core)
        "slurm": dataclasses.asdict(page_launch_config(tmp_path)),
    }
    for name, launch in launches.items():
        root = tmp_path / name
        root.mkdir()
        (root / "real").symlink_to(tmp_path / "real")
        if name != "serial":  # the features serial extracted: extraction through each launcher is test_launcher's
            (root / "features").symlink_to(tmp_path / "serial" / "features")
        config = tiny_demo_config(root, tracking_uri, root / "real" / "videos", relative=True)
        monkeypatch.chdir(root)
        run_pipeline(config, overrides=SMALL | {"launch": launch})
        reports[name] = (root / "outputs" / "report.json").read_text()
        members[name] = fold_checkpoints(root)
        assert len(members[name]) == 3
    assert json.loads(reports["serial"])["cv"]["trainings"] == 3
    for name in ("processes", "slurm"):
        assert reports[name] == reports["serial"], name  # the same bytes: numbers, choice, calibration, audit
        assert members[name].keys() == members["serial"].keys()
        for path, state in members[name].items():
            assert all(torch.equal(state[k], members["serial"][path][k]) for k in state), (name, path)


def test_a_pipeline_killed_while_it_waits_resumes_with_the_jobs_that_finished(
    tmp_path: Path, tracking_uri: str
) -> None:
    """kill -9 of the pipeline (and its pool) once one fold member has finished; the same command again trains
    only the members that had not, and re-uses the finished one's checkpoint and scores untouched."""
    tiny_real_collection(tmp_path / "real", sources_per_class=4)
    config = tiny_demo_config(tmp_path, tracking_uri, tmp_path / "real" / "videos", relative=True)
    command = [
        sys.executable,
        "-m",
        "research.commands.pipeline",
        "--config",
        str(config),
        "cv.seeds=[1]",
        "train.epochs=1",
        "launcher=processes",
        "workers=1",  # one job at a time: a kill lands between two of them
        "threads=1",
    ]
    env = os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": tracking_uri}
    run = subprocess.Popen(
        command, cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    scores = tmp_path / "runs" / "cv"
    deadline = time.time() + 600
    while not list(scores.glob("fold_*/runs/scores_1.json")):
        assert run.poll() is None, "the pipeline ended before a job finished"
        assert time.time() < deadline, "no job finished in 10 minutes"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(30)
    finished = {p: p.stat().st_mtime_ns for p in scores.glob("fold_*/runs/*") if p.suffix in (".json", ".pt")}
    assert 0 < len([p for p in finished if p.suffix == ".json"]) < 3
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished job's files untouched
    printed = " ".join(done.stderr.split())  # log lines fold at 80 columns
    assert printed.count("re-used") == len([p for p in finished if p.suffix == ".json"]), printed[-3000:]
    runs = [r for r in training_runs(tracking_uri, "cv") if r.info.status == "FINISHED"]
    assert len(runs) == 3  # each fold member trained to the end once: the killed one again, the finished one not
