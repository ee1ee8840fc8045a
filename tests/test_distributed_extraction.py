"""Extraction beyond one process: torchrun sharding and resume, timestamp mode, merge and inspect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research.config import ExtractConfig
from research.errors import FeatureFileError
from research.features.copying import merge
from research.features.hdf5 import read_attrs
from research.features.timestamps import extract_timestamps

from .conftest import committed_parts, torchrun_cmd

DATASETS = ("features", "labels", "num_frames", "decoded_frames", "paths", "video_ids")


def torchrun(args: list[str], port: int, **kwargs) -> subprocess.Popen:
    cmd = torchrun_cmd("extract.py", args, port)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def assert_same_files(a: Path, b: Path, names: list[str]) -> None:
    """Row for row the same videos, labels and lengths; features equal to float32 rounding.

    torchrun gives each worker OMP_NUM_THREADS=1, and oneDNN's reductions round differently
    with another thread count (batch composition does not matter: see test_extraction's resume test).
    """
    for name in names:
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            for key in DATASETS:
                if key == "features":
                    np.testing.assert_allclose(fa[key][:], fb[key][:], rtol=1e-5, atol=1e-5, err_msg=name)
                else:
                    np.testing.assert_array_equal(fa[key][:], fb[key][:], err_msg=f"{name}:{key}")
            assert fa.attrs["num_videos"] == fb.attrs["num_videos"]


def _descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                children.append(int(entry.name))
    return children + [d for c in children for d in _descendants(c)]


def _rank_pid(root: int, rank: int) -> int | None:
    for pid in _descendants(root):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(e[:20] for e in env):
            return pid
    return None


# tiny_features' settings (conftest.tiny_extract_config), one part file per video so a kill lands between commits
TINY_ARGS = [
    *("--backbone", "mobilenet_v2", "--frames", "8", "--image-size", "96", "--batch-size", "16"),
    *("--num-workers", "0", "clip_seconds=null", "flush_every=1"),
]


def test_two_ranks_equal_one_process_and_a_killed_rank_resumes_without_recomputing(
    tiny_videos: Path, tiny_features: Path, tmp_path: Path
) -> None:
    """One set of torchrun runs for two checks: a rank killed mid-train-split resumes from every rank's
    committed parts, and the two-rank files of every split then equal the one-process files."""
    out = tmp_path / "ranks"
    args = ["--data-dir", str(tiny_videos), "--out-dir", str(out), *TINY_ARGS]
    proc = torchrun(args, 29562, start_new_session=True)
    deadline = time.time() + 240
    while committed_parts(out, "rank001") < 2:
        assert time.time() < deadline and proc.poll() is None, "rank 1 committed nothing"
        time.sleep(0.02)
    victim = _rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)  # one rank dies; torchrun tears the job down
    proc.communicate(timeout=120)
    committed = committed_parts(out)
    assert committed >= 2 and not (out / "train_features.h5").exists()
    again = torchrun(args, 29563)
    log = again.communicate(timeout=300)[0]
    assert again.returncode == 0, log[-3000:]
    assert f"resuming, {committed} of 12" in " ".join(log.split())
    names = [f"{s}_features{k}.h5" for s in ("train", "val", "test") for k in ("", "_multiscale")]
    assert_same_files(tiny_features, out, names)
    assert not (out / ".work").exists()


def _index_video(path: Path, n: int = 25, fps: int = 25, size: int = 64) -> list[int]:
    """A video whose frame i is a flat grey of level 20 + 8 i: each frame encodes its own index."""
    from videogen.writing import write_video

    levels = [20 + 8 * i for i in range(n)]
    write_video(path, (np.full((size, size, 3), v, np.uint8) for v in levels), size, size, fps)
    return levels


def test_timestamp_mode_reads_exactly_the_requested_frames(tmp_path: Path) -> None:
    from research.backbones.loading import create_backbone
    from research.video.decode import normalize

    levels = _index_video(tmp_path / "videos" / "clip.mp4")
    (tmp_path / "videos.csv").write_text("video_id,video_path,fps\nclip,clip.mp4,25\n")
    wanted = [3, 17, 0, 24, 9, 17]
    rows = [f"clip,{f / 25:.4f}" for f in wanted] + ["clip,5.0"]  # the last is past the end: reported, not invented
    (tmp_path / "frames.csv").write_text("video_id,timestamp_sec\n" + "\n".join(rows) + "\n")
    cfg = ExtractConfig(
        frame_index=str(tmp_path / "frames.csv"),
        video_index=str(tmp_path / "videos.csv"),
        data_dir=str(tmp_path / "videos"),
        out_dir=str(tmp_path / "out"),
        backbone="mobilenet_v2",
        image_size=64,
    )
    result = extract_timestamps(cfg)
    assert result["found"] == 6 and [m["row"] for m in result["missing"]] == [6]
    import av

    backbone = create_backbone("mobilenet_v2")
    with av.open(str(tmp_path / "videos" / "clip.mp4")) as container:  # plain sequential decode, independent of seeking
        decoded = [f.to_ndarray(width=64, height=64, format="rgb24") for f in container.decode(video=0)]
    assert [abs(float(d.mean()) - v) < 4 for d, v in zip(decoded, levels, strict=True)] == [True] * len(levels)
    refs = torch.from_numpy(np.stack(decoded))
    with torch.inference_mode():
        ref_feats = backbone(normalize(refs, backbone.spec.mean, backbone.spec.std)).numpy()
    with h5py.File(tmp_path / "out" / "frames_features.h5") as f:
        feats, row, frames = f["features"][:], f["row"][:], f["frame_numbers"][:]
        assert not f.attrs["all_rows_found"] and f.attrs["total_rows"] == 7
    assert row.tolist() == [0, 1, 2, 3, 4, 5] and frames.tolist() == wanted
    nearest = [int(np.argmin(np.linalg.norm(ref_feats - x, axis=1))) for x in feats]
    assert nearest == wanted
    np.testing.assert_allclose(feats, ref_feats[wanted], rtol=1e-5, atol=1e-5)
    manifest = (tmp_path / "out" / "feature_manifest.json").read_text()
    assert '"alignment_verified": false' in manifest and '"row": 6' in manifest


def test_merge_concatenates_and_refuses_mismatched_files(tiny_features: Path, tmp_path: Path) -> None:
    out = tmp_path / "trainval_features.h5"
    assert merge(out, [tiny_features / "train_features.h5", tiny_features / "val_features.h5"]) == 16
    with h5py.File(out) as f, h5py.File(tiny_features / "val_features.h5") as val:
        np.testing.assert_array_equal(f["features"][12:], val["features"][:])
        assert f.attrs["num_videos"] == 16
    with pytest.raises(FeatureFileError, match=r"multi_scale: False .* vs True"):
        merge(tmp_path / "bad.h5", [tiny_features / "train_features.h5", tiny_features / "val_features_multiscale.h5"])
    proc = subprocess.run(
        [sys.executable, "-m", "research.commands.features", "inspect", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "mobilenet_v2" in proc.stdout and "[16, 8, 1280]" in proc.stdout
    assert read_attrs(out)["num_skipped"] == 0
