"""What a newcomer types first: --help everywhere, CLI > YAML > defaults for every field, one-line errors."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
import types
import typing
from pathlib import Path

import pytest
import torch
import yaml

from research.cli import make_parser
from research.config import EvalConfig, ExtractConfig, TrainConfig, config_from_args

from .conftest import ROOT, Finished, run_entry_point

SCRIPTS = ["train.py", "extract.py", "evaluate.py"]
MODULES = [
    "research.commands.pipeline",
    "research.commands.ablation",
    "studies.results",
    "research.commands.cv",
    "research.commands.features",
    "research.commands.backbones",
    "videogen",
]


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy re-running a module
@pytest.mark.parametrize("entry", SCRIPTS + MODULES)
def test_every_entry_point_answers_help(entry: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", [entry, "--help"])
    with pytest.raises(SystemExit) as exit_:
        if entry.endswith(".py"):
            runpy.run_path(str(ROOT / entry), run_name="__main__")
        else:
            runpy.run_module(entry, run_name="__main__", alter_sys=True)
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out


# ------------------------------------------------------------------ precedence

STAGES = [(ExtractConfig, "extract"), (TrainConfig, "train"), (EvalConfig, "evaluate")]
# Two valid non-default values for fields whose values are constrained.
CHOICES: dict[str, tuple] = {
    "backbone": ("resnet50", "mobilenet_v2+efficientnet_lite0"),
    "image_size": (128, 192),
    "mean": ([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]),
    "std": ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]),
    "sampling": ("center", "dense"),
    "annotation_format": ("csv", "kinetics"),
    "resize": ("crop", "squash"),
    "temperatures": ({"members": 2.0}, {"members": 1.5, "probe": 3.0}),
    "familiarity_bands": (
        {"applies_to": "members", "edges": [0.5], "temperatures": [2.0, 1.0]},
        {"applies_to": "probe", "edges": [], "temperatures": [1.5]},
    ),
    "lazy_reading": ("direct", "copy"),
    "sampling_per_subcategory": ({"slides": "center"}, {"slides": "dense"}),
    "outputs": (["single"], ["multi"]),
    "splits": (["train"], ["val", "test"]),
    "scales": ([1.0, 0.5], [1.0, 0.7]),
    "model": ("transformer", "gru"),
    "in_memory": ("yes", "no"),
    "keep": ("last", "best"),
    "aug_crop": (0.5, 0.6),
    "aug_frame_dropout": (0.2, 0.3),
    "tta_modes": (["identity"], ["reverse", "center"]),
    "device": ("cpu", "cuda"),
    "runtime": ("torch", "onnxruntime"),
    "shard": ("0/2", "1/2"),
    "model_args": ({"gru": {"hidden_size": 8}}, {"gru": {"hidden_size": 16}, "linear": {"dropout": 0.1}}),
}


def two_values(field: dataclasses.Field, tp: typing.Any) -> tuple:
    if field.name in CHOICES:
        return CHOICES[field.name]
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
    inner = next(a for a in typing.get_args(tp) if a is not type(None)) if optional else tp
    origin = typing.get_origin(inner)
    if inner is bool:
        return (not field.default, field.default)  # the CLI must win even when it types the default back
    if inner is int:
        base = field.default if isinstance(field.default, int) else 0
        return (base + 1, base + 2)
    if inner is float:
        base = field.default if isinstance(field.default, float) else 1.0
        return (base / 2, base / 4)
    if inner is str:
        return ("from-yaml", "from-cli")
    if origin is list:
        item = typing.get_args(inner)[0]
        return ([item(1)], [item(2), item(3)])
    return ({"key": 1}, {"key": 2})


def cli_args(name: str, value: typing.Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, list):
        return [flag, *map(str, value)]
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    return [flag, str(value)]


def resolve(cls: type, section: str, argv: list[str]):
    return config_from_args(cls, section, make_parser(None, cls).parse_args(argv))


@pytest.mark.parametrize(("cls", "section"), STAGES, ids=[s for _, s in STAGES])
def test_cli_beats_yaml_beats_defaults_for_every_field(cls: type, section: str, tmp_path: Path) -> None:
    hints = typing.get_type_hints(cls)
    default = cls()
    for field in dataclasses.fields(cls):
        from_yaml, from_cli = two_values(field, hints[field.name])
        config = tmp_path / f"{field.name}.yaml"
        config.write_text(yaml.safe_dump({section: {field.name: from_yaml}}))
        assert getattr(resolve(cls, section, []), field.name) == getattr(default, field.name), field.name
        assert getattr(resolve(cls, section, ["--config", str(config)]), field.name) == from_yaml, field.name
        argv = ["--config", str(config), *cli_args(field.name, from_cli)]
        assert getattr(resolve(cls, section, argv), field.name) == from_cli, field.name
        override = ["--config", str(config), f"{field.name}={json.dumps(from_cli)}"]
        assert getattr(resolve(cls, section, override), field.name) == from_cli, field.name


def test_negated_alias_single_scale_beats_the_yaml_only_when_typed() -> None:
    single, multi = (
        ROOT / "experiments" / "ablation_single_scale.yaml",
        ROOT / "experiments" / "ablation_multi_scale.yaml",
    )
    assert resolve(TrainConfig, "train", ["--config", str(single)]).multi_scale is False  # was True: the bug
    assert resolve(TrainConfig, "train", ["--config", str(multi)]).multi_scale is True
    assert resolve(TrainConfig, "train", ["--config", str(multi), "--single-scale"]).multi_scale is False
    assert resolve(TrainConfig, "train", ["--config", str(single), "--multi-scale"]).multi_scale is True


# ------------------------------------------------------------- one-line errors


def run(args: list[str]) -> Finished:
    """An entry point in this interpreter: the one-line error is run_cli's doing, not the process's."""
    return run_entry_point(args)


def assert_one_line_error(proc: Finished, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_backbone_model_and_key_are_one_line_with_a_suggestion(tmp_path: Path) -> None:
    assert_one_line_error(run(["extract.py", "--backbone", "resnet05"]), "unknown backbone 'resnet05'", "resnet50")
    assert_one_line_error(run(["train.py", "--model", "transfomer"]), "unknown model", "did you mean 'transformer'")
    assert_one_line_error(run(["train.py", "model_arg={}"]), "did you mean 'model_args'")


def test_an_out_dir_under_a_regular_file_is_one_line(tiny_videos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run(
        ["extract.py", "--data-dir", str(tiny_videos), "--out-dir", str(blocker / "features"), "--splits", "test"]
    )
    assert_one_line_error(proc, "cannot create the output folder", "regular file")


def test_a_checkpoint_that_weights_only_refuses_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "pickled.pt"
    torch.save({"model": Path("objects are not plain data")}, bad)
    assert_one_line_error(run(["evaluate.py", "--checkpoints", str(bad)]), "not a checkpoint this project wrote")


def test_predict_classifies_every_readable_video_and_reports_the_rest(
    tiny_features: Path, tiny_videos: Path, tmp_path: Path
) -> None:
    from research.engine.training import train

    from .test_training import tiny_train_config

    result = train(tiny_train_config(tiny_features, tmp_path / "runs", log_mlflow=False, epochs=1))
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    good = sorted((tiny_videos / "test").rglob("*.mp4"))[:2]
    args = ["--checkpoints", result["checkpoint"], "--predict", str(good[0]), str(broken), str(good[1])]
    proc = run(["evaluate.py", *args, "--out-dir", str(tmp_path / "out")])
    assert proc.returncode == 1, proc.stderr  # a failure shows in the exit code ...
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert f"error {broken}: cannot open" in " ".join(out.split())
    assert all(str(p) in out for p in good)  # ... but the readable videos are still classified
