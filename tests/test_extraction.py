from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from research.backbones.loading import create_backbone
from research.backbones.runtime import TOLERANCE
from research.config import ExtractConfig
from research.features.extraction import extract
from research.features.frames import multiscale_features, multiscale_length, scale_indices
from research.features.hdf5 import read_attrs
from research.video.decode import decode_video, normalize, normalize_batch
from videogen.writing import read_manifest, write_video

from .conftest import RESUME_SETTINGS, ROOT, committed_parts, resume_config, run_entry_point, tiny_extract_config


def test_seed_multiscale_lengths() -> None:
    assert [len(i) for i in scale_indices(64, [1.0, 0.85, 1.15])] == [64, 54, 73]
    assert multiscale_length(64, [1.0, 0.85, 1.15]) == 73
    assert multiscale_length(3, [1.0, 0.85, 1.15]) == 5  # the seed's max(..., 5)


def test_schema_and_attributes(tiny_features: Path, tiny_videos: Path) -> None:
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        for name, length, multi in ((f"{split}_features.h5", 8, False), (f"{split}_features_multiscale.h5", 9, True)):
            with h5py.File(tiny_features / name) as f:
                assert f["features"].shape == (n, length, 1280) and f["features"].dtype == np.float32
                assert f["features"].chunks == (1, length, 1280)
                assert f["features"].compression == "gzip" and f["features"].compression_opts == 4
                assert f["labels"].dtype == np.int64 and f["num_frames"].dtype == np.int32
                assert (f["num_frames"][:] == length).all()  # the seed stores the sequence length
                attrs = dict(f.attrs)
                assert attrs["num_videos"] == n and attrs["max_frames"] == length and attrs["feature_dim"] == 1280
                assert bool(attrs["multi_scale"]) is multi
                mapping = json.loads(attrs["category_mapping"])
                assert mapping == {"animation": 0, "flat_content": 1, "gaming": 2, "natural_content": 3}
                assert attrs["backbone"] == "mobilenet_v2" and "IMAGENET1K_V1" in attrs["weights"]
                paths = [p.decode() for p in f["paths"][:]]
                assert paths == sorted(paths) and all((tiny_videos / p).is_file() for p in paths)
                labels = f["labels"][:]
                assert [mapping[p.split("/")[1]] for p in paths] == labels.tolist()
                listed = {row["path"]: int(row["frames"]) for row in read_manifest(tiny_videos)}
                assert f["decoded_frames"][:].tolist() == [listed[p] for p in paths]  # every frame of every video
                assert np.abs(f["features"][:]).sum(axis=(1, 2)).min() > 0
    analysis = json.loads((tiny_features / "configuration_analysis.json").read_text())
    assert analysis["preprocessing_info"]["frames_per_video"] == 8
    assert analysis["files"]["test_features_multiscale.h5"]["features_shape"] == [4, 9, 1280]


def seed_multiscale_reference(
    backbone: torch.nn.Module, video: torch.Tensor, scales: list[float], batch_size: int = 24
) -> torch.Tensor:
    """The seed's loop, written out as seed 000 shows it: a CNN pass per scaled sequence."""
    num_frames = video.shape[0]
    scale_features = []
    for scale in scales:
        if scale != 1.0:
            new_length = max(int(num_frames * scale), 5)
            indices = np.linspace(0, num_frames - 1, new_length).astype(int)
            scaled_video = video[indices]
        else:
            scaled_video = video
        frame_features = [
            backbone(scaled_video[i : i + batch_size]) for i in range(0, scaled_video.shape[0], batch_size)
        ]
        scale_features.append(torch.cat(frame_features, dim=0))
    max_len = max(sf.shape[0] for sf in scale_features)
    padded = [
        torch.cat([sf, torch.zeros(max_len - sf.shape[0], sf.shape[1])]) if sf.shape[0] < max_len else sf
        for sf in scale_features
    ]
    return torch.stack(padded).mean(dim=0)


def test_multiscale_from_one_pass_equals_the_seed_loop(tiny_features: Path, tiny_videos: Path) -> None:
    backbone = create_backbone("mobilenet_v2")
    scales = [1.0, 0.85, 1.15]
    with h5py.File(tiny_features / "test_features_multiscale.h5") as f:
        paths, stored = [p.decode() for p in f["paths"][:]], f["features"][:]
    for path, row in zip(paths[:2], stored[:2], strict=True):
        frames = decode_video(tiny_videos / path, 8, 96).expanded()
        video = normalize(torch.from_numpy(frames), backbone.spec.mean, backbone.spec.std)
        with torch.inference_mode():
            expected = seed_multiscale_reference(backbone, video, scales)
            ours = multiscale_features(backbone(video), scales)
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
        # the file's CNN ran in the default runtime (ONNX Runtime on CPU): equal within its measured tolerance
        np.testing.assert_allclose(row, expected.numpy(), rtol=1e-5, atol=TOLERANCE)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])  # ImageNet's statistics and Lite's 0.5s
def test_cpu_normalisation_equals_torch_bit_for_bit(tiny_videos: Path, name: str, channels_last: bool) -> None:
    """``normalize_batch`` (numpy, what CPU extraction feeds the CNN) is ``normalize`` + ``torch.cat`` exactly, in
    either layout: the features of files made before it are the features made with it."""
    spec = create_backbone(name).spec
    paths = sorted((tiny_videos / "test").rglob("*.mp4"))[:3]
    chunks = [torch.from_numpy(decode_video(p, n, 64).frames) for p, n in zip(paths, (5, 1, 8), strict=True)]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    expected = torch.cat([normalize(c, spec.mean, spec.std).contiguous(memory_format=layout) for c in chunks])
    got = normalize_batch([c.numpy() for c in chunks], spec.mean, spec.std, channels_last)
    assert got.dtype == torch.float32 and got.shape == expected.shape == (14, 3, 64, 64)
    assert got.is_contiguous(memory_format=layout)
    assert torch.equal(got, expected)


def test_short_videos_repeat_frames_like_linspace_and_record_real_count(tiny_videos: Path) -> None:
    path = next((tiny_videos / "test").rglob("*.mp4"))
    n = decode_video(path, 8, 64).n_frames
    dec = decode_video(path, n + 20, 64)  # more positions than frames: repeats
    assert dec.n_frames == n and len(dec.frames) == n  # every frame decoded once
    np.testing.assert_array_equal(dec.frame_numbers, np.linspace(0, n - 1, n + 20).astype(int))


def test_processed_data_pt_input_gives_the_same_features(
    tiny_features: Path, tiny_videos: Path, tmp_path: Path
) -> None:
    """The seed's Stage-1 tensors (normalised [N,T,C,H,W]) are accepted as input."""
    spec = create_backbone("mobilenet_v2").spec
    src = sorted((tiny_videos / "test" / "gaming").rglob("*.mp4"))
    videos = torch.stack(
        [normalize(torch.from_numpy(decode_video(p, 8, 96).expanded()), spec.mean, spec.std) for p in src]
    )
    folder = tmp_path / "data" / "test" / "gaming" / "topdown"
    folder.mkdir(parents=True)
    torch.save(
        {
            "videos": videos,
            "labels": torch.zeros(len(src)),
            "filenames": [p.name for p in src],
            "category_mapping": {"gaming": 2},
        },
        folder / "processed_data.pt",
    )
    (folder / "metadata.json").write_text("{}")
    for cat in ("animation", "flat_content", "natural_content"):
        (tmp_path / "data" / "test" / cat).mkdir()
    extract(tiny_extract_config(tmp_path / "data", tmp_path / "out", splits=["test"]))
    with (
        h5py.File(tmp_path / "out" / "test_features_multiscale.h5") as f,
        h5py.File(tiny_features / "test_features_multiscale.h5") as ref,
    ):
        ref_paths = [p.decode() for p in ref["paths"][:]]
        j = ref_paths.index(src[0].relative_to(tiny_videos).as_posix())
        assert f["labels"][0] == 2
        np.testing.assert_allclose(f["features"][0], ref["features"][j], rtol=1e-5, atol=1e-6)


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for i in range(10):
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_bad_inputs_are_skipped_counted_and_listed(tiny_videos: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_videos / "test", root / "test")
    bad = root / "test" / "gaming" / "broken"
    bad.mkdir()
    (bad / "notes.mp4").write_text("this is not a video")
    (bad / "empty.mp4").write_bytes(b"")
    good = next((tiny_videos / "test").rglob("*.mp4")).read_bytes()
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 3])
    _write_audio_only(bad / "audio_only.mp4")
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(bad / "picture.mp4", format="PNG")  # a still image
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(bad / "photo.mp4", format="JPEG")
    write_video(root / "test" / "gaming" / "one_frame.mp4", [np.full((48, 64, 3), 90, np.uint8)], 64, 48, 25)
    results = extract(tiny_extract_config(root, tmp_path / "out", splits=["test"]))
    assert results["splits"]["test"]["videos"] == 5  # the 4 good ones and a real one-frame video
    attrs = read_attrs(tmp_path / "out" / "test_features.h5")
    assert attrs["num_skipped"] == 6
    reasons = {Path(s["path"]).name: s["reason"] for s in attrs["skipped"]}
    assert set(reasons) == {"notes.mp4", "empty.mp4", "truncated.mp4", "audio_only.mp4", "picture.mp4", "photo.mp4"}
    assert "no video stream" in reasons["audio_only.mp4"]
    assert reasons["picture.mp4"].startswith("a still image, not a video (FFmpeg reads it as png_pipe)")
    assert "jpeg_pipe" in reasons["photo.mp4"]
    assert attrs["num_videos"] == 5


def test_cli_exits_nonzero_when_nothing_could_be_extracted(tmp_path: Path) -> None:
    (tmp_path / "data" / "test" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "test" / "cat" / "x.mp4").write_text("not a video")
    args = ["--data-dir", tmp_path / "data", "--out-dir", tmp_path / "out", "--backbone", "mobilenet_v2"]
    proc = run_entry_point([ROOT / "extract.py", *args, "--frames", "4", "--image-size", "64", "--splits", "test"])
    assert proc.returncode == 2, proc.stderr
    assert "no video could be extracted" in proc.stderr
    assert "x.mp4" in proc.stderr


# RESUME_SETTINGS on the command line (conftest.resume_config in-process): the same extraction either way.
RESUME_ARGS = [
    "--backbone",
    "mobilenet_v2",
    "--num-workers",
    "0",
    "clip_seconds=null",
    *(f"{k}={json.dumps(v)}" for k, v in RESUME_SETTINGS.items()),
]


def _run_extract(data: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "extract.py"), "--data-dir", str(data), "--out-dir", str(out), *RESUME_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_after_parts(proc: subprocess.Popen, out: Path, parts: int) -> int:
    """SIGKILL ``proc`` once ``out`` holds ``parts`` committed part files; returns how many it committed."""
    deadline = time.time() + 240
    while time.time() < deadline and committed_parts(out) < parts:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up: the hard case
    proc.wait()
    return committed_parts(out)


def resume_in_process(data: Path, out: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Re-run the killed extraction (the same code path the CLI runs); returns its log."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="research.features.extraction"):
        extract(resume_config(data, out))
    return caplog.text


def test_resume_after_kill_equals_a_clean_run(
    tiny_videos: Path, resume_reference: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resumed = tmp_path / "resumed"
    committed = kill_after_parts(_run_extract(tiny_videos, resumed), resumed, 3)
    assert 3 <= committed < 12 and not (resumed / "train_features.h5").exists()
    log = resume_in_process(tiny_videos, resumed, caplog)
    assert f"resuming, {committed} of 12" in " ".join(log.split())
    for name in ("train_features.h5", "train_features_multiscale.h5"):
        with h5py.File(resume_reference / name) as a, h5py.File(resumed / name) as b:
            for key in ("features", "labels", "num_frames", "decoded_frames", "paths"):
                np.testing.assert_array_equal(a[key][:], b[key][:])
    assert not (resumed / ".work").exists()


def test_memory_stays_flat_as_videos_grow(tiny_videos: Path, tmp_path: Path) -> None:
    """RSS after 4N videos is within 15% of RSS after N, and far below holding all features."""
    n = 15
    src = sorted(tiny_videos.rglob("*.mp4"))
    for i in range(4 * n):
        dst = tmp_path / "data" / "train" / "cat" / f"v{i:03d}.mp4"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src[i % len(src)], dst)
    script = f"""
import json, resource, sys
from research.config import ExtractConfig
from research.features.extraction import extract
from research.features.writing import PartWriter
rss, add = [], PartWriter.add
def page_rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
def recording_add(self, row):
    add(self, row)
    rss.append(page_rss())
PartWriter.add = recording_add
extract(ExtractConfig(data_dir={str(tmp_path / "data")!r}, out_dir={str(tmp_path / "out")!r},
                      backbone='mobilenet_v2', frames=64, image_size=32, batch_size=64, num_workers=0,
                      splits=['train'], clip_seconds=None, flush_every=8))
print(json.dumps(rss))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rss = json.loads(proc.stdout.strip().splitlines()[-1])
    after_n, after_4n = rss[n - 1], rss[4 * n - 1]
    held_by_seed = 3 * n * (64 + 73) * 1280 * 4  # bytes the seed's lists would add over those 3N videos
    assert after_4n <= 1.15 * after_n, (after_n, after_4n)
    assert after_4n - after_n < held_by_seed / 2, (after_4n - after_n, held_by_seed)


def test_config_rejects_unknown_sampling() -> None:
    from research.config import build_config
    from research.errors import ConfigError

    with pytest.raises(ConfigError):
        build_config(ExtractConfig, {"sampling": "random"})


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    """A phone video stores a display matrix; the sampled frames come out upright."""
    from videogen.writing import rgb_to_yuv420p

    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        image = np.zeros((32, 64, 3), np.uint8)
        image[:, :32] = 255  # left half white
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    grey = decode_video(path, 2, 32).frames[0].mean(axis=2)
    assert grey[16:].mean() > 200 and grey[:16].mean() < 50  # rotated 90 degrees counter-clockwise: left -> bottom
