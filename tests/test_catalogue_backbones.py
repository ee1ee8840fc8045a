"""Any backbone by name (timm/, torchvision/, open_clip/), proven offline with real weights and real files.

- ``timm/tf_efficientnet_lite0`` with the packaged Lite0 weights as its local file gives the alias's features;
- ``torchvision/mobilenet_v2:IMAGENET1K_V1`` gives ``mobilenet_v2``'s;
- an unknown name is one line with near misses; a known one without its weights one line naming where to
  put them, never random weights;
- an open_clip tower loads from a checkpoint this test writes (random weights, on purpose: the real ones are
  not reachable offline; what is tested is the loading and the recorded L2 normalisation);
- ``resize: crop`` is the model's own eval transform, recorded, and a squash member is refused on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
import torch

from research.backbones.loading import _timm_classifier
from research.backbones.table import TF_LITE_MEAN, TF_LITE_STD, get_spec
from research.errors import ConfigError, FeatureMismatchError, StaleWorkError
from research.features.compat import check_compatible
from research.features.extraction import extract
from research.features.hdf5 import read_attrs
from research.features.settings import CropView
from research.video.decode import to_rgb

from .conftest import run_entry_point, tiny_extract_config


def small(tiny_videos: Path, out: Path, backbone: str, **overrides):
    """The test split through ``backbone``: single-scale, 4 frames at the backbone's own resolution."""
    values = dict(backbone=backbone, splits=["test"], frames=4, image_size=None, outputs=["single"], log_mlflow=False)
    return tiny_extract_config(tiny_videos, out, **(values | overrides))


def features_of(folder: Path, split: str = "test") -> np.ndarray:
    with h5py.File(folder / f"{split}_features.h5") as f:
        return f["features"][:]


@pytest.fixture(scope="module")
def alias_files(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test split through the two aliases, single-scale, 4 frames at their own resolutions."""
    out = {}
    for name in ("efficientnet_lite0", "mobilenet_v2"):
        folder = tmp_path_factory.mktemp(name)
        extract(small(tiny_videos, folder, name))
        out[name] = folder
    return out


def test_timm_name_with_a_local_weights_file_equals_the_lite0_alias(
    alias_files: dict[str, Path], tiny_videos: Path, tmp_path: Path
) -> None:
    """timm's own loading (``pretrained_cfg_overlay=dict(file=...)``) of the packaged Lite0 weights, saved as
    the timm state dict they map onto: the alias's features, at the alias's normalisation (timm records
    mean = std = 0.5 for Lite, TensorFlow (x - 127) / 128: the config overrides, as a user would)."""
    file = tmp_path / "tf_efficientnet_lite0.pth"
    torch.save(_timm_classifier(get_spec("efficientnet_lite0"), True).state_dict(), file)
    name = "timm/tf_efficientnet_lite0"
    cfg = small(
        tiny_videos,
        tmp_path / "f",
        name,
        weights={name: str(file)},
        mean=list(TF_LITE_MEAN),
        std=list(TF_LITE_STD),
    )
    extract(cfg)
    np.testing.assert_allclose(features_of(tmp_path / "f"), features_of(alias_files["efficientnet_lite0"]), atol=1e-5)
    attrs = read_attrs(tmp_path / "f" / "test_features.h5")
    assert attrs["backbone"] == name and attrs["weights"] == "timm:tf_efficientnet_lite0.in1k"
    assert attrs["weights_file"] == str(file) and attrs["resize"] == "squash"
    os.utime(file, ns=(1, 1))  # another file at the same path: the features on disk are not re-used for it
    with pytest.raises(StaleWorkError, match="extracted differently: weights_stamp"):
        extract(cfg)


def test_torchvision_name_equals_the_mobilenet_v2_alias(
    alias_files: dict[str, Path], tiny_videos: Path, tmp_path: Path
):
    name = "torchvision/mobilenet_v2:IMAGENET1K_V1"
    extract(small(tiny_videos, tmp_path, name))
    np.testing.assert_array_equal(features_of(tmp_path), features_of(alias_files["mobilenet_v2"]))
    spec = get_spec(name)
    assert (spec.feature_dim, spec.image_size, spec.crop_pct, spec.interpolation) == (1280, 224, 0.875, "bilinear")


def test_an_unknown_name_is_one_line_with_near_misses(tmp_path: Path) -> None:
    done = run_entry_point(["extract.py", "--backbone", "timm/resnet5o", "--out-dir", str(tmp_path)])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown timm model 'resnet5o' (did you mean 'resnet50'?)" in done.stderr
    with pytest.raises(ConfigError, match=r"has no weights 'IMAGENET9'; its weights: \['IMAGENET1K_V1'"):
        get_spec("torchvision/mobilenet_v2:IMAGENET9")
    with pytest.raises(ConfigError, match=r"or a catalogue name: timm/MODEL\[:TAG\]"):
        get_spec("tim/resnet50")


def test_a_known_name_without_its_weights_names_where_to_put_them(
    tiny_videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["extract.py", "--data-dir", str(tiny_videos), "--out-dir", str(tmp_path), "--splits", "test"]
    done = run_entry_point([*args, "--backbone", "timm/resnet18:a1_in1k", "--no-log-mlflow"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("error:"))
    assert (
        "timm/resnet18.a1_in1k in the Hugging Face cache" in line and "weights: {timm/resnet18:a1_in1k: FILE}" in line
    )
    assert "python -m research.commands.backbones list" in line
    assert not list(tmp_path.glob("*.h5"))  # never extracted with random weights


def test_an_open_clip_tower_loads_from_a_checkpoint_file_and_records_its_normalisation(
    tiny_videos: Path, tmp_path: Path
) -> None:
    """Random weights, on purpose: open_clip's real checkpoints are not reachable offline. The file is a real
    open_clip checkpoint (``torch.save`` of a model's state dict) that open_clip's own loader reads."""
    open_clip = pytest.importorskip("open_clip")
    file = tmp_path / "rn50_random.pt"
    torch.save(open_clip.create_model("RN50", pretrained=None).state_dict(), file)
    name = "open_clip/RN50:openai"
    extract(
        small(
            tiny_videos,
            tmp_path / "f",
            name,
            frames=2,
            weights={name: str(file)},
        )
    )
    with h5py.File(tmp_path / "f" / "test_features.h5") as f:
        x, n = f["features"][:], f["num_frames"][:]
    norms = np.linalg.norm(x[0, : n[0]], axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)  # the image embedding, L2-normalised
    attrs = read_attrs(tmp_path / "f" / "test_features.h5")
    assert attrs["feature_dim"] == 1024 and attrs["l2_normalized"] and attrs["weights"] == "open_clip:RN50:openai"


def three_bands(width: int = 540, height: int = 180) -> av.VideoFrame:
    rgb = np.zeros((height, width, 3), np.uint8)
    for k in range(3):
        rgb[:, k * width // 3 : (k + 1) * width // 3, k] = 255
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def test_crop_is_the_centre_of_the_shorter_side_and_squash_the_whole_frame() -> None:
    frame = three_bands()  # red | green | blue, 3:1: the shorter side's centre square is the green band
    crop = to_rgb(frame, CropView(64, 1.0, "bicubic"))
    squash = to_rgb(frame, 64)
    assert crop.shape == squash.shape == (64, 64, 3)
    inside = crop[:, 3:-3]  # the band edges blend under bicubic resampling
    assert inside[..., 1].min() > 240 and inside[..., 0].max() < 20 and inside[..., 2].max() < 20
    assert all(squash[:, c * 21 + 5, c].mean() > 250 for c in range(3))  # all three bands, squeezed
    tight = to_rgb(frame, CropView(60, 0.5, "bilinear"))  # a 120-px short side: its centre half only
    assert tight[..., 1].min() > 240 and tight[..., 0].max() < 20


def test_resize_crop_is_recorded_and_a_squash_member_is_refused_on_it(
    alias_files: dict[str, Path], tiny_videos: Path, tmp_path: Path
) -> None:
    extract(small(tiny_videos, tmp_path, "mobilenet_v2", resize="crop"))
    crop, squash = (read_attrs(p / "test_features.h5") for p in (tmp_path, alias_files["mobilenet_v2"]))
    assert (crop["resize"], crop["crop_pct"], crop["interpolation"]) == ("crop", 0.875, "bilinear")
    assert not np.allclose(features_of(tmp_path), features_of(alias_files["mobilenet_v2"]))
    with pytest.raises(FeatureMismatchError, match=r"resize: 'squash' \(member\) vs 'crop' \(file\)"):
        check_compatible(squash, crop, "member", "file")
    old_style = {k: v for k, v in squash.items() if k != "resize"}  # a file from before resize was recorded
    with pytest.raises(FeatureMismatchError, match="resize"):
        check_compatible(old_style, crop, "member", "file")
    assert not check_compatible(old_style, squash, "member", "file")
