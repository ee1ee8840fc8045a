"""Warnings in the project's words: no third-party warning reaches the console raw.

Python's ``warnings`` (scikit-learn, h5py, torch, MLflow, Optuna, ...) print a file name, a line number and
the library's own phrasing, often once per call. ``install`` (called by every entry point's logging set-up)
routes each through ``explain``: one ``warning:`` line in the project's words, said once per run, or
nothing where the project already says the same thing in its own line (the split's class balance, the
tracking server's loss). A warning nobody here has met yet is still one line, naming the library and
its first line, so it is never lost either.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger("research")

SILENT = ""  # what ``explain`` returns for a warning the project already says in its own line


def _least_populated(match: re.Match[str]) -> str:
    return (
        f"a class has only {match['n']} clips for {match['k']} grouped folds: some folds test none of it, "
        "and those folds' scores leave it out"
    )


# (library, pattern over the warning's text, the project's line or SILENT). First match wins.
KNOWN: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str] | str]] = [
    (
        "sklearn",
        re.compile(r"least populated class in y has only (?P<n>\d+) members, which is less than n_splits=(?P<k>\d+)"),
        _least_populated,
    ),
    # A fold without a class: the split's balance check and the CV's per-class table say so already.
    ("sklearn", re.compile(r"y_pred contains classes not in y_true|Only one class is present"), SILENT),
    ("sklearn", re.compile(r"lbfgs failed to converge"), "the probe's optimiser stopped at its iteration cap"),
    # torch's nested-tensor hint for the transformer model: a speed note, not a result.
    ("torch", re.compile(r"enable_nested_tensor is True"), SILENT),
    ("torch", re.compile(r"non-writable|not writable"), SILENT),  # arrays read-only from h5py/mmap, copied first
    # MLflow's notes on its own storage and UI defaults: the project's tracking module words what matters.
    ("mlflow", re.compile(r"filesystem tracking backend|Filesystem store|deprecated", re.I), SILENT),
    ("mlflow", re.compile(r"Model logged without a signature|input example", re.I), SILENT),
    ("optuna", re.compile(r"experimental", re.I), SILENT),
]

_said: set[str] = set()


def library_of(category: type[Warning], filename: str) -> str:
    """The library a warning came from, by the file that raised it (``.../site-packages/sklearn/...``)."""
    match = re.search(r"site-packages/([A-Za-z_][\w]*)", filename.replace("\\", "/"))
    return match.group(1) if match else category.__module__.split(".")[0]


def explain(message: str, category: type[Warning], filename: str) -> str:
    """The project's line for a warning (``SILENT`` for none)."""
    library = library_of(category, filename)
    for known_library, pattern, said in KNOWN:
        match = pattern.search(message)
        if match and (library.startswith(known_library) or known_library in filename):
            return said(match) if callable(said) else said
    first = message.strip().splitlines()[0] if message.strip() else category.__name__
    return f"{library} warns ({category.__name__}): {first}"


def say_once(line: str) -> None:
    """Log ``line`` as a warning the first time this run meets it."""
    if line and line not in _said:
        _said.add(line)
        log.warning(line)


def _show(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    say_once(explain(str(message), category, filename))


def install() -> None:
    """Route every Python warning of this process through ``explain``; a run starts with nothing said."""
    _said.clear()
    warnings.showwarning = _show
    logging.captureWarnings(False)  # the logging module's own capture would print them raw again
