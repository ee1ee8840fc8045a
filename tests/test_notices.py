"""Warnings that carry signal are said in the project's words, never silenced: an MLflow deprecation names what is
deprecated, a read-only array handed to torch is reported as the bug it is, and scikit-learn's score over a
class no clip has says what it means. Real triggers, in a real process set up as every entry point sets it up
(torch says its warning once per process)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT

TRIGGERS = """
import numpy as np
from research.cli import setup_logging
setup_logging()
import mlflow.metrics, torch
from sklearn.metrics import balanced_accuracy_score
for _ in range(2):  # said once, however often raised
    mlflow.metrics.latency()  # deprecated since MLflow 3.4
    balanced_accuracy_score([0, 0, 1], [0, 2, 1])  # class 2 predicted, no clip of it
torch.from_numpy(np.frombuffer(bytes(16), np.float32))  # a read-only buffer
"""


def test_warnings_with_signal_are_one_line_each_in_the_projects_words() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", TRIGGERS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    printed = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, printed[-3000:]
    assert "Warning:" not in printed and "warnings.warn" not in printed, printed
    said = {
        "MLflow deprecates mlflow.metrics.latency since MLflow 3.4.0, which this run used": 1,
        "scikit-learn scored predictions of a class that none of the scored clips has": 1,
        "bug: torch was given a read-only numpy array": 1,
    }
    assert {line: printed.count(line) for line in said} == said, printed
