"""The errors a user can fix: each carries a message that says what is wrong and what to do.

Every entry point prints one of these as a single ``error: ...`` line and exits 2
(``research.cli.run_cli``); anything else is a bug and keeps its traceback. Library
modules raise these and never import the CLI.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class UserError(RuntimeError):
    """Base class: a message for the user, printed without a traceback (exit 2)."""


class ConfigError(UserError, ValueError):
    """A config file, flag or override that does not fit its dataclass."""


class WeightsNotFoundError(UserError):
    """Pretrained weights are neither in the torch hub cache nor downloadable."""


class FeatureFileError(UserError, ValueError):
    """A feature file that cannot be used as asked (missing, malformed, or made differently)."""


class FeatureMismatchError(FeatureFileError):
    """Features and a model (or two feature files, or a config) that do not fit together."""


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or not one this project wrote."""


class StaleWorkError(UserError):
    """Finished or partial work on disk was made from other inputs or settings than this run's."""


class TrainingDivergedError(UserError):
    """The loss (or the weights) became NaN or infinite: nothing is saved from the broken weights."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``), raised like Ctrl-C so every ``finally:`` runs (exit 143)."""


def yaml_problem(err: Exception, source: str) -> str:
    """One line for a YAML syntax error: the source, line and column (yaml's ``problem_mark``), the problem."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    hint = " (YAML indents with spaces, not tabs)" if "\\t" in problem or "\t" in problem else ""
    return f"{source} is not valid YAML{where}: {problem}{hint}"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def ensure_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) or say, in one line, why it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        raise UserError(f"cannot create the {what} {path}: a regular file is in the way ({err.filename})") from None
    except PermissionError as err:
        raise UserError(f"cannot create the {what} {path}: permission denied ({err.filename})") from None
    return path
