"""The study's timing settings hold together: a worker that rides through a database outage beats again before
another worker takes its trial for dead (``storage_retry_s + heartbeat_s < stale_after_s``), from YAML and from
the command line; a refusal is one line and exit 2, before any storage is opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from research.config import SearchConfig, load_config
from research.errors import ConfigError

from .conftest import ROOT

RDB = "postgresql+psycopg://lab@db.invalid/optuna"  # never reached: the settings are refused first


def search_yaml(path: Path, storage: str | None, **timing: float) -> Path:
    lines = ["search:"] + [f"  {k}: {v}" for k, v in timing.items()]
    if storage is not None:
        lines.append(f"  storage: {storage}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_retry_and_a_beat_longer_than_the_stale_limit_are_refused_naming_the_three_values(tmp_path: Path) -> None:
    config = search_yaml(tmp_path / "s.yaml", RDB, storage_retry_s=90, heartbeat_s=30, stale_after_s=120)
    with pytest.raises(
        ConfigError, match=r"storage_retry_s \(90\) \+ search\.heartbeat_s \(30\) .* search\.stale_after_s \(120\)"
    ):
        load_config(SearchConfig, "search", config)
    load_config(SearchConfig, "search", search_yaml(tmp_path / "ok.yaml", RDB, storage_retry_s=60))  # 60 + 30 < 120
    # a journal file is never retried: only the beat counts, and it must come before the limit too
    load_config(SearchConfig, "search", search_yaml(tmp_path / "j.yaml", None, storage_retry_s=90, stale_after_s=60))
    beat = search_yaml(tmp_path / "b.yaml", None, heartbeat_s=5, stale_after_s=5)
    with pytest.raises(ConfigError, match=r"^search\.heartbeat_s \(5\) must stay under search\.stale_after_s \(5\)"):
        load_config(SearchConfig, "search", beat)


def test_the_storage_given_on_the_command_line_is_judged_with_the_yaml_timing(tmp_path: Path) -> None:
    """The YAML's timing is fine for its journal file; ``--storage`` makes it a database that retries for 90 s:
    train.py refuses it in one line (exit 2), before opening the storage or reading any feature."""
    config = search_yaml(tmp_path / "s.yaml", None, storage_retry_s=90, heartbeat_s=30, stale_after_s=100)
    done = subprocess.run(
        [sys.executable, "train.py", "--search", "--config", str(config), "--storage", RDB],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 2, printed
    assert "storage_retry_s (90) + search.heartbeat_s (30) must stay under search.stale_after_s (100)" in " ".join(
        printed.split()
    )
    assert "Traceback" not in printed and len([line for line in printed.splitlines() if "error:" in line]) == 1
