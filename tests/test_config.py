from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from research.config import (
    CVConfig,
    EvalConfig,
    ExtractConfig,
    SearchConfig,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    load_config,
    read_yaml,
    to_flat_dict,
    to_yaml,
)
from research.errors import ConfigError
from research.models import check_model_args, model_arguments, resolve_model_args

from .conftest import ROOT

BASELINE = ROOT / "experiments" / "baseline.yaml"
STAGES = {"extract": ExtractConfig, "train": TrainConfig}
EVERY_STAGE = {
    "extract": ExtractConfig,
    "train": TrainConfig,
    "evaluate": EvalConfig,
    "search": SearchConfig,
    "cv": CVConfig,
}


def parse(cls: type, section: str, argv: list[str]):
    parser = add_config_arguments(argparse.ArgumentParser(), cls)
    return config_from_args(cls, section, parser.parse_args(argv))


def test_baseline_records_the_seed_values() -> None:
    ext = load_config(ExtractConfig, "extract", BASELINE)
    assert (ext.backbone, ext.frames, ext.image_size, ext.clip_seconds) == ("efficientnet_v2_s", 64, 256, 10.0)
    assert ext.scales == [1.0, 0.85, 1.15]
    tr = load_config(TrainConfig, "train", BASELINE)
    seed = tr.model_args["super_enhanced"]
    assert (tr.model, seed["hidden_size"], seed["num_layers"], seed["num_heads"]) == ("super_enhanced", 768, 4, 12)
    assert (seed["dropout"], seed["classifier_dropout"], tr.multi_scale) == (0.2, 0.4, True)
    assert seed["classifier_dims"] == [768, 512, 256] and set(tr.model_args) == {"super_enhanced"}
    # the constructor's defaults are the seed's values too: a config without model_args builds the baseline
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in model_arguments("super_enhanced").items()} == {
        **seed,
        "lstm_dropout": None,
    }


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_config_builds(path: Path) -> None:
    from research.config import CVConfig, EvalConfig, LaunchConfig, SearchConfig

    stages = {"extract": ExtractConfig, "train": TrainConfig, "evaluate": EvalConfig, "search": SearchConfig}
    stages |= {"cv": CVConfig, "launch": LaunchConfig}
    sections = read_yaml(path)
    assert sections, f"{path.name} is empty"
    for section in sections:
        cfg = load_config(stages[section], section, path)
        for family, args in getattr(cfg, "model_args", {}).items():  # every entry names a family and its arguments
            resolve_model_args(family, args)
    first = path.read_text().splitlines()[0]
    assert first.startswith("#"), f"{path.name} must start with a comment naming the command that runs it"


def test_unknown_yaml_key_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  hiden_size: 12\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['hiden_size'\].*valid keys"):
        load_config(TrainConfig, "train", bad)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trian:\n  seed: 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        read_yaml(bad)


def test_cli_beats_yaml_beats_defaults() -> None:
    assert TrainConfig().model_args == {} and model_arguments("super_enhanced")["hidden_size"] == 768
    demo = ROOT / "experiments" / "demo.yaml"
    yaml_sized = load_config(TrainConfig, "train", demo).model_args["super_enhanced"]
    assert yaml_sized["hidden_size"] == 128  # YAML beats default
    argv = ["--config", str(demo), "--model-args", "{super_enhanced: {hidden_size: 64}}", "lr=0.01", "--no-multi-scale"]
    cfg = parse(TrainConfig, "train", argv)
    merged = load_config(TrainConfig, "train", demo).model_args
    merged["super_enhanced"]["hidden_size"] = 64  # the CLI's mapping merges key by key, as `base:` does
    assert (cfg.model_args, cfg.lr, cfg.multi_scale) == (merged, 0.01, False)  # CLI
    assert cfg.batch_size == 16  # untouched YAML value survives
    assert "grad_clip" not in demo.read_text() and cfg.grad_clip == 1.0  # inherited through `base:`


def test_a_delta_config_changes_one_model_argument(tmp_path: Path) -> None:
    """``base:`` merges mappings key by key: a delta names only what it changes."""
    (tmp_path / "wide.yaml").write_text(
        f"base: {ROOT / 'experiments' / 'demo.yaml'}\ntrain:\n  model_args:\n    super_enhanced: {{hidden_size: 256}}\n"
    )
    wide = load_config(TrainConfig, "train", tmp_path / "wide.yaml").model_args
    demo = load_config(TrainConfig, "train", ROOT / "experiments" / "demo.yaml").model_args
    assert wide["super_enhanced"] == demo["super_enhanced"] | {"hidden_size": 256}
    assert wide["transformer"] == demo["transformer"]


def test_unknown_cli_key_and_bad_type_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse(TrainConfig, "train", ["hidden=3"])
    with pytest.raises(ConfigError, match="epochs: expected an integer"):
        parse(TrainConfig, "train", ["epochs=big"])
    with pytest.raises(ConfigError, match=r"model_args maps each model family to its options.*'super_enhanced': 'int'"):
        parse(TrainConfig, "train", ["model_args={super_enhanced: 3}"])
    with pytest.raises(ConfigError, match="sampling"):
        parse(ExtractConfig, "extract", ["sampling=random"])


def test_flat_dict_and_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, "train", BASELINE)
    flat = to_flat_dict(cfg)
    assert flat["model_args.super_enhanced.hidden_size"] == 768
    assert flat["model_args.super_enhanced.classifier_dims"] == "[768, 512, 256]"
    assert all(not isinstance(v, (dict, list)) for v in flat.values())
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg, "train"))
    assert load_config(TrainConfig, "train", path) == cfg


def test_list_and_optional_flags_parse() -> None:
    cfg = parse(ExtractConfig, "extract", ["--splits", "test", "val", "--scales", "1.0", "0.5", "--clip-seconds", "4"])
    assert (cfg.splits, cfg.scales, cfg.clip_seconds) == (["test", "val"], [1.0, 0.5], 4.0)
    assert parse(ExtractConfig, "extract", ["clip_seconds=null"]).clip_seconds is None


def test_a_float_written_without_a_dot_is_a_number() -> None:
    """YAML 1.1 reads ``5e-4`` as a string; ``lr=5e-4`` on the command line must still mean 0.0005."""
    assert parse(TrainConfig, "train", ["lr=5e-4"]).lr == 5e-4
    with pytest.raises(ConfigError, match="lr: expected a number"):
        parse(TrainConfig, "train", ["lr=fast"])


# --------------------------------------------------- command-line mappings merge like base:

# For every mapping field of every stage: a value in a base file, and a delta that changes one key of it.
MAPPING_SAMPLES = {
    ("extract", "sampling_per_subcategory"): ({"topdown": "center", "static": "dense"}, {"static": "uniform"}),
    ("extract", "columns"): ({"label": "class", "group": "source"}, {"group": "origin"}),
    ("evaluate", "temperatures"): ({"members": 2.0, "probe": 3.0}, {"probe": 4.0}),
    ("evaluate", "familiarity_bands"): (
        {"applies_to": "members", "edges": [0.5], "temperatures": [2.0, 1.0]},
        {"applies_to": "probe"},
    ),
    ("extract", "weights"): ({"timm/a:x": "a.pth", "timm/b": "b.pth"}, {"timm/b": "c.pth"}),
    ("train", "model_args"): (
        {"super_enhanced": {"hidden_size": 128, "num_heads": 4}, "gru": {"hidden_size": 64}},
        {"super_enhanced": {"hidden_size": 256}},
    ),
    ("search", "space"): (
        {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "epochs": {"type": "int", "low": 1, "high": 3},
        },
        {"lr": {"high": 1e-3}},
    ),
}


def _mapping_fields() -> set[tuple[str, str]]:
    import dataclasses
    import typing

    found = set()
    for section, cls in EVERY_STAGE.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "dict" in str(hints[f.name]):
                found.add((section, f.name))
    return found


def test_every_mapping_field_has_a_merge_sample() -> None:
    """A new mapping field in any stage config must join the field-by-field test below."""
    assert _mapping_fields() == set(MAPPING_SAMPLES)


def _dotted(prefix: str, delta: dict) -> list[str]:
    out = []
    for key, value in delta.items():
        name = f"{prefix}.{key}"
        out += _dotted(name, value) if isinstance(value, dict) else [f"{name}={value}"]
    return out


@pytest.mark.parametrize(("section", "field"), sorted(MAPPING_SAMPLES))
def test_a_command_line_mapping_merges_over_the_yaml_exactly_like_base(
    tmp_path: Path, section: str, field: str
) -> None:
    """The same delta given by a ``base:`` file, by a ``--flag`` mapping and by dotted keys: the same config."""
    import yaml

    cls = EVERY_STAGE[section]
    value, delta = MAPPING_SAMPLES[section, field]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({section: {field: value}}))
    (tmp_path / "delta.yaml").write_text(yaml.safe_dump({"base": "base.yaml", section: {field: delta}}))
    by_base = getattr(load_config(cls, section, tmp_path / "delta.yaml"), field)
    flag = "--" + field.replace("_", "-")
    by_flag = getattr(
        parse(cls, section, ["--config", str(tmp_path / "base.yaml"), flag, yaml.safe_dump(delta)]), field
    )
    by_dots = getattr(parse(cls, section, ["--config", str(tmp_path / "base.yaml"), *_dotted(field, delta)]), field)
    assert by_base == by_flag == by_dots != value
    for key, before in value.items():  # what the delta does not name is the YAML's, one level down too
        if key not in delta:
            assert by_flag[key] == before
        elif isinstance(before, dict):
            assert by_flag[key] == {**before, **delta[key]}


def test_dotted_keys_drops_and_typos_on_the_command_line() -> None:
    demo = str(ROOT / "experiments" / "demo.yaml")
    yaml_args = load_config(TrainConfig, "train", demo).model_args
    cfg = parse(TrainConfig, "train", ["--config", demo, "model_args.super_enhanced.hidden_size=256"])
    assert cfg.model_args == {**yaml_args, "super_enhanced": {**yaml_args["super_enhanced"], "hidden_size": 256}}
    # ~key drops a key on purpose (here back to the constructor's default); in the order typed
    cfg = parse(TrainConfig, "train", ["--config", demo, "~model_args.super_enhanced.num_heads"])
    assert "num_heads" not in cfg.model_args["super_enhanced"] and cfg.model_args["gru"] == yaml_args["gru"]
    cfg = parse(TrainConfig, "train", ["--config", demo, "~model_args.super_enhanced", "model_args.super_enhanced={}"])
    assert cfg.model_args["super_enhanced"] == {}  # dropped, then set anew: the whole mapping replaced
    assert load_config(TrainConfig, "train", demo).lr != TrainConfig().lr
    assert parse(TrainConfig, "train", ["--config", demo, "~lr"]).lr == TrainConfig().lr  # a whole field: its default
    with pytest.raises(ConfigError, match=r"~model_args.super_enhanced.num_headz: nothing to drop.*'num_heads'"):
        parse(TrainConfig, "train", ["--config", demo, "~model_args.super_enhanced.num_headz"])
    with pytest.raises(ConfigError, match=r"unknown key 'modl_args'.*did you mean 'model_args'"):
        parse(TrainConfig, "train", ["modl_args.super_enhanced.hidden_size=3"])
    with pytest.raises(ConfigError, match=r"'lr\.x' reaches into 'lr', which is not a mapping"):
        parse(TrainConfig, "train", ["lr.x=3"])
    # a typo in a nested key: refused with the near miss where the registry is (train(), a study), before any work
    typo = parse(TrainConfig, "train", ["--config", demo, "model_args.super_enhanced.hiden_size=256"])
    with pytest.raises(ConfigError, match=r"takes no argument\(s\) \['hiden_size'\] \(did you mean 'hidden_size'\?\)"):
        check_model_args(typo.model, typo.model_args)
    family = parse(TrainConfig, "train", ["model_args.super_enhancd.hidden_size=256"])
    with pytest.raises(ConfigError, match=r"unknown model 'super_enhancd' \(did you mean 'super_enhanced'\?\)"):
        check_model_args(family.model, family.model_args)


def test_model_arguments_that_cannot_build_are_one_line_naming_them() -> None:
    """The issue's case: hidden_size 256 with the seed's 12 heads (2*256 = 512 is not divisible by 12)."""
    with pytest.raises(
        ConfigError,
        match=r"model 'super_enhanced' cannot be built from model_args.super_enhanced "
        r"\(hidden_size=256\): num_heads=12 must divide the attention width 2\*hidden_size=512",
    ):
        check_model_args("super_enhanced", {"super_enhanced": {"hidden_size": 256}})
    with pytest.raises(ConfigError, match=r"num_heads=3 must divide hidden_size=64"):
        check_model_args("transformer", {"transformer": {"hidden_size": 64, "num_heads": 3}})
    check_model_args("super_enhanced", {"super_enhanced": {"hidden_size": 256, "num_heads": 8}})
