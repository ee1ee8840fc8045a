"""The model registry: ``register_model`` / ``create_model`` / ``list_models`` (as timm's ``_registry``).

A module of its own so that model families import it, and ``research.models``
imports the families, without importing each other.

Every family's constructor takes the shared ``feature_dim, num_classes`` (the data
decides them; training passes them) and then only its own keyword arguments, each
with its default: the constructor's signature is the one place a family's
defaults live, and ``model_arguments(name)`` reads them from it. A config gives a
family's options under ``model_args.<family>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from research.errors import ConfigError, did_you_mean

_REGISTRY: dict[str, type[nn.Module]] = {}
SHARED_ARGUMENTS = ("feature_dim", "num_classes")
# What the pre-#21 contract passed to every family: older checkpoints carry them even for families that ignored them.
RETIRED_ARGUMENTS = ("hidden_size", "num_layers", "num_heads", "dropout", "classifier_dropout")


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        params = dict(inspect.signature(cls.__init__).parameters)
        params.pop("self", None)
        if list(params)[:2] != list(SHARED_ARGUMENTS):
            raise ValueError(f"model {name!r}: the constructor must start with {SHARED_ARGUMENTS}")
        no_default = [
            k for k, p in params.items() if k not in SHARED_ARGUMENTS and p.default is inspect.Parameter.empty
        ]
        if no_default:
            raise ValueError(f"model {name!r}: every own argument needs its default, {no_default} have none")
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _family(name: str) -> type[nn.Module]:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}{did_you_mean(name, _REGISTRY)}; registered: {list_models()}")
    return _REGISTRY[name]


def model_arguments(name: str) -> dict[str, Any]:
    """A family's own keyword arguments and their defaults (``feature_dim``/``num_classes`` excluded)."""
    params = inspect.signature(_family(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self" and k not in SHARED_ARGUMENTS}


def resolve_model_args(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` over the family's defaults; a key the family does not take is a one-line ConfigError."""
    accepted = model_arguments(name)
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        hint = did_you_mean(unknown[0], accepted) if len(unknown) == 1 else ""
        raise ConfigError(
            f"model {name!r} takes no argument(s) {unknown}{hint}; model_args.{name} accepts {sorted(accepted)}"
        )
    return {**accepted, **args}


def check_model_args(model: str, model_args: Mapping[str, Any]) -> None:
    """Every ``model_args`` entry names a family and only its arguments, and ``model`` builds from its entry.

    One ConfigError line before any work: a family name or argument with a typo (near miss suggested), or
    arguments the chosen family cannot be built with (heads that do not divide the width, ...). The build is a
    trial on the meta device: no memory, no time.
    """
    for family, args in model_args.items():
        _family(family)
        resolve_model_args(family, args)
    args = dict(model_args.get(model, {}))
    try:
        with torch.device("meta"):
            _family(model)(feature_dim=8, num_classes=2, **resolve_model_args(model, args))
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        given = ", ".join(f"{k}={v!r}" for k, v in args.items()) or "its defaults"
        raise ConfigError(f"model {model!r} cannot be built from model_args.{model} ({given}): {err}") from None


def drop_retired(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An older checkpoint's kwargs without the retired contract arguments its family does not take."""
    accepted = model_arguments(name)
    return {k: v for k, v in kwargs.items() if k in accepted or k not in RETIRED_ARGUMENTS}


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``model.config`` records how (every argument, defaults filled in), for checkpoints."""
    cls = _family(name)
    missing = [k for k in SHARED_ARGUMENTS if k not in kwargs]
    if missing:
        raise ConfigError(f"model {name!r} needs {missing}")
    shared = {k: kwargs.pop(k) for k in SHARED_ARGUMENTS}
    resolved = resolve_model_args(name, kwargs)
    model = cls(**shared, **resolved)
    model.config = {"name": name, "kwargs": {**shared, **resolved}}  # type: ignore[assignment]
    return model


def attention_width(name: str, hidden_size: int) -> int | None:
    """Width that ``num_heads`` must divide, for models with attention (None: heads unused)."""
    per_hidden = getattr(_REGISTRY[name], "attention_width_per_hidden", None)
    return None if per_hidden is None else per_hidden * hidden_size


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
