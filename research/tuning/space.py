"""A study's search space: TrainConfig fields (and ``model_args`` entries) -> Optuna distributions.

    search:
      space:
        model: {type: categorical, choices: [linear, mean_pool]}
        lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        model_args.linear.pooling: {type: categorical, choices: [mean, mean+std]}
        model_args.mean_pool.hidden_size: {type: categorical, choices: [64, 128]}

A dotted name reaches into a dict field; ``model_args.<family>.<argument>`` names one
of a family's constructor arguments, whose value without a config entry is the
constructor's default. Without a space, ``default_space`` searches around the
config's model. ``check_space`` refuses, before the first trial, names that are not
fields or arguments, (model, hidden size, heads) combinations that cannot be built,
and a space that does not contain the config's own values (trial 0 is the baseline).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any

import optuna

from research.config import SearchConfig, TrainConfig
from research.errors import ConfigError, did_you_mean
from research.models import attention_width, list_models, model_arguments, resolve_model_args


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


def family_args(cfg: TrainConfig, model: str | None = None) -> dict[str, Any]:
    """What ``model`` (default: the config's) is built with: its ``model_args`` entry over its defaults."""
    model = model or cfg.model
    return resolve_model_args(model, cfg.model_args.get(model, {}))


def default_space(base: TrainConfig) -> dict[str, dict]:
    """Width, depth, heads and dropout of the config's model around its values: they lie inside."""
    args = family_args(base)

    def arg(name: str) -> str:
        return f"model_args.{base.model}.{name}"

    dropout = (
        {arg("dropout"): {"type": "float", "low": 0.0, "high": max(0.5, args["dropout"])}} if "dropout" in args else {}
    )
    if "hidden_size" not in args:  # e.g. a probe: no width or depth, its knobs are regularisation and step size
        return dropout | {
            "weight_decay": {"type": "float", "low": 1e-4, "high": max(1.0, base.weight_decay), "log": True},
            "lr": {"type": "float", "low": base.lr / 10, "high": base.lr * 10, "log": True},
        }
    h = args["hidden_size"]
    hidden = sorted({max(8, h // 2), h, 2 * h})
    space: dict[str, dict] = {arg("hidden_size"): {"type": "categorical", "choices": hidden}}
    if "num_layers" in args:
        layers = args["num_layers"]
        space[arg("num_layers")] = {"type": "int", "low": max(1, layers - 1), "high": layers + 1}
    space |= dropout
    if attention_width(base.model, h) is not None:
        k = args["num_heads"]
        widths = [attention_width(base.model, x) for x in hidden]
        hidden = [x for x, w in zip(hidden, widths, strict=True) if w % k == 0]  # the baseline's heads must fit
        heads = sorted(
            {n for n in (max(1, k // 2), k, 2 * k) if all(attention_width(base.model, x) % n == 0 for x in hidden)}
        )
        space[arg("hidden_size")]["choices"] = hidden
        space[arg("num_heads")] = {"type": "categorical", "choices": heads}
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
    """A TrainConfig value by name; ``model_args.linear.pooling`` reaches into the nested dict.

    ``model_args.<family>.<argument>`` without a config entry is the value that family is built
    with, its constructor's default.
    """
    field, *keys = name.split(".")
    if field == "model_args" and len(keys) == 2 and keys[0] in list_models():
        return family_args(cfg, keys[0]).get(keys[1])
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


def _model_arg_names(space: dict[str, dict]) -> None:
    """``model_args.<family>.<argument>``: a registered family and one of its arguments."""
    for name in space:
        field, *keys = name.split(".")
        if field != "model_args":
            continue
        if len(keys) != 2 or keys[0] not in list_models():
            hint = did_you_mean(keys[0], list_models()) if keys else ""
            raise ConfigError(f"search space {name!r}: expected model_args.<family>.<argument>{hint}")
        accepted = model_arguments(keys[0])
        if keys[1] not in accepted:
            raise ConfigError(
                f"search space {name!r}: model {keys[0]!r} takes no argument {keys[1]!r}"
                f"{did_you_mean(keys[1], accepted)}; it accepts {sorted(accepted)}"
            )


def check_space(space: dict[str, dict], base: TrainConfig) -> None:
    """Every field exists, every (model, hidden, heads) combination is valid, and the baseline lies inside."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted({name.split(".")[0] for name in space} - fields)
    if unknown:
        raise ConfigError(f"search space names unknown TrainConfig field(s) {unknown}")
    nested = sorted(name for name in space if "." in name and not isinstance(getattr(base, name.split(".")[0]), dict))
    if nested:
        raise ConfigError(f"search space {nested}: only dict fields (model_args) take dotted names")
    _model_arg_names(space)
    models = _grid(space["model"]) if "model" in space else [base.model]
    bad = []
    for m in models:
        args = family_args(base, m)
        hidden, heads = ([args.get(key)] for key in ("hidden_size", "num_heads"))
        if f"model_args.{m}.hidden_size" in space:
            hidden = _grid(space[f"model_args.{m}.hidden_size"])
        if f"model_args.{m}.num_heads" in space:
            heads = _grid(space[f"model_args.{m}.num_heads"])
        if hidden[0] is None or heads[0] is None or attention_width(m, hidden[0]) is None:
            continue  # no attention: nothing for heads to divide
        bad += [(m, h, k) for h, k in itertools.product(hidden, heads) if attention_width(m, h) % k]
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
