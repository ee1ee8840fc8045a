"""Shared fixtures: small real data made once per session (generated videos, features)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tests never write into the project's own mlruns/: a session-wide temporary store.
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 3 videos (2 train, 0 val, 1 test... see plan) of 1-3 s each, real H.264."""
    from research.data.synthetic import generate

    root = tmp_path_factory.mktemp("videos")
    generate(root, videos_per_class=5, seed=7, fractions=(0.6, 0.2, 0.2), min_seconds=1.0, max_seconds=2.0, workers=2, progress=False)
    return root


@pytest.fixture()
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
