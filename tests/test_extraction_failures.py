"""Extraction on damaged input and hostile conditions: never silent garbage, never a crash that loses work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research.backbones.table import get_spec
from research.features.extraction import NON_FINITE, extract
from research.features.hdf5 import read_attrs
from research.files import FolderBusyError, OutOfSpaceError, folder_lock
from research.video.decode import decode_video, normalize

from .conftest import ROOT, resume_config, small_filesystem, tiny_extract_config
from .test_extraction import RESUME_ARGS


def test_a_video_whose_features_are_not_finite_is_skipped_and_listed(tiny_videos: Path, tmp_path: Path) -> None:
    """Seed tensors with one NaN pixel: the CNN gives NaN features, and that video never becomes a row."""
    spec = get_spec("mobilenet_v2")
    src = sorted((tiny_videos / "test" / "gaming").rglob("*.mp4"))[:1] * 3
    videos = torch.stack(
        [normalize(torch.from_numpy(decode_video(p, 8, 96).expanded()), spec.mean, spec.std) for p in src]
    )
    videos[1, 3, 0, 10, 10] = float("nan")
    folder = tmp_path / "data" / "test" / "gaming" / "topdown"
    folder.mkdir(parents=True)
    torch.save({"videos": videos, "labels": torch.zeros(3)}, folder / "processed_data.pt")
    extract(tiny_extract_config(tmp_path / "data", tmp_path / "out", splits=["test"]))
    for name in ("test_features.h5", "test_features_multiscale.h5"):
        attrs = read_attrs(tmp_path / "out" / name)
        assert attrs["num_videos"] == 2 and attrs["num_skipped"] == 1
        assert attrs["skipped"] == [{"path": "test/gaming/topdown/processed_data.pt", "reason": NON_FINITE}]
        with h5py.File(tmp_path / "out" / name) as f:
            assert np.isfinite(f["features"][:]).all()
            assert [v.decode() for v in f["video_ids"][:]] == [
                "test/gaming/topdown/processed_data#0",
                "test/gaming/topdown/processed_data#2",
            ]


def test_a_second_writer_into_one_folder_is_refused_naming_the_holder(tiny_videos: Path, tmp_path: Path) -> None:
    holder = folder_lock(tmp_path / "out", "extraction", ".extract.lock")
    busy = pytest.raises(FolderBusyError, match=rf"in use by another extraction: pid {os.getpid()} on ")
    with holder, busy:
        extract(tiny_extract_config(tiny_videos, tmp_path / "out", splits=["test"]))
    extract(tiny_extract_config(tiny_videos, tmp_path / "out", splits=["test"], frames=2, outputs=["single"]))


def test_a_full_disk_is_one_error_and_the_next_run_resumes(
    tiny_videos: Path, resume_reference: Path, tmp_path: Path
) -> None:
    """ENOSPC while committing parts: exit 2 with one `error:` line naming the folder (no traceback, no
    segfault); with space again, the same command resumes and gives the clean run's files."""
    with small_filesystem(tmp_path / "disk", "600k") as disk:
        out = disk / "features"
        cmd = [sys.executable, str(ROOT / "extract.py"), "--data-dir", str(tiny_videos), "--out-dir", str(out)]
        proc = subprocess.run([*cmd, *RESUME_ARGS, "--no-log-mlflow"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1 and f"out of disk space writing to {out}" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
        committed = list(out.glob(".work/*/rank000/part_*.npz"))
        assert committed and not list(out.glob(".work/*/rank000/*.tmp*")) and not list(out.glob("*.h5*"))

        with pytest.raises(OutOfSpaceError, match="re-run the same command to resume"):
            extract(resume_config(tiny_videos, out))  # still full: the same one error in-process

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        extract(resume_config(tiny_videos, out))
        for name in ("train_features.h5", "train_features_multiscale.h5"):
            with h5py.File(resume_reference / name) as a, h5py.File(out / name) as b:
                for key in ("features", "labels", "num_frames", "paths"):
                    np.testing.assert_array_equal(a[key][:], b[key][:])


def test_a_full_disk_at_any_point_of_the_hdf5_file_exits_2_never_a_signal(tiny_videos: Path, tmp_path: Path) -> None:
    """The issue's reproduction, three times: the disk fills while the HDF5 file is assembled (its metadata
    flush included), which once ended in a segfault (exit 139) after the error line."""
    with small_filesystem(tmp_path / "disk", "400k") as disk:
        cmd = [sys.executable, str(ROOT / "extract.py"), "--data-dir", str(tiny_videos), "--out-dir", str(disk / "f")]
        cmd += ["--frames", "8", "--image-size", "96", "--backbone", "mobilenet_v2", "--no-log-mlflow"]
        for _ in range(3):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
            errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "out of disk space writing to" in errors[0], proc.stderr
            assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr
            assert not list(disk.rglob("*.h5*")), "a half-written HDF5 file was left behind"
