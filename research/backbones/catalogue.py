"""Any image backbone by name: the timm and torchvision catalogues and CLIP image towers.

    timm/<model>[:<pretrained tag>]        timm/vit_small_patch14_dinov2:lvd142m, timm/convnext_tiny:in12k_ft_in1k
    torchvision/<model>[:<WEIGHTS>]        torchvision/mobilenet_v2:IMAGENET1K_V1, torchvision/resnet50 (DEFAULT)
    open_clip/<arch>:<pretrained>          open_clip/ViT-B-16:openai (pip install -e '.[clip]')

``catalogue_spec(name)`` resolves a name to a ``BackboneSpec`` with everything that determines its
features: the feature width, and the resolution, mean/std, interpolation and ``crop_pct`` of the model's
own evaluation transform (timm's pretrained data config, torchvision's weights transforms, open_clip's
preprocessing). It builds the network on the meta device (no memory, no weights) and imports each
library only when one of its names is asked for, so the table stays torch-free.

``load_catalogue_model(spec, weights_file)`` builds it with real weights: the library's own cache
(timm and open_clip: Hugging Face's; torchvision: torch hub's) or downloads when online; offline, a
local file given in the config (``weights: {NAME: FILE}``). A name whose weights cannot be had is one
``WeightsNotFoundError`` naming the file or cache folder to fill; never random weights.

The feature of a timm model is its pooled pre-logits output (``num_classes=0``); of a torchvision model,
the input of its last linear layer; of a CLIP tower, its image embedding, L2-normalised (recorded).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any

from research.backbones.spec import BackboneSpec
from research.errors import ConfigError, WeightsNotFoundError, did_you_mean

CATALOGUES = ("timm", "torchvision", "open_clip")
LIST_COMMAND = "python -m research.commands.backbones list"


def split_name(name: str) -> tuple[str, str, str]:
    """``timm/vit_base:augreg`` -> ``("timm", "vit_base", "augreg")``; the tag may be empty."""
    catalogue, _, rest = name.partition("/")
    model, _, tag = rest.partition(":")
    if catalogue not in CATALOGUES or not model:
        raise ConfigError(
            f"backbone {name!r}: a catalogue name is one of {[c + '/MODEL[:TAG]' for c in CATALOGUES]}"
            f"{did_you_mean(catalogue, CATALOGUES)}"
        )
    return catalogue, model, tag


def is_catalogue_name(name: str) -> bool:
    return name.partition("/")[0] in CATALOGUES and "/" in name


@functools.cache
def catalogue_spec(name: str) -> BackboneSpec:
    """The spec of a catalogue name (cached per process: resolving builds the model on the meta device)."""
    catalogue, model, tag = split_name(name)
    return {"timm": _timm_spec, "torchvision": _torchvision_spec, "open_clip": _open_clip_spec}[catalogue](
        name, model, tag
    )


def _unknown(what: str, name: str, choices: list[str]) -> ConfigError:
    hint = did_you_mean(name, choices)
    return ConfigError(f"unknown {what} {name!r}{hint}; {LIST_COMMAND} PATTERN lists the names")


# ------------------------------------------------------------------------------------------- timm


def _timm_spec(name: str, model: str, tag: str) -> BackboneSpec:
    import timm
    import torch

    if not timm.is_model(model):
        raise _unknown("timm model", model, timm.list_models())
    full = f"{model}.{tag}" if tag else model
    try:
        cfg = timm.get_pretrained_cfg(full)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{model}.*")]
        raise ConfigError(f"timm model {model!r} has no pretrained tag {tag!r}; its tags: {tags}")
    with torch.device("meta"):
        net = timm.create_model(full, pretrained=False, num_classes=0)
    data = timm.data.resolve_model_data_config(net)
    size = int(data["input_size"][-1])
    return BackboneSpec(
        name=name,
        weights=tag or str(cfg.tag or ""),
        weights_name=f"timm:{model}.{cfg.tag}" if cfg.tag else f"timm:{model}",
        weights_file=cfg.hf_hub_id or cfg.url or "",
        feature_dim=int(getattr(net, "head_hidden_size", None) or net.num_features),
        head="",
        mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
        image_size=size,
        library="timm",
        architecture=full,
        interpolation=str(data.get("interpolation", "bicubic")),
        crop_pct=float(data.get("crop_pct", 0.875)),
        catalogue="timm",
    )


def _timm_model(spec: BackboneSpec, weights_file: str | None) -> Any:
    import timm

    if weights_file:
        _check_file(spec, weights_file)
        return timm.create_model(
            spec.architecture, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": weights_file}
        )
    _reachable_or_cached(spec, _hf_cached(spec.weights_file))
    try:
        return timm.create_model(spec.architecture, pretrained=True, num_classes=0)
    except Exception as err:  # offline without a cache: huggingface_hub's LocalEntryNotFoundError and kin
        raise WeightsNotFoundError(_missing(spec, err)) from err


# ------------------------------------------------------------------------------------ torchvision


def _torchvision_spec(name: str, model: str, tag: str) -> BackboneSpec:
    import torch
    from torchvision import models

    names = models.list_models(module=models)  # the classification models
    if model not in names:
        raise _unknown("torchvision classification model", model, names)
    enum = models.get_model_weights(model)
    members = [m.name for m in enum]
    member_name = tag or enum.DEFAULT.name  # type: ignore[attr-defined]
    if member_name not in members:
        raise ConfigError(f"torchvision model {model!r} has no weights {tag!r}; its weights: {members}")
    member = enum[member_name]
    transform = member.transforms()
    with torch.device("meta"):
        net = models.get_model(model, weights=None)
    last = _last_linear(net)
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    return BackboneSpec(
        name=name,
        weights=member_name,
        weights_name=str(member),
        weights_file=Path(member.url).name,
        feature_dim=int(last[1].in_features),
        head=last[0],
        mean=tuple(float(v) for v in transform.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in transform.std),  # type: ignore[arg-type]
        image_size=crop,
        library="torchvision",
        architecture=model,
        interpolation=transform.interpolation.value,
        crop_pct=crop / resize,
        catalogue="torchvision",
    )


def _last_linear(net: Any) -> tuple[str, Any]:
    """The qualified name and module of the network's last ``nn.Linear``: its classifier."""
    from torch import nn

    linears = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(net).__name__} has no linear classifier to remove")
    return linears[-1]


def _without_head(net: Any, head: str) -> Any:
    """``net`` with the module at the dotted path ``head`` (its last linear layer) replaced by an identity."""
    from torch import nn

    parent, _, attr = head.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
    return net


def _torchvision_model(spec: BackboneSpec, weights_file: str | None) -> Any:
    import torch
    from torchvision import models

    member = models.get_model_weights(spec.architecture)[spec.weights]
    if weights_file:
        _check_file(spec, weights_file)
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    else:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file
        _reachable_or_cached(spec, cached if cached.is_file() else None, host="download.pytorch.org")
        try:
            state = member.get_state_dict(progress=False, check_hash=True)
        except Exception as err:
            raise WeightsNotFoundError(_missing(spec, err)) from err
    net = models.get_model(spec.architecture, weights=None)
    net.load_state_dict(state)
    return _without_head(net, spec.head)


# ------------------------------------------------------------------------------------------ open_clip


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ConfigError("open_clip/ backbones need the clip extra: pip install -e '.[clip]'") from None
    return open_clip


def _open_clip_spec(name: str, model: str, tag: str) -> BackboneSpec:
    open_clip = _open_clip()
    if model not in open_clip.list_models():
        raise _unknown("open_clip architecture", model, open_clip.list_models())
    if not tag:
        tags = [t for m, t in open_clip.list_pretrained() if m == model]
        raise ConfigError(f"backbone {name!r} needs its weights: open_clip/{model}:TAG, one of {tags} (or a name)")
    config = open_clip.get_model_config(model)
    pretrained = open_clip.pretrained.get_pretrained_cfg(model, tag) or {}
    mean = pretrained.get("mean", open_clip.OPENAI_DATASET_MEAN)
    std = pretrained.get("std", open_clip.OPENAI_DATASET_STD)
    size = config["vision_cfg"]["image_size"]
    return BackboneSpec(
        name=name,
        weights=tag,
        weights_name=f"open_clip:{model}:{tag}",
        weights_file=str(pretrained.get("hf_hub") or pretrained.get("url") or tag).rstrip("/"),
        feature_dim=int(config["embed_dim"]),
        head="",
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
        image_size=int(size if isinstance(size, int) else size[0]),
        library="open_clip",
        architecture=model,
        interpolation=str(pretrained.get("interpolation", "bicubic")),
        crop_pct=1.0,  # CLIP's eval transform: shorter side to the size, then the centre crop of that size
        catalogue="open_clip",
        l2_normalized=True,
    )


class ClipImageTower:
    """The image tower of an open_clip model as a backbone: images -> L2-normalised embeddings."""

    @staticmethod
    def build(spec: BackboneSpec, weights_file: str | None) -> Any:
        import torch.nn.functional as F
        from torch import nn

        open_clip = _open_clip()
        source = weights_file or spec.weights
        if weights_file:
            _check_file(spec, weights_file)
        try:
            model = open_clip.create_model(spec.architecture, pretrained=source, require_pretrained=True)
        except Exception as err:
            raise WeightsNotFoundError(_missing(spec, err)) from err

        class Tower(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.visual = model.visual

            def forward(self, x: Any) -> Any:
                return F.normalize(self.visual(x), dim=-1)

        return Tower()


# ---------------------------------------------------------------------------------------- listing


def matching_names(pattern: str, limit: int = 200) -> list[str]:
    """Catalogue names matching ``CATALOGUE/GLOB`` (``timm/vit_*dinov2*``, ``torchvision/resnet*``), each
    with its weights tag: what ``backbone:`` accepts."""
    import fnmatch

    catalogue, _, glob = pattern.partition("/")
    glob = glob or "*"
    if catalogue == "timm":
        import timm

        names = [f"timm/{m}:{t}" for m, _, t in (n.partition(".") for n in timm.list_pretrained(glob))]
    elif catalogue == "torchvision":
        from torchvision import models

        found = fnmatch.filter(models.list_models(module=models), glob)
        names = [f"torchvision/{m}:{w.name}" for m in found for w in models.get_model_weights(m)]
    elif catalogue == "open_clip":
        names = [f"open_clip/{m}:{t}" for m, t in _open_clip().list_pretrained() if fnmatch.fnmatch(m, glob)]
    else:
        raise ConfigError(f"pattern {pattern!r}: start it with one of {[c + '/' for c in CATALOGUES]}")
    return names[:limit]


def cached(spec: BackboneSpec) -> bool:
    """Whether a catalogue spec's weights load without the network (its library's cache holds them)."""
    if spec.catalogue == "torchvision":
        import torch

        return (Path(torch.hub.get_dir()) / "checkpoints" / spec.weights_file).is_file()
    return _hf_cached(spec.weights_file.rstrip("/")) is not None


# ---------------------------------------------------------------------------------------- weights


def load_catalogue_model(spec: BackboneSpec, weights_file: str | None = None, pretrained: bool = True) -> Any:
    """The network of a catalogue spec with its real weights, head removed (not yet frozen);
    ``pretrained=False`` is the explicit opt-in to untrained weights (timing, tests)."""
    if not pretrained:
        return _untrained(spec)
    if spec.catalogue == "timm":
        return _timm_model(spec, weights_file)
    if spec.catalogue == "torchvision":
        return _torchvision_model(spec, weights_file)
    return ClipImageTower.build(spec, weights_file)


def _untrained(spec: BackboneSpec) -> Any:
    if spec.catalogue == "timm":
        import timm

        return timm.create_model(spec.architecture, pretrained=False, num_classes=0)
    if spec.catalogue == "torchvision":
        from torchvision import models

        return _without_head(models.get_model(spec.architecture, weights=None), spec.head)
    raise WeightsNotFoundError(f"{spec.name}: random weights are not offered for open_clip towers")


def _check_file(spec: BackboneSpec, weights_file: str) -> None:
    if not Path(weights_file).is_file():
        raise WeightsNotFoundError(f"weights file for backbone {spec.name!r} not found: {weights_file}")


def _hf_cached(repo: str) -> Path | None:
    """The Hugging Face cache folder of ``repo`` when it holds a snapshot."""
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots"
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _reachable_or_cached(spec: BackboneSpec, cached: Path | None, host: str = "huggingface.co") -> None:
    """Offline and not cached: say so at once (the hub clients retry for a minute before they fail)."""
    if cached is not None:
        return
    offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
    if not offline:
        try:
            socket.getaddrinfo(host, 443)
            return
        except OSError:
            offline = True
    raise WeightsNotFoundError(_missing(spec, OSError(f"{host} cannot be reached and nothing is cached")))


def _missing(spec: BackboneSpec, cause: Exception) -> str:
    if spec.catalogue == "torchvision":
        import torch

        where = f"the file {spec.weights_file} in {Path(torch.hub.get_dir()) / 'checkpoints'}"
    else:
        from huggingface_hub.constants import HF_HUB_CACHE

        where = f"{spec.weights_file} in the Hugging Face cache {HF_HUB_CACHE}"
    return (
        f"pretrained weights of backbone {spec.name!r} are not available: place {where}, or give a local file "
        f"in the config (weights: {{{spec.name}: FILE}}); {LIST_COMMAND} shows what loads offline "
        f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})"
    )
