"""ONNX Runtime as the CNN's runtime: features equal torch's within TOLERANCE for every offline backbone,
exports cached under a key of everything that determines them, and the runtime recorded in feature files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import research.backbones.runtime as runtime
from research.backbones.loading import create_backbone, create_backbones
from research.backbones.runtime import (
    TOLERANCE,
    exported_model,
    onnx_backbone,
    resolve_runtime,
    torch_threads_for,
)
from research.errors import ConfigError
from research.features.compat import check_compatible
from research.features.extraction import extract
from research.features.hdf5 import read_attrs
from research.video.decode import decode_video, normalize

from .conftest import tiny_extract_config

OFFLINE = ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
SIZE = 112  # small frames keep the export and the four networks within a few seconds each


@pytest.fixture(autouse=True)
def export_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports go to a throwaway folder, so every test exports what it checks."""
    folder = tmp_path / "onnx"
    monkeypatch.setattr(runtime, "export_dir", lambda: folder)
    return folder


def real_frames(videos: Path, count: int = 6) -> torch.Tensor:
    """``count`` decoded frames of a real clip, ``[N, S, S, 3]`` uint8."""
    path = sorted((videos / "test").rglob("*.mp4"))[0]
    return torch.from_numpy(decode_video(path, count, SIZE).expanded())


@pytest.mark.parametrize("name", OFFLINE)
def test_onnxruntime_features_equal_torch_within_tolerance(name: str, tiny_videos: Path) -> None:
    torch_net = create_backbone(name)  # as extraction runs it: channels_last
    x = normalize(real_frames(tiny_videos), torch_net.spec.mean, torch_net.spec.std)
    with torch.inference_mode():
        expected = torch_net(x.contiguous(memory_format=torch.channels_last))
    got = onnx_backbone(name, create_backbone(name, channels_last=False), SIZE, pretrained=True)(x)
    assert got.shape == expected.shape == (6, torch_net.spec.feature_dim)
    assert expected.std() > 0.1  # real features, not a constant that anything would match
    diff = (got - expected).abs().max().item()
    assert diff <= TOLERANCE, f"{name}: max abs diff {diff:.2e} > {TOLERANCE}"


def test_export_is_cached_and_keyed_by_weights_and_size(export_cache: Path) -> None:
    net = create_backbone("mobilenet_v2", channels_last=False)
    first = exported_model("mobilenet_v2", net, 64)
    assert isinstance(first, Path) and first.parent == export_cache
    mtime = first.stat().st_mtime_ns
    assert exported_model("mobilenet_v2", net, 64) == first and first.stat().st_mtime_ns == mtime  # re-used
    assert exported_model("mobilenet_v2", net, 80) != first  # another input size: another export
    with torch.no_grad():
        next(net.parameters()).add_(1e-3)  # other weights under the same name: another export
    assert exported_model("mobilenet_v2", net, 64) != first
    assert len(list(export_cache.glob("*.onnx"))) == 3


def test_untrained_networks_are_never_cached(export_cache: Path) -> None:
    net = create_backbone("mobilenet_v2", pretrained=False, channels_last=False)
    onnx_backbone("mobilenet_v2", net, 64, pretrained=False)
    assert not export_cache.exists() or not any(export_cache.iterdir())


def test_auto_is_onnxruntime_on_cpu_and_torch_on_cuda() -> None:
    assert resolve_runtime("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_runtime("auto", torch.device("cuda")) == "torch"
    assert resolve_runtime("torch", torch.device("cpu")) == "torch"
    with pytest.raises(ConfigError, match="untested"):
        resolve_runtime("onnxruntime", torch.device("cuda"))
    with pytest.raises(ConfigError, match="not one of"):
        resolve_runtime("tensorrt", torch.device("cpu"))


def test_fused_multiscale_extraction_by_both_runtimes_agrees_and_records_the_runtime(
    tiny_videos: Path, tmp_path: Path
) -> None:
    """A fused backbone, both file kinds: ONNX Runtime's files equal torch's within TOLERANCE, record which
    runtime made them, and are compatible with torch's (the runtime is recorded, not compared)."""
    files = {}
    for name in ("torch", "onnxruntime"):
        cfg = tiny_extract_config(
            tiny_videos, tmp_path / name, backbone="mobilenet_v2+efficientnet_lite0", image_size=SIZE, frames=4
        )
        extract(dataclasses.replace(cfg, runtime=name, splits=["val"], log_mlflow=False))
        files[name] = {kind: tmp_path / name / f"val_features{kind}.h5" for kind in ("", "_multiscale")}
    for kind in ("", "_multiscale"):
        a, b = files["torch"][kind], files["onnxruntime"][kind]
        with h5py.File(a) as fa, h5py.File(b) as fb:
            ta, tb = fa["features"][()], fb["features"][()]
        assert ta.shape[-1] == 2560 and np.abs(ta).sum() > 0
        assert np.abs(ta - tb).max() <= TOLERANCE
        attrs_a, attrs_b = read_attrs(a), read_attrs(b)
        assert attrs_a["runtime"].startswith("torch ") and attrs_b["runtime"].startswith("onnxruntime ")
        assert check_compatible(attrs_a, attrs_b, "torch file", "onnxruntime file") == {}


def test_create_backbones_runs_every_part_in_the_runtime(tiny_videos: Path) -> None:
    from research.config import ExtractConfig
    from research.features.settings import FeatureSettings

    settings = FeatureSettings.from_config(ExtractConfig(backbone="mobilenet_v2+efficientnet_lite0", image_size=64))
    nets = create_backbones(settings, runtime="onnxruntime")
    assert [type(n).__name__ for n in nets] == ["OnnxBackbone", "OnnxBackbone"]


def test_torch_keeps_one_thread_beside_onnxruntime_and_gets_its_threads_back() -> None:
    """While only ONNX Runtime networks run, torch's intra-op threads are one (they would only spin between
    small ops); beside a torch network they stay; the count is restored either way, errors included."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ort = onnx_backbone("mobilenet_v2", create_backbone("mobilenet_v2", channels_last=False), 32, pretrained=True)
        assert ort.session.get_session_options().intra_op_num_threads == 2  # its own pool: unaffected
        with torch_threads_for([ort]):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads_for([ort, create_backbone("mobilenet_v2")]):
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="stop"), torch_threads_for([ort]):
            raise RuntimeError("stop")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
