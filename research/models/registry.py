"""The model registry: ``register_model`` / ``create_model`` / ``list_models`` (as timm's ``_registry``).

A module of its own so that model families import it, and ``research.models``
imports the families, without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from research.errors import ConfigError, did_you_mean

_REGISTRY: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``model.config`` records how, for checkpoints."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}{did_you_mean(name, _REGISTRY)}; registered: {list_models()}")
    try:
        model = _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise ConfigError(f"model {name!r} does not accept these arguments: {err}") from err
    model.config = {"name": name, "kwargs": dict(kwargs)}  # type: ignore[assignment]
    return model


def attention_width(name: str, hidden_size: int) -> int | None:
    """Width that ``num_heads`` must divide, for models with attention (None: heads unused)."""
    per_hidden = getattr(_REGISTRY[name], "attention_width_per_hidden", None)
    return None if per_hidden is None else per_hidden * hidden_size


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
