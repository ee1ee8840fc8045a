"""What every entry point shares: the parser builder, banners, and clean errors.

Scripts build their parser with ``make_parser`` (which adds ``--config``, one flag
per config field and ``key=value`` overrides) and run their stage through
``run_cli``, which turns the errors a user can fix (a bad config, missing weights,
mismatched features) into one readable paragraph and a non-zero exit code instead
of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.rule import Rule
from rich.text import Text

from research import interrupts, notices
from research.config import ConfigParser, add_config_arguments
from research.errors import Terminated, UserError
from research.files import out_of_space_cause

console = Console(stderr=True)


def make_parser(doc: str | None, config_cls: type | None = None) -> argparse.ArgumentParser:
    """The parser every entry point starts from: its docstring as help, ``--verbose``, and, given a
    config dataclass, ``--config``, one ``--flag`` per field and ``key=value`` overrides."""
    parser = ConfigParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return add_config_arguments(parser, config_cls) if config_cls is not None else parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    notices.install()  # third-party warnings: one line in the project's words, never raw


def banner(title: str) -> None:
    """A rule between the phases of a long job, so the log reads as a recipe."""
    console.print(Rule(f"[bold]{title}"))


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM -> ``Terminated`` (a KeyboardInterrupt): every ``finally:`` runs, runs end KILLED.

    Once: a second SIGTERM while cleaning up ends the process the default way.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    interrupts.terminate()  # now, or when a tracking-store write under way returns


def _error_line(message: str) -> None:
    """``error: message`` on one line, also when a library's message has line breaks (never markup)."""
    console.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())), soft_wrap=True)


def run_cli(main: Callable[[], Any]) -> None:
    """Run a script's main; user-fixable errors exit 2 with their message only, Ctrl-C 130, SIGTERM 143."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = main()
    except (UserError, FileNotFoundError) as err:
        _error_line(str(err))
        sys.exit(2)
    except Exception as err:
        full = out_of_space_cause(err)  # a full disk met where no stage expected it (the MLflow store, ...)
        if full is None:
            raise
        _error_line(
            f"out of disk space ({str(full).splitlines()[0]}): finished work is kept; free some space "
            "and re-run the same command to resume"
        )
        sys.exit(2)
    except KeyboardInterrupt as err:
        what, code = ("terminated", 143) if isinstance(err, Terminated) else ("interrupted", 130)
        console.print(f"[yellow]{what}[/yellow]: finished work is kept; re-run the same command to resume")
        sys.exit(code)
    finally:
        signal.signal(signal.SIGTERM, previous)  # in-process callers (tests) get their own handler back
        tracking = sys.modules.get("research.tracking")  # loaded only by the commands that track
        if tracking is not None and tracking.lost():
            console.print(Text.assemble(("warning:", "bold yellow"), " ", tracking.lost()), soft_wrap=True)
    sys.exit(result if isinstance(result, int) else 0)
