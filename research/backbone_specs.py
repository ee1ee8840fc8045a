"""The backbone table: names, feature widths, weights and preprocessing, as plain data.

A module of its own, importing no torch or torchvision, so that the config layer,
``--help`` and the feature settings can name and check backbones in milliseconds;
``research.backbones`` builds the networks from these rows. A test checks every
row's weights name and file against torchvision's own ``Weights`` enums.
"""

from __future__ import annotations

from dataclasses import dataclass

from research.errors import ConfigError, did_you_mean

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    weights: str  # the torchvision Weights enum member, e.g. "IMAGENET1K_V1"
    weights_name: str  # str() of that member, e.g. "MobileNet_V2_Weights.IMAGENET1K_V1" (feature files record it)
    weights_file: str  # the file torchvision caches it as (hub/checkpoints/NAME)
    feature_dim: int
    head: str  # attribute holding the classification head, replaced by Identity
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _torchvision(name: str, enum: str, member: str, file: str, dim: int, head: str) -> BackboneSpec:
    return BackboneSpec(name, member, f"{enum}.{member}", file, dim, head)


_BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _torchvision("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 2048, "fc"),
        _torchvision("resnet101", "ResNet101_Weights", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 2048, "fc"),
        _torchvision(
            "efficientnet_v2_s",
            "EfficientNet_V2_S_Weights",
            "IMAGENET1K_V1",
            "efficientnet_v2_s-dd5fe13b.pth",
            1280,
            "classifier",
        ),
        _torchvision(
            "efficientnet_v2_m",
            "EfficientNet_V2_M_Weights",
            "IMAGENET1K_V1",
            "efficientnet_v2_m-dc08266a.pth",
            1280,
            "classifier",
        ),
        _torchvision(
            "mobilenet_v3_large",
            "MobileNet_V3_Large_Weights",
            "IMAGENET1K_V1",
            "mobilenet_v3_large-8738ca79.pth",
            960,
            "classifier",
        ),
        _torchvision(
            "mobilenet_v2", "MobileNet_V2_Weights", "IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", 1280, "classifier"
        ),
    )
}


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}{did_you_mean(name, _BACKBONES)}; choose one of {list_backbones()}"
        ) from None
