"""The one FeatureSettings object: made once, recorded once, read back once; one decode -> CNN -> scales path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from research.backbones.loading import create_backbone
from research.backbones.table import get_spec, list_backbones
from research.data.inputs import file_entry
from research.features.compat import feature_differences
from research.features.frames import entry_features
from research.features.hdf5 import read_attrs
from research.features.settings import FeatureSettings, kind_of
from research.features.writing import write_features

from .conftest import ROOT, tiny_extract_config


def test_settings_round_trip_through_their_record(tmp_path: Path) -> None:
    cfg = tiny_extract_config(tmp_path, tmp_path, sampling_per_subcategory={"b": "dense", "a": "center"})
    settings = FeatureSettings.from_config(cfg)
    for kind in ("single", "multi"):
        record = settings.record(kind) | {"feature_dim": settings.feature_dim}
        back = FeatureSettings.from_record(record)
        assert kind_of(record) == kind
        assert back.record(kind) == settings.record(kind)
    assert FeatureSettings.from_record(settings.record("multi") | {"feature_dim": 1280}) == settings
    assert settings.sampling_for("b") == "dense" and settings.sampling_for("zzz") == "uniform"
    assert settings.sequence_length("single") == 8 and settings.sequence_length("multi") == 9
    assert settings.sequence_length("multi", 64) == 73  # seed 000: 64, 54 and 73 frames


def test_an_older_file_reads_back_with_the_seed_spellings(tmp_path: Path) -> None:
    """Before this version: clip_seconds -1 for 'whole video', no normalization; a real HDF5 file, read back."""
    old = {
        "backbone": "mobilenet_v2",
        "weights": "MobileNet_V2_Weights.IMAGENET1K_V1",
        "frames_per_video": 24,
        "image_size": 160,
        "clip_seconds": -1.0,
        "sampling": "uniform",
        "sampling_per_subcategory": "{}",
        "multi_scale": True,
        "scales": "[1.0, 0.85, 1.15]",
    }
    path = write_features(tmp_path / "old.h5", np.zeros((2, 32, 1280), np.float32), [0, 1], old)
    attrs = read_attrs(path)
    settings = FeatureSettings.from_record(attrs)
    assert settings.clip_seconds is None and settings.frames == 24 and settings.scales == (1.0, 0.85, 1.15)
    assert settings.parts[0].mean == get_spec("mobilenet_v2").mean and kind_of(attrs) == "multi"
    new = settings.record("multi") | {"feature_dim": 1280}
    assert feature_differences(attrs, new) == {}  # the compatibility rule sees the same settings
    other = new | {"normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}}  # e.g. TensorFlow-style inputs
    assert set(feature_differences(attrs, other)) == {"normalization"}  # never taken for the old file


def test_predict_path_equals_the_feature_file_row(tiny_features: Path, tiny_videos: Path) -> None:
    """``--predict`` decodes, runs the CNN and takes scales through extraction's own path: same numbers."""
    backbone = create_backbone("mobilenet_v2")
    for kind, name in (("single", "test_features.h5"), ("multi", "test_features_multiscale.h5")):
        attrs = read_attrs(tiny_features / name)
        settings = FeatureSettings.from_record(attrs)
        assert kind_of(attrs) == kind
        with h5py.File(tiny_features / name) as f:
            rows = {p.decode(): (f["features"][i, : f["num_frames"][i]]) for i, p in enumerate(f["paths"][:])}
        entries = [file_entry(tiny_videos / rel) for rel in sorted(rows)]
        got = {
            item["i"]: feats[kind]
            for item, feats in entry_features(entries, settings, [kind], backbone, torch.device("cpu"))
        }
        assert len(got) == len(rows) >= 4
        for i, rel in enumerate(sorted(rows)):
            torch.testing.assert_close(got[i], torch.from_numpy(rows[rel]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in list_backbones() if get_spec(n).library == "torchvision"])
def test_the_backbone_table_names_torchvision_weights(name: str) -> None:
    from torchvision import models

    spec = get_spec(name)
    member = models.get_model_weights(name)[spec.weights]
    assert spec.weights_name == str(member) and spec.weights_file == Path(member.url).name


def test_tta_views_are_the_configs_modes() -> None:
    from research.config import TTA_DEFAULT_MODES
    from research.engine.tta import VIEWS

    assert tuple(VIEWS) == TTA_DEFAULT_MODES


@pytest.mark.parametrize("script", ["extract.py", "train.py", "evaluate.py"])
def test_help_and_config_errors_import_no_torch(script: str) -> None:
    """The parser, --help and a one-line config error answer without importing torch, torchvision or mlflow."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, *sys.argv[1:]]\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / script)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'mlflow', 'optuna') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'EXIT', code)\n"
    )
    for args, code in ((["--help"], 0), (["no_such_key=1"], 2)):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT)
        assert f"HEAVY [] EXIT {code}" in out.stdout, out.stdout + out.stderr
