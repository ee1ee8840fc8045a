"""The real-footage benchmark's sources: what each clip is cut or recorded from, its class, kind and licence.

A table of its own so that ``record.py`` reads as the recipe (fetch, record, encode, write the
manifest) and this file as the catalogue a reviewer checks source by source.
"""

from __future__ import annotations

from file_sources import FILE_SOURCES
from source_table import X_SOURCES, Source, x

__all__ = ["FILE_SOURCES", "X_SOURCES", "Source"]

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
    cycle=0,
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
    cycle=2,
)
for name, game, keys, cycle in (
    ("aisleriot", "sol", "click click click", 19),
    ("mines", "gnome-mines", "click click click click", 6),
    ("iagno", "iagno", "click click click", 8),
):
    x(name, "gaming", "game", game, "GPL-2+/GPL-3+ (GNOME games)", game, keys, warmup=8, cycle=cycle)
# flat_content: desktop programs
x(
    "xterm_man",
    "flat_content",
    "screen",
    "xterm + manpages",
    "MIT (xterm); GPL (man-pages)",
    "xterm -geometry 100x36+0+0 -e man bash",
    "Next Next Down Down Next Prior Next Next",
    cycle=16,
)
x(
    "xterm_top",
    "flat_content",
    "screen",
    "xterm + procps",
    "MIT (xterm); GPL-2+ (procps)",
    "xterm -geometry 110x40+0+0 -e top -d 0.5",
    "",
    cycle=18,
)
x(
    "mupdf_manual",
    "flat_content",
    "screen",
    "mupdf",
    "AGPL-3+ (mupdf)",
    "mupdf /usr/share/doc/xterm/xterm.faq.html",
    "",
    cycle=20,
)
x(
    "dillo_docs",
    "flat_content",
    "screen",
    "dillo",
    "GPL-3+",
    "dillo /usr/share/doc/xterm/xterm.faq.html",
    "Next Next Down Down Next Next",
    cycle=22,
)
x(
    "xcalc",
    "flat_content",
    "screen",
    "x11-apps",
    "MIT",
    "xcalc -geometry 400x500+100+50",
    "1 2 plus 3 4 Return 7 asterisk 9 Return",
    cycle=24,
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
    cycle=26,
)
# animation: CGI screensavers (each hack its own source)
for i, hack in enumerate(("atlantis", "bouncingcow", "gears", "sproingies", "moebius", "superquadrics")):
    x(
        f"xss_{hack}",
        "animation",
        "rendered",
        "xscreensaver-gl 6.06",
        "MIT-like (xscreensaver)",
        f"/usr/libexec/xscreensaver/{hack} -root",
        "",
        clips=[(0, 7)],  # one clip per hack (issue #34: the hacks are look-alikes)
        warmup=4,
        cycle=28 + 2 * i,
    )

# ---------------------------------------------------------------- issue #24: the grown collection
THREE = [(0, 5), (5.5, 5), (11, 5)]  # three 5 s clips of one session

# gaming: terminal games in an xterm (bsdgames and friends)
for name, prog, origin, licence, keys, setup in (
    ("tint", "tint", "tint", "BSD-3-Clause", "j l k j l k", ["5", "Return"]),
    ("tetris_bsd", "tetris-bsd", "bsdgames", "BSD-3-Clause (bsdgames)", "j k l space j l k space", []),
    ("robots_bsd", "robots", "bsdgames", "BSD-3-Clause (bsdgames)", "h j k l y u b n", []),
    ("snake_bsd", "snake", "bsdgames", "BSD-3-Clause (bsdgames)", "l j h k l", []),
    ("moon_buggy", "moon-buggy", "moon-buggy", "GPL-3+", "space l space space l", ["space"]),
    ("ninvaders", "ninvaders", "ninvaders", "GPL-2+", "Left space Right space Left space", ["space"]),
    ("pacman4console", "pacman4console", "pacman4console", "GPL-2+", "Left Up Right Down Left Down", []),
    ("greed", "greed", "greed", "BSD-2-Clause (greed)", "h j k l y u b n", []),
):
    x(
        name,
        "gaming",
        "game",
        origin,
        licence,
        f"xterm -geometry 90x32+0+0 -e {prog}",
        keys,
        clips=THREE,
        warmup=3,
        setup=setup,
    )

# gaming: X11 / SDL / GTK games
x(
    "pingus",
    "gaming",
    "game",
    "pingus 0.7.6",
    "GPL-3+",
    "pingus -s -w -g 800x600 /usr/share/games/pingus/data/levels/tutorial/digger-tutorial2-grumbel.pingus",
    "click click click click",
    clips=THREE,
    warmup=12,
    setup=["click:680,480", "sleep:2"],
)
x(
    "chromium_bsu",
    "gaming",
    "game",
    "chromium-bsu",
    "Artistic (chromium-bsu)",
    "chromium-bsu",
    "Left Up Right space Down Left space",
    clips=THREE,
    warmup=10,
    setup=["Return"],
)
x(
    "xsoldier",
    "gaming",
    "game",
    "xsoldier",
    "GPL-2+",
    "xsoldier",
    "Left space Up Right space Down space",
    clips=THREE,
    warmup=5,
    setup=["space"],
)
x(
    "gnome_2048",
    "gaming",
    "game",
    "gnome-2048",
    "GPL-3+ (GNOME games)",
    "gnome-2048",
    "Up Left Down Right Up Right Down Left",
    clips=THREE,
    warmup=8,
)
x(
    "gnome_robots",
    "gaming",
    "game",
    "gnome-robots",
    "GPL-3+ (GNOME games)",
    "gnome-robots",
    "h j k l y u b n",
    clips=THREE,
    warmup=8,
)
x("tali", "gaming", "game", "tali", "GPL-2+ (GNOME games)", "tali", "click click click click", clips=THREE, warmup=8)
x(
    "hitori",
    "gaming",
    "game",
    "hitori",
    "GPL-3+ (GNOME games)",
    "hitori",
    "click click click click",
    clips=THREE,
    warmup=8,
)
x(
    "four_in_a_row",
    "gaming",
    "game",
    "four-in-a-row",
    "GPL-3+ (GNOME games)",
    "four-in-a-row",
    "click click click",
    clips=THREE,
    warmup=8,
)
x(
    "gnome_sudoku",
    "gaming",
    "game",
    "gnome-sudoku",
    "GPL-3+ (GNOME games)",
    "gnome-sudoku",
    "click click click click",
    clips=THREE,
    warmup=8,
)
x(
    "xjump",
    "gaming",
    "game",
    "xjump",
    "GPL-2+",
    "xjump",
    "Left Up Right Up Left Right Up",
    clips=THREE,
    warmup=4,
    setup=["space"],
)
for game in ("freecell", "taipei", "spider"):
    x(
        f"ace_{game}",
        "gaming",
        "game",
        "ace-of-penguins",
        "GPL-2+ (ace-of-penguins)",
        f"ace-{game}",
        "click click click click",
        clips=THREE,
        warmup=4,
    )
x(
    "icebreaker",
    "gaming",
    "game",
    "icebreaker",
    "GPL-2+",
    "icebreaker",
    "click click click click",
    clips=THREE,
    warmup=5,
)
x(
    "crack_attack",
    "gaming",
    "game",
    "crack-attack",
    "GPL-2+",
    "crack-attack --solo",
    "Left Up space Right Down space",
    clips=THREE,
    warmup=10,
    setup=["space"],
)

# flat_content: terminal programs (each program a source)
for name, prog, origin, licence, keys in (
    (
        "xterm_vim",
        "vim -R /usr/lib/python3.11/argparse.py",
        "vim",
        "Vim licence (GPL-compatible)",
        "Next j j j Next k Next",
    ),
    ("xterm_nano", "nano -v /usr/lib/python3.11/csv.py", "nano", "GPL-3+", "Next Down Down Next Down"),
    ("xterm_htop", "htop -d 5", "htop", "GPL-2+", ""),
    ("xterm_mc", "mc /usr/share/doc /usr/share", "mc", "GPL-3+", "Down Down Tab Down Down Tab"),
    ("xterm_w3m", "w3m /usr/share/doc/xterm/xterm.faq.html", "w3m", "MIT-like (w3m)", "space Down Down space"),
    ("xterm_lynx", "lynx /usr/share/doc/xterm/xterm.log.html", "lynx", "GPL-2", "space Down space Down"),
    ("xterm_less", "less /usr/share/common-licenses/GPL-3", "less", "GPL-3+", "space Down Down space"),
    ("xterm_sc", "sc", "sc", "public domain (sc)", "1 2 Return Down 3 4 Return Right 5 Return"),
    ("xterm_calcurse", "calcurse", "calcurse", "BSD-2-Clause", "Tab Down Right Tab Down Left"),
):
    x(
        name,
        "flat_content",
        "screen",
        f"xterm + {origin}",
        f"MIT (xterm); {licence}",
        f"xterm -geometry 100x36+0+0 -e {prog}",
        keys,
        clips=THREE,
        warmup=3,
    )

# flat_content: document viewers, editors, file managers, desktop programs
for name, origin, licence, command, keys in (
    (
        "xpdf",
        "xpdf",
        "GPL-2/3",
        "xpdf -geometry 800x600+0+0 /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
        "Next Next n Next",
    ),
    ("zathura", "zathura", "Zlib", "zathura /usr/share/doc/libtasn1-doc/libtasn1.pdf", "J J j j J"),
    ("gv", "gv", "GPL-3+", "gv /usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf", "space space space"),
    ("feh_icons", "feh", "MIT-feh", "feh -g 800x600 -D 1.5 -Z /usr/share/pixmaps", ""),
    ("pcmanfm", "pcmanfm", "GPL-2+", "pcmanfm /usr/share/doc", "Down Down Right Down Right"),
    ("abiword", "abiword", "GPL-2+", "abiword /usr/share/common-licenses/GPL-3", "Next Next Down Next"),
    ("galculator", "galculator", "GPL-2+", "galculator", "1 2 plus 3 4 Return 7 asterisk 9 Return"),
    ("gucharmap", "gucharmap", "GPL-3+", "gucharmap", "Next Down Right Next Right"),
    ("mousepad", "mousepad", "GPL-2+", "mousepad /usr/lib/python3.11/json/decoder.py", "Next Next Down Next"),
    ("geany", "geany", "GPL-2+", "geany /usr/lib/python3.11/shlex.py", "Next Next Down Next"),
    (
        "netsurf",
        "netsurf-gtk",
        "GPL-2",
        "netsurf-gtk file:///usr/share/doc/xterm/xterm.faq.html",
        "Next Next Down Next",
    ),
    ("xedit", "x11-apps", "MIT", "xedit -geometry 700x560+0+0 /usr/share/common-licenses/BSD", "Next Next Down"),
    ("xclock", "x11-apps", "MIT", "xclock -update 1 -geometry 500x500+0+0", ""),
    ("xfig", "xfig", "MIT-like (xfig)", "xfig", "click click click"),
    ("dia", "dia", "GPL-2+", "dia", "click click click"),
):
    x(name, "flat_content", "screen", origin, licence, command, keys, clips=THREE, warmup=8)

# animation: more of xscreensaver's hacks (each hack a source; none grabs the screen or shows text)
for hack, pkg in (
    *(
        (h, "xscreensaver-gl")
        for h in (
            "pipes",
            "sierpinski3d",
            "engine",
            "glknots",
            "morph3d",
            "polyhedra",
            "spheremonics",
            "topblock",
            "hypertorus",
            "flyingtoasters",
            "endgame",
            "glschool",
            "winduprobot",
            "molecule",
        )
    ),
    *(
        (h, "xscreensaver-gl-extra")
        for h in (
            "cubenetic",
            "lament",
            "juggler3d",
            "pinion",
            "dangerball",
            "glhanoi",
            "crackberg",
            "skytentacles",
            "companioncube",
            "rubik",
            "glplanet",
        )
    ),
    *((h, "xscreensaver-data") for h in ("galaxy", "fiberlamp", "swirl")),
    *((h, "xscreensaver-data-extra") for h in ("substrate", "coral", "anemone", "fireworkx", "xflame", "wormhole")),
):
    x(
        f"xss_{hack}",
        "animation",
        "rendered",
        f"{pkg} 6.06",
        "MIT-like (xscreensaver)",
        f"/usr/libexec/xscreensaver/{hack} -root",
        "",
        clips=THREE[:1],  # one clip per hack (issue #34)
        warmup=4,
    )

# ---------------------------------------------------- issue #34: families that are not look-alikes
FOUR = [(0, 5), (5.5, 5), (11, 5), (16.5, 5)]  # four 5 s clips of one session
FIVE = [*FOUR, (22, 5)]
SIX = [*FIVE, (27.5, 5)]

# animation: sprite cartoons on the root window (desktop toys)
x(
    "xpenguins",
    "animation",
    "rendered",
    "xpenguins 2.2",
    "GPL-2+ (xpenguins)",
    "xpenguins -n 25",
    "",
    clips=FOUR,
    warmup=3,
)
x(
    "xpenguins_big",
    "animation",
    "rendered",
    "xpenguins 2.2",
    "GPL-2+ (xpenguins)",
    "xpenguins -n 20 --theme Big_Penguins",
    "",
    clips=THREE,
    warmup=3,
)
x("xsnow", "animation", "rendered", "xsnow 3.6.0", "GPL-3+ (xsnow)", "xsnow -nomenu", "", clips=FOUR, warmup=5)
x(
    "xfishtank",
    "animation",
    "rendered",
    "xfishtank 2.5",
    "xfishtank licence (redistribution permitted, Debian main)",
    "xfishtank",
    "",
    clips=FOUR,
    warmup=3,
)
# animation: glmark2's rendered 3-D scenes (each scene a source)
for scene in ("jellyfish", "terrain", "ideas", "refract", "shadow", "build", "pulsar", "shading", "bump"):
    x(
        f"glmark2_{scene}",
        "animation",
        "rendered",
        "glmark2-x11 2023.01",
        "GPL-3+ (glmark2; models and textures per Debian copyright)",
        f"glmark2 -s 800x600 -b {scene}:duration=60",
        "",
        clips=THREE,
        warmup=6,
    )
# animation: XaoS zooming into fractals on its autopilot
x(
    "xaos",
    "animation",
    "rendered",
    "xaos 4.2.1",
    "GPL-2+ (xaos)",
    "xaos -geometry 800x600+0+0 -autopilot",
    "",
    clips=FOUR,
    warmup=5,
)
# animation: matplotlib explainers written for this benchmark (explainers.py beside this file)
for scene in ("orbits", "sorting", "waves", "pendulums", "life"):
    x(
        f"mpl_{scene}",
        "animation",
        "rendered",
        "python3-matplotlib 3.6.3",
        "PSF-compatible (matplotlib); scene: this project's licence",
        f"/usr/bin/python3 benchmarks/real/explainers.py {scene}",
        "",
        clips=THREE,
        warmup=6,
    )

# gaming: colourful 2-D and 3-D games (GL ones on llvmpipe)
x(
    "blobby",
    "gaming",
    "game",
    "blobby 1.0",
    "GPL-2+ (blobby)",
    "blobby",
    "a d w a w d Left Right Up",
    clips=SIX,
    warmup=8,
    setup=["click:490,390", "sleep:2"],
)
x(
    "neverball",
    "gaming",
    "game",
    "neverball 1.6.0",
    "GPL-2+ (neverball)",
    "neverball -l map-easy/coins.sol",
    "click click click click",
    clips=SIX,
    warmup=10,
    setup=["click:400,300", "sleep:2", "click:400,300"],
)
x(
    "extremetuxracer",
    "gaming",
    "game",
    "extremetuxracer 0.8.2",
    "GPL-2+ (extremetuxracer)",
    "etr",
    "Up Left Up Right",
    clips=FIVE[:3],  # the run ends (time out) about 17 s in
    warmup=40,  # loading its resources takes a while on llvmpipe
    setup=["Return", "sleep:3", "Return", "sleep:3", "Return", "sleep:3", "Return", "sleep:10"],
)

x(
    "mirrormagic",
    "gaming",
    "game",
    "mirrormagic 3.1.0",
    "GPL-2 (mirrormagic)",
    "mirrormagic",
    "click click click",
    clips=FIVE,
    warmup=8,
    setup=["Return", "Return"],
    screen=(600, 440),  # the playing field only: the clicks turn its mirrors, never the tape buttons
)

# flat_content: image viewers browsing GNOME's wallpapers (windows full of pictures, not text)
for name, origin, licence, command, keys, warmup in (
    (
        "eog_wallpapers",
        "eog 43.2",
        "GPL-2+ (eog); CC-BY-SA (gnome-backgrounds)",
        "eog /usr/share/backgrounds/gnome/adwaita-d.webp",
        "Right",
        6,
    ),
    (
        "geeqie_wallpapers",
        "geeqie 2.0.1",
        "GPL-2+ (geeqie); CC-BY-SA (gnome-backgrounds)",
        "geeqie /usr/share/backgrounds/gnome/grid-d.webp",  # past the SVGs, which geeqie is slow to draw
        "space space BackSpace",  # geeqie stops at the last picture: go back now and then
        8,
    ),
    (
        "ristretto_wallpapers",
        "ristretto 0.12.4",
        "GPL-2+ (ristretto); CC-BY-SA (gnome-backgrounds)",
        "ristretto /usr/share/backgrounds/gnome/adwaita-d.webp",
        "Right",
        12,
    ),
):
    x(name, "flat_content", "screen", origin, licence, command, keys, clips=FIVE, warmup=warmup)

# animation: POV-Ray's animation examples rendered over their clock (120 frames at 400x300, read at 20 fps)
POV = "/usr/share/povray-3.7"
for scene, cyclic in (
    ("camera2", True),
    ("splinefollow", True),
    ("fractalzoom", True),
    ("float4", False),
    ("vect2", True),
    ("clockd", True),
    ("l_o", False),
):
    X_SOURCES.append(
        Source(
            f"povray_{scene}",
            "animation",
            "rendered",
            "povray-examples 3.7.0.10",
            "CC-BY-SA-3.0 (POV-Ray scenes, Debian povray-examples); rendered with povray (AGPL-3+)",
            [(0, 6)],
            path="frame_%03d.png",
            rate=20,
            render=(
                f"povray +I{POV}/scenes/animations/{scene}/{scene}.pov +L{POV}/include"
                f" +L{POV}/scenes/animations/{scene} -D -GA +W400 +H300 +A0.3"
                f" +KFI1 +KFF120 +KI0 +KF1{' +KC' if cyclic else ''} +Oframe_.png"
            ),
        )
    )
