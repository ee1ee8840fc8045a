"""A study's search space: TrainConfig fields (and ``model_args`` entries) -> Optuna distributions.

    search:
      space:
        model: {type: categorical, choices: [linear, mean_pool]}
        lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        model_args.linear.pooling: {type: categorical, choices: [mean, mean+std]}

A dotted name reaches into a dict field. Without a space, ``default_space`` searches
around the config. ``check_space`` refuses, before the first trial, names that are
not fields, (model, hidden size, heads) combinations that cannot be built, and a
space that does not contain the config's own values (trial 0 is the baseline).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any

import optuna

from research.config import SearchConfig, TrainConfig
from research.errors import ConfigError
from research.models import attention_width


def suggest(trial: optuna.Trial, space: dict[str, dict]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            values[name] = trial.suggest_int(
                name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False))
            )
        else:
            values[name] = trial.suggest_float(
                name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False))
            )
    return values


def default_space(base: TrainConfig) -> dict[str, dict]:
    """Hidden size, layers, heads and dropout around the config: the config's own values lie inside."""
    if base.model == "linear":  # a probe has no width or depth: its knobs are regularisation and step size
        return {
            "dropout": {"type": "float", "low": 0.0, "high": max(0.5, base.dropout)},
            "weight_decay": {"type": "float", "low": 1e-4, "high": max(1.0, base.weight_decay), "log": True},
            "lr": {"type": "float", "low": base.lr / 10, "high": base.lr * 10, "log": True},
        }
    h, k = base.hidden_size, base.num_heads
    hidden = sorted({max(8, h // 2), h, 2 * h})
    space: dict[str, dict] = {
        "hidden_size": {"type": "categorical", "choices": hidden},
        "num_layers": {"type": "int", "low": max(1, base.num_layers - 1), "high": base.num_layers + 1},
        "dropout": {"type": "float", "low": 0.0, "high": max(0.5, base.dropout)},
    }
    if attention_width(base.model, h) is not None:
        widths = [attention_width(base.model, x) for x in hidden]
        hidden = [x for x, w in zip(hidden, widths, strict=True) if w % k == 0]  # the baseline's heads must fit
        heads = sorted(
            {n for n in (max(1, k // 2), k, 2 * k) if all(attention_width(base.model, x) % n == 0 for x in hidden)}
        )
        space["hidden_size"]["choices"] = hidden
        space["num_heads"] = {"type": "categorical", "choices": heads}
    return space


def resolve_space(cfg: SearchConfig, base: TrainConfig) -> dict[str, dict]:
    """The configured space, or the default one when none is given; an empty one is an error."""
    if cfg.space is None:
        return default_space(base)
    if not cfg.space:
        raise ConfigError(
            "search.space is empty: a study with nothing to search would only repeat the baseline. "
            "Give {param: {type, low, high | choices}} or leave search.space out for the default space."
        )
    return cfg.space


def _grid(spec: dict) -> list[Any]:
    if spec["type"] == "categorical":
        return list(spec["choices"])
    if spec["type"] == "int":
        return list(range(int(spec["low"]), int(spec["high"]) + 1))
    return [float(spec["low"]), float(spec["high"])]


def get_param(cfg: TrainConfig, name: str) -> Any:
    """A TrainConfig value by name; ``model_args.linear.pooling`` reaches into the nested dict."""
    field, *keys = name.split(".")
    value = getattr(cfg, field)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def with_params(cfg: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``cfg`` with the trial's parameters set (dotted names write into nested dicts, copied)."""
    flat = {k: v for k, v in params.items() if "." not in k}
    cfg = dataclasses.replace(cfg, **flat)
    for name, value in params.items():
        if "." in name:
            field, *keys, last = name.split(".")
            root = copy.deepcopy(getattr(cfg, field))
            node = root
            for key in keys:
                node = node.setdefault(key, {})
            node[last] = value
            cfg = dataclasses.replace(cfg, **{field: root})
    return cfg


def check_space(space: dict[str, dict], base: TrainConfig) -> None:
    """Every field exists, every (model, hidden, heads) combination is valid, and the baseline lies inside."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted({name.split(".")[0] for name in space} - fields)
    if unknown:
        raise ConfigError(f"search space names unknown TrainConfig field(s) {unknown}")
    nested = sorted(name for name in space if "." in name and not isinstance(getattr(base, name.split(".")[0]), dict))
    if nested:
        raise ConfigError(f"search space {nested}: only dict fields (model_args) take dotted names")
    hidden = _grid(space["hidden_size"]) if "hidden_size" in space else [base.hidden_size]
    heads = _grid(space["num_heads"]) if "num_heads" in space else [base.num_heads]
    models = _grid(space["model"]) if "model" in space else [base.model]
    bad = [(m, h, k) for m, h, k in itertools.product(models, hidden, heads) if (attention_width(m, h) or k) % k]
    if bad:
        raise ConfigError(f"search space has (model, hidden_size, num_heads) triples that do not fit: {bad}")
    for name, spec in space.items():
        value = get_param(base, name)
        inside = (
            value in spec["choices"]
            if spec["type"] == "categorical"
            else value is not None and float(spec["low"]) <= value <= float(spec["high"])
        )
        if not inside:
            raise ConfigError(f"baseline {name}={value!r} lies outside the search space {spec}; widen the space")
