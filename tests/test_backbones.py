from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from research.backbones.loading import WeightsNotFoundError, create_backbone, get_spec, list_backbones, load_classifier

from .conftest import ROOT, run_entry_point

CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_mobilenet_v2_real_weights_recognise_a_real_photograph() -> None:
    """The offline file is torchvision's own: the full classifier calls skimage's cat a cat."""
    from skimage.data import chelsea
    from torchvision import models

    model = load_classifier("mobilenet_v2").eval()
    preprocess = models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    image = torch.from_numpy(chelsea()).permute(2, 0, 1)
    with torch.inference_mode():
        top5 = model(preprocess(image)[None]).topk(5).indices[0].tolist()
    assert top5[0] in CAT_CLASSES, f"top-5 ImageNet classes {top5} contain no cat"


def test_frozen_backbone_gives_1280_d_features() -> None:
    backbone = create_backbone("mobilenet_v2")
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.training
    with torch.inference_mode():
        feats = backbone(torch.randn(2, 3, 128, 128))
    assert feats.shape == (2, 1280)
    assert get_spec("mobilenet_v2").feature_dim == 1280


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_builds_with_its_declared_feature_dim(name: str) -> None:
    backbone = create_backbone(name, pretrained=False)
    with torch.inference_mode():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert feats.shape == (1, get_spec(name).feature_dim)


def test_missing_weights_error_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsNotFoundError, match=r"resnet50-11ad3fa6\.pth") as err:
        create_backbone("resnet50")
    assert "random" in str(err.value) and str(tmp_path) in str(err.value)


def test_missing_weights_cli_is_one_paragraph_and_nonzero(
    tmp_path: Path, tiny_videos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache: no resnet50 file
    args = ["--backbone", "resnet50", "--data-dir", tiny_videos, "--out-dir", tmp_path / "f"]
    proc = run_entry_point([ROOT / "extract.py", *args])
    assert proc.returncode == 2
    assert "resnet50-11ad3fa6.pth" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_random_weights_are_explicit_and_differ_from_pretrained() -> None:
    real = create_backbone("mobilenet_v2")
    random = create_backbone("mobilenet_v2", pretrained=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert not np.allclose(real(x).numpy(), random(x).numpy())
