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
    render: str = ""  # rendered sources: shell command that makes the frames (path is their pattern) in the cache
    family: str = ""  # look-alike group for balance checks; "" = family_of(origin)

    def __post_init__(self) -> None:
        self.family = self.family or family_of(self.origin)


# Families merge look-alike sources, so that no one program's look can dominate a class.
GNOME_GAMES = {
    "sol", "aisleriot", "gnome-mines", "iagno", "five-or-more", "four-in-a-row", "gnome-2048",
    "gnome-mahjongg", "gnome-robots", "gnome-sudoku", "gnome-tetravex", "hitori", "lightsoff", "tali",
    "swell-foop", "quadrapassel", "gnome-chess", "gnome-klotski", "gnome-nibbles", "gnome-taquin",
}  # fmt: skip
TERMINAL_GAMES = {"bsdgames", "ninvaders", "pacman4console", "greed", "moon-buggy", "tint"}


def family_of(origin: str) -> str:
    """The family of a source from its origin package: look-alikes merged, versions dropped.

    Every xscreensaver* package -> ``xscreensaver``; ``xterm + PROGRAM`` -> ``xterm`` (a terminal
    game in an xterm -> ``terminal-games``); the GNOME games -> ``gnome-games``; terminal games ->
    ``terminal-games``; anything else -> the package name without version or note
    (``opencv-doc 4.6.0`` -> ``opencv-doc``, ``psychopy 2026.2.5 (PyPI)`` -> ``psychopy``).
    """
    if origin.startswith("xscreensaver"):
        return "xscreensaver"
    if origin.startswith("xterm + "):
        return "terminal-games" if origin[len("xterm + ") :].split()[0] in TERMINAL_GAMES else "xterm"
    name = origin.split()[0]
    if name in GNOME_GAMES:
        return "gnome-games"
    if name in TERMINAL_GAMES:
        return "terminal-games"
    return name


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
