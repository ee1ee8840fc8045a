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


def _deprecated_by_mlflow(match: re.Match[str]) -> str:
    since = f" since MLflow {match['since']}" if match["since"] else ""
    return (
        f"MLflow deprecates {match['what']}{since}, which this run used: a later MLflow removes it; keep mlflow "
        "at this version and report it"
    )


def _mlflow_deprecation(match: re.Match[str]) -> str:
    return (
        f"MLflow deprecates what this project uses ({' '.join(match['sentence'].split())}): a later MLflow "
        "removes it; keep mlflow at this version and report it"
    )


# A read-only array shared with torch: a tensor written in place (an augmentation, an optimiser step on it)
# would write memory numpy promised nobody writes. The project's readers hand torch writable arrays (h5py
# reads, the training copy mapped copy-on-write); this line means one of them does not.
NOT_WRITABLE = (
    "bug: torch was given a read-only numpy array (writing to its tensor is undefined behaviour, and the "
    "numbers trained or scored on may be wrong); please report it with the command that printed this line"
)
# balanced_accuracy_score (and others) drop a class no scored clip has: the score averages fewer classes than
# the model predicts, and that class's predictions (all wrong) count only against the others' precision.
CLASS_WITHOUT_CLIPS = (
    "scikit-learn scored predictions of a class that none of the scored clips has (a test fold or split "
    "without it): its score averages only the classes the clips have, so it is not comparable with a score "
    "over every class; the per-class table (recall) shows which class has no clips"
)

# (library, pattern over the warning's text, the project's line or SILENT). First match wins. The library
# "" matches a warning from any file: MLflow's deprecations, and torch's warnings from C++, point at the
# Python code that made the call, not at the library's own files.
KNOWN: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str] | str]] = [
    (
        "sklearn",
        re.compile(r"least populated class in y has only (?P<n>\d+) members, which is less than n_splits=(?P<k>\d+)"),
        _least_populated,
    ),
    ("sklearn", re.compile(r"y_pred contains classes not in y_true"), CLASS_WITHOUT_CLIPS),
    (
        "sklearn",
        re.compile(r"Only one class is present"),
        "scikit-learn was asked for a ranking score (ROC AUC, detection error) of clips of one class only: it is "
        "undefined there, and the value given is nan",
    ),
    ("sklearn", re.compile(r"lbfgs failed to converge"), "the probe's optimiser stopped at its iteration cap"),
    # torch's nested-tensor hint for the transformer model: a speed note, not a result.
    ("torch", re.compile(r"enable_nested_tensor is True"), SILENT),
    ("", re.compile(r"NumPy array is not writable|non-writable tensors"), NOT_WRITABLE),
    (
        "",
        re.compile(r"`*(?P<what>mlflow\.[\w.]+?)`* is deprecated(?: since (?P<since>\d+(?:\.\d+)*))?"),
        _deprecated_by_mlflow,
    ),
    # MLflow's notes on its own storage and UI defaults: the project's tracking module words what matters.
    ("mlflow", re.compile(r"filesystem tracking backend|Filesystem store", re.I), SILENT),
    ("mlflow", re.compile(r"(?P<sentence>[^.\n]*deprecat[^.\n]*)", re.I), _mlflow_deprecation),
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
