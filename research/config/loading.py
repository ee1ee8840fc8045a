"""How configs are read: YAML with ``base:`` deltas, command-line overrides, one parser for every entry point.

Precedence is CLI > YAML > dataclass default, and each layer merges over the last by one rule
(``deep_merge``): mappings key by key, anything else replaced. A YAML file has one section per
stage (``extract:``, ``train:``, ``evaluate:``, ``search:``, ``cv:``, and ``launch:`` for how their
jobs run) and may name a ``base:`` file it is a delta over, so experiment configs stay small. On
the command line, ``key=value`` sets a field, a dotted key reaches into a mapping field
(``model_args.super_enhanced.hidden_size=256``) and ``~key`` drops a key (in a YAML delta too).
Unknown keys, in YAML or on the command line, are rejected with the near miss and the list of valid
ones.

Every field becomes a ``--flag`` of the script that owns the config (one parser builder, reused by
every entry point), so ``train.py --seed 3`` and ``train.py seed=3`` mean the same. The stage
dataclasses themselves are ``research.config.stages``. Torch-free: ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from research.errors import ConfigError, UserError, did_you_mean, yaml_problem

C = TypeVar("C")

SECTIONS = ("extract", "train", "evaluate", "search", "cv", "launch")  # one per config of research.config.stages


def opt(
    default: Any,
    help: str,
    aliases: dict[str, Any] | None = None,
    why: str = "",
    choices: tuple[str, ...] | None = None,
    flags: tuple[str, ...] = (),
) -> Any:
    """A dataclass field: ``help`` says what it does (``--help`` adds its default and ``choices``), ``why``
    the reason for its default (read in the source and the docs, not in ``--help``).

    ``aliases`` maps extra flags to the constant they set, e.g. ``{"--single-scale": False}``;
    like every flag they beat the YAML only when typed. ``flags`` are other spellings of the field's flag.
    """
    metadata = {"help": help, "aliases": aliases or {}, "why": why, "choices": choices, "flags": flags}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------- YAML


def parse_yaml(text: str, source: str, error: type[UserError] = ConfigError) -> Any:
    """``yaml.safe_load``; a syntax error is one line naming ``source`` and the line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise error(yaml_problem(err, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file, following its ``base:`` chain (paths relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = parse_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    base = data.pop("base", None)
    unknown = set(data) - set(SECTIONS)
    if unknown:
        hint = did_you_mean(sorted(unknown)[0], SECTIONS) if len(unknown) == 1 else ""
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}{hint}; valid sections: {list(SECTIONS)}")
    if base is None:
        return data
    merged = read_yaml(path.parent / base)
    for section, values in data.items():
        merged[section] = deep_merge(merged.get(section, {}), values or {})
    return merged


def deep_merge(base: dict[str, Any], delta: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``delta`` over ``base``: mappings merge key by key, so a config can change one model argument.

    A key written ``~name`` drops ``name`` (the way to remove a key on purpose, in a ``base:`` delta and on the
    command line alike); dropping a key that is not there is a one-line error with the near miss.
    """
    out = dict(base)
    for key, value in delta.items():
        if isinstance(key, str) and key.startswith("~"):
            name = key[1:]
            if name not in out:
                hint = did_you_mean(name, [str(k) for k in out])
                raise ConfigError(f"~{where}{name}: nothing to drop, {name!r} is not set{hint}; set: {sorted(out)}")
            del out[name]
        elif isinstance(value, dict):
            out[key] = deep_merge(out[key] if isinstance(out.get(key), dict) else {}, value, f"{where}{key}.")
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------- coercion


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert where it is lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: cannot be None")
    if tp is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, key) for v in value]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (``lr=3e-4``, ``scales=[1.0,0.85]``).

    ``key`` may be dotted to reach into a mapping field (``model_args.super_enhanced.hidden_size=256``);
    ``~key`` (no value) drops that key, e.g. ``~model_args.super_enhanced.num_heads``.
    """
    stripped = text.strip()
    if stripped.startswith("~") and "=" not in stripped:
        return "~" + _flag_name(stripped[1:]), None
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (or ~key to drop a key)")
    key, raw = text.split("=", 1)
    return _flag_name(key), parse_yaml(raw, f"override {text!r}") if raw.strip() else ""


def _flag_name(key: str) -> str:
    """``--model-args.x-y`` -> ``model_args.x_y``: flags spell fields with dashes."""
    return key.strip().lstrip("-").replace("-", "_")


def overrides_as_delta(cls: type, overrides: dict[str, Any], source: str) -> dict[str, Any]:
    """Command-line overrides (plain, dotted or ``~`` keys, in the order given) as one nested delta.

    The delta then merges over the YAML with ``deep_merge``, the rule ``base:`` follows: a mapping given on
    the command line changes only the keys it names. Only mapping fields can be reached into.
    """
    types_ = _field_types(cls)
    delta: dict[str, Any] = {}
    for key, value in overrides.items():
        drop = key.startswith("~")
        path = key.removeprefix("~").split(".")
        field = path[0]
        if field not in types_:
            raise ConfigError(
                f"{source}: unknown key {field!r} for {cls.__name__}{did_you_mean(field, types_)}; "
                f"valid keys: {sorted(types_)}"
            )
        if len(path) > 1 and not _is_mapping(types_[field]):
            raise ConfigError(f"{source}: {key!r} reaches into {field!r}, which is not a mapping")
        if any(not part for part in path):
            raise ConfigError(f"{source}: {key!r} has an empty part between dots")
        *parents, leaf = path
        entry: dict[str, Any] = {("~" + leaf) if drop else leaf: value}
        for part in reversed(parents):
            entry = {part: entry}
        delta = _merge_delta(delta, entry)
    return delta


def _merge_delta(delta: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Two command-line deltas in order: nested mappings combine, a later value replaces an earlier one."""
    out = dict(delta)
    for key, value in entry.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not key.startswith("~"):
            out[key] = _merge_delta(out[key], value)
        else:
            out.pop(key, None)  # re-inserted last, so the order of the command line is kept
            out[key] = value
    return out


def _is_mapping(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(tp))
    return tp is dict or typing.get_origin(tp) is dict


def build_config(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
    """Instantiate ``cls`` from a mapping, rejecting unknown keys, checking types."""
    types_ = _field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        hint = did_you_mean(unknown[0], types_) if len(unknown) == 1 else ""
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}{hint}; valid keys: {sorted(types_)}")
    coerced = {k: _coerce(v, types_[k], f"{source}: {k}") for k, v in values.items()}
    cfg = cls(**coerced)
    check = getattr(cfg, "validate", None)
    if check is not None:
        check()
    return cfg


def load_config(
    cls: type[C],
    section: str,
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Defaults, then the YAML section, then overrides (the CLI), each merged over the last like ``base:``.

    ``overrides`` keys are field names, dotted paths into mapping fields, or ``~path`` to drop a key. A field
    set there drops the YAML's fields that describe it (``_drop_described``: ``--annotations`` and the
    config's ``columns``).
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        values = dict(read_yaml(config_path).get(section) or {})
    source = f"{config_path or 'defaults'} [{section}]"
    if overrides:
        where = f"{source} + command line"
        values = _drop_described(cls, values, overrides)
        delta = overrides_as_delta(cls, overrides, where)
        types_ = _field_types(cls)
        defaults = {f.name: _default(f) for f in dataclasses.fields(cls) if _is_mapping(types_[f.name])}
        for key in list(delta):  # dropping a whole field: back to its default
            if key.startswith("~"):
                delta.pop(key)
                values.pop(key[1:], None)
        mappings = {k: v for k, v in defaults.items() if k in delta and not isinstance(values.get(k), dict)}
        values = deep_merge({**values, **{k: v or {} for k, v in mappings.items()}}, delta, "")
        source = where
    return build_config(cls, values, source=source)


def _drop_described(cls: type, values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The YAML's values without the fields that describe a thing the command line replaced.

    ``cls.DESCRIBED_BY`` maps a field to the fields that describe what it names (``ExtractConfig``: an
    annotation file given on the command line replaces the config's collection, and the config's ``columns``
    describe the config's own file). The YAML's are dropped; the command line's own, if it gives them, apply.
    Every entry point (``extract.py``, the pipeline) reads its command line through here, so one CSV means
    the same on each.
    """
    described: dict[str, tuple[str, ...]] = getattr(cls, "DESCRIBED_BY", {})
    dropped = {name for field, names in described.items() if field in overrides for name in names}
    return {key: value for key, value in values.items() if key not in dropped}


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


# ------------------------------------------------------------------------ output


def to_flat_dict(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """A flat ``{dotted.key: scalar}`` view for MLflow params and tables."""
    out: dict[str, Any] = {}
    items = dataclasses.asdict(cfg).items() if dataclasses.is_dataclass(cfg) else cfg.items()
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(to_flat_dict(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def to_yaml(cfg: Any, section: str) -> str:
    """The resolved config as a YAML file that ``load_config`` reads back."""
    return yaml.safe_dump({section: dataclasses.asdict(cfg)}, sort_keys=False)


# --------------------------------------------------------------------------- CLI


# A command-line token that is an override: ``key=value`` (dotted keys too) or ``~key``. Split names, backbone
# names and paths never look like this, so such a token is never a list option's value.
OVERRIDE_TOKEN = re.compile(r"~?[A-Za-z_][\w.-]*=|~[A-Za-z_][\w.-]*$")
OVERRIDES_DEST = "overrides"  # the positional every parser that takes key=value settings gathers them in


class ConfigParser(argparse.ArgumentParser):
    """Every entry point's parser: ``key=value`` overrides anywhere among the flags (``lr=5e-4 --out-dir X
    epochs=2``), and never swallowed by an option that takes a list (``--splits val frames=3`` sets
    ``frames``). A parser without an ``overrides`` positional refuses such a token (exit 2) instead of
    reading it as a file or a name."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        rest, overrides = self._take_overrides(argv)
        if self._subparsers is not None:  # argparse cannot intermix with subcommands
            parsed = super().parse_args(rest, namespace)
        else:
            parsed = self.parse_intermixed_args(rest, namespace)
        if overrides:
            if not hasattr(parsed, OVERRIDES_DEST):
                self.error(f"{overrides[0]}: this command takes no key=value settings")
            setattr(parsed, OVERRIDES_DEST, overrides + list(getattr(parsed, OVERRIDES_DEST) or []))
        return parsed

    def _take_overrides(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """``argv`` without its override tokens, and those tokens in the order typed; a token right after an
        option that takes one value (``--tracking-uri postgresql://...?host=/tmp``) is that option's value."""
        single = {
            spelling
            for parser in self._all_parsers()
            for spelling, action in parser._option_string_actions.items()
            if action.nargs in (None, 1, "?")
        }
        rest: list[str] = []
        overrides: list[str] = []
        for i, token in enumerate(argv):
            if token == "--":
                return rest + argv[i:], overrides
            value_of_option = i > 0 and argv[i - 1] in single
            (overrides if OVERRIDE_TOKEN.match(token) and not value_of_option else rest).append(token)
        return rest, overrides

    def _all_parsers(self) -> list[argparse.ArgumentParser]:
        parsers: list[argparse.ArgumentParser] = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
        return parsers


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add ``--config``, one ``--flag`` per field of ``cls`` and ``key=value`` overrides."""
    parser.add_argument("--config", type=Path, default=None, help="YAML experiment config (see experiments/)")
    group = parser.add_argument_group(f"{cls.__name__} fields (CLI beats YAML beats defaults)")
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if flag in parser._option_string_actions:  # a script defined its own spelling
            continue
        tp = types_[f.name]
        help_ = f"{f.metadata.get('help', '')} [default: {_shown_default(f)}]".replace("%", "%%")  # argparse's %
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_}
        if f.metadata.get("choices"):
            kwargs["choices"] = list(f.metadata["choices"])
        inner = tp
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[X] -> X
            (inner, *rest) = [a for a in typing.get_args(tp) if a is not type(None)]
            inner = tp if rest else inner
        for alias, constant in f.metadata.get("aliases", {}).items():
            # SUPPRESS: an alias that was not typed leaves no value behind to beat the YAML with.
            group.add_argument(
                alias,
                dest=f.name,
                action="store_const",
                const=constant,
                default=argparse.SUPPRESS,
                help=f"same as {flag.removeprefix('--')}={constant}",
            )
        spellings = [flag, *f.metadata.get("flags", ())]
        if inner is bool:
            group.add_argument(*spellings, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(inner) in (list, tuple):
            (item_tp, *_) = typing.get_args(inner) or (str,)
            group.add_argument(*spellings, nargs="+", type=item_tp if item_tp in (int, float, str) else str, **kwargs)
        elif inner in (int, float, str):
            group.add_argument(*spellings, type=inner, **kwargs)
        else:  # dicts and other structures: YAML text (a UserError: argparse would hide a ValueError)
            parse = functools.partial(parse_yaml, source=flag, error=UserError)
            group.add_argument(*spellings, type=parse, **kwargs)
    parser.add_argument(
        OVERRIDES_DEST,
        nargs="*",
        default=[],
        help="key=value (lr=3e-4), a dotted key into a mapping (model_args.gru.hidden_size=64), ~key to drop one",
    )
    return parser


def _shown_default(f: dataclasses.Field) -> str:
    value = _default(f)
    if isinstance(value, (list, dict)) or value is None:
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_from_args(cls: type[C], section: str, args: argparse.Namespace) -> C:
    """Resolve a config from parsed arguments: YAML, then flags and key=value overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    for text in getattr(args, "overrides", []) or []:  # after the flags, in the order typed
        key, value = parse_override(text)
        overrides[key] = value
    return load_config(cls, section, getattr(args, "config", None), overrides)
