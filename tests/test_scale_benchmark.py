"""benchmarks/scale.py at a few hundred clips: it fabricates a collection from the demo's real rows, runs
stages in their own processes, writes its table; a stage past its limit is recorded, a disk too small refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from .conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "scale.py"


def run_scale(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.mark.skipif(not (ROOT / "features" / "demo" / "all_features.h5").is_file(), reason="needs make demo's features")
def test_a_few_hundred_clips_are_split_and_predicted_with_a_row_per_stage(tmp_path: Path) -> None:
    done = run_scale(
        "--clips", "240", "--frames", "4", "--out", str(tmp_path), "--stages", "split", "probe", "predictions", "--keep"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "scale.md").read_text()
    assert "| stage | N = 240 | growth exponent (CPU) |" in table
    for stage in ("fabricate", "split", "probe", "predictions"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {stage} |"))
        assert " s (cpu " in row and " MB" in row, row  # wall and CPU seconds and peak RSS measured
    timings = json.loads((tmp_path / "scale.json").read_text())["240"]
    assert {t["status"] for t in timings.values()} == {"ok"}
    assert all(t["rss_mb"] > 50 for t in timings.values())
    work = tmp_path / "n240"
    with h5py.File(work / "features" / "all_features.h5", "r") as f:  # the project's layout, as extracted
        assert f["features"].shape == (240, 4, 1280) and f["features"].chunks == (1, 4, 1280)
        assert f.attrs["frames_per_video"] == 4 and f.attrs["num_videos"] == 240
        features = f["features"][:8]
    with h5py.File(ROOT / "features" / "demo" / "all_features.h5", "r") as f:
        real = f["features"][()]
    assert np.isfinite(features).all() and features.min() >= 0 and features.max() < 2 * real.max()
    split = json.loads((work / "features" / "by_group" / "split.json").read_text())
    assert sum(part["clips"] for part in split["splits"].values()) == 240
    # the probe's stage says what it did, counted: one grid of 7 fits on train (within the subsample's bound)
    probe = json.loads((work / "timings" / "probe.json").read_text())["made"]
    assert probe["fits"] == 7 and probe["train_clips"] == split["splits"]["train"]["clips"] == probe["subsample_clips"]
    assert probe["passes"] == probe["evaluations"] + 3 and probe["val_passes"] == 8 and probe["converged"]
    assert f"probe: C = {probe['c']:g}, 7 fits (7 on {probe['train_clips']:,} of" in table
    assert "means computed here" in table
    predictions = (work / "predictions" / "predictions.csv").read_text().splitlines()
    assert len(predictions) == split["splits"]["test"]["clips"] + 1  # a header and a row per test clip


def test_a_stage_past_its_limit_is_recorded_not_waited_for(tmp_path: Path) -> None:
    done = run_scale("--clips", "200", "--out", str(tmp_path), "--limit", "0.5", "--stages", "split")
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "scale.md").read_text()
    assert "| split | > 0.5 s |" in table and "| fabricate | " in table  # the collection itself has no limit
    assert not (tmp_path / "n200").exists()  # removed once timed (no --keep)


def test_a_size_the_disk_cannot_hold_is_refused_in_one_line_before_anything_is_written(tmp_path: Path) -> None:
    done = run_scale("--clips", "1000000000", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 1
    assert "not run; use fewer --frames" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert not list(tmp_path.glob("n*")) and not (tmp_path / "scale.md").exists()
