"""Temporal models behind one registry and one contract.

Every model is built as ``create_model(name, feature_dim=D, num_classes=C,
hidden_size=..., num_layers=..., num_heads=..., dropout=..., classifier_dropout=...,
**extras)`` and maps ``(features [B, T, D], num_frames [B]) -> logits [B, C]``,
ignoring the padding after ``num_frames``. ``model.config`` is what a checkpoint
stores to rebuild it.

    from research.models import create_model, list_models
    model = create_model("transformer", feature_dim=1280, num_classes=4, hidden_size=256)

Add a family: a module here with a class decorated by ``@register_model("name")``,
imported at the bottom of this file. Tests are parametrised over ``list_models()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

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
        raise ValueError(f"unknown model {name!r}; registered: {list_models()}")
    try:
        model = _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"model {name!r} does not accept these arguments: {err}") from err
    model.config = {"name": name, "kwargs": dict(kwargs)}  # type: ignore[assignment]
    return model


def attention_width(name: str, hidden_size: int) -> int | None:
    """Width that ``num_heads`` must divide, for models with attention (None: heads unused)."""
    per_hidden = getattr(_REGISTRY[name], "attention_width_per_hidden", None)
    return None if per_hidden is None else per_hidden * hidden_size


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Model families register themselves on import.
from research.models import mean_pool, netvlad, recurrent, transformer  # noqa: E402, F401
