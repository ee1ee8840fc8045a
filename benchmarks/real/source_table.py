"""The real-footage benchmark's source types: a ``Source`` row, package paths, and ``x()`` for recorded programs.

``file_sources.py`` lists the shipped videos, ``sources.py`` the programs recorded under Xvfb
(and re-exports both tables for ``record.py``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class Source:
    name: str  # unique id, the group for cross-validation
    category: str  # animation | flat_content | gaming | natural_content
    kind: str  # camera | rendered | screen | game
    origin: str  # the package (and version) the material comes from
    licence: str
    clips: list[tuple[float, float]]  # (start s, length s)
    path: str = ""  # file sources: path inside the extracted package (or wheel)
    command: list[str] = field(default_factory=list)  # X sources: the program
    keys: list[str] = field(default_factory=list)  # X sources: keys pressed in a loop (xdotool names)
    screen: tuple[int, int] = (800, 600)
    warmup: float = 6.0  # seconds before recording starts (start-up, menus)
    setup: list[str] = field(default_factory=list)  # X sources: keys pressed once after warm-up
    rate: int = 0  # file sources: an image sequence (path is an ffmpeg pattern) read at this frame rate
    cycle: int | None = None  # place of the first clip in record.py's size/rate cycles (None: by name)


def deb(package: str, path: str) -> str:
    return f"deb:{package}:{path}"


X_SOURCES: list[Source] = []  # filled below, one per program


def x(
    name: str,
    category: str,
    kind: str,
    origin: str,
    licence: str,
    command: str,
    keys: str = "",
    clips: list[tuple[float, float]] | None = None,
    **kw,
) -> None:
    X_SOURCES.append(
        Source(
            name,
            category,
            kind,
            origin,
            licence,
            clips or [(0, 7), (9, 7)],
            command=shlex.split(command),
            keys=keys.split(),
            **kw,
        )
    )
