from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from research.config import (
    ConfigError,
    ExtractConfig,
    TrainConfig,
    add_config_arguments,
    config_from_args,
    load_config,
    read_yaml,
    to_flat_dict,
    to_yaml,
)
from research.models import model_arguments, resolve_model_args

from .conftest import ROOT

BASELINE = ROOT / "experiments" / "baseline.yaml"
STAGES = {"extract": ExtractConfig, "train": TrainConfig}


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
    from research.config import EvalConfig, SearchConfig
    from research.crossval import CVConfig

    stages = {"extract": ExtractConfig, "train": TrainConfig, "evaluate": EvalConfig, "search": SearchConfig}
    sections = read_yaml(path)
    assert sections, f"{path.name} is empty"
    for section in sections:
        cfg = load_config((stages | {"cv": CVConfig})[section], section, path)
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
    assert (cfg.model_args, cfg.lr, cfg.multi_scale) == ({"super_enhanced": {"hidden_size": 64}}, 0.01, False)  # CLI
    assert cfg.batch_size == 16  # untouched YAML value survives
    assert "grad_clip" not in demo.read_text() and cfg.grad_clip == 1.0  # inherited through `base:`


def test_a_delta_config_changes_one_model_argument(tmp_path: Path) -> None:
    """``base:`` merges mappings key by key: a delta names only what it changes (the CLI replaces whole values)."""
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
