"""A procedural 4-class video dataset: the embedded default for the demo, tests and benchmarks.

No real collection can be downloaded here, so the project draws its own, in the
seed's input layout ``ROOT/{split}/{category}/{subcategory}/NAME.mp4`` (H.264,
yuv420p, written with PyAV), with a ``manifest.csv`` of every video and the
parameters that generated it. Categories sort into the seed's class indices:
0 animation, 1 flat_content, 2 gaming, 3 natural_content.

Each subcategory is one renderer ``(rng, width, height, n_frames) -> frames``: the first
ones here, and in ``research.data.lifelike``, ``games``, ``screens`` and ``raytrace`` the kinds of real footage
they missed (3-D screensavers, visualisers, board and card games, terminals, documents, test cards,
explainer diagrams, fixed cameras, ray-traced 3-D worlds), added after the demo's models failed on the
real-footage benchmark. Confusers are drawn on purpose (photographs inside slides, photographic textures
in game levels, sensor noise on cel-shaded scenes, posterised photographs) so the
task is not trivially separable and differences between models show. How often they
appear, and how strong the class-agnostic overlays and compression are, follows each
video's ``difficulty`` in [0, 1] (``research.data.difficulty``; a manifest column).

The same arguments give byte-identical files: every video has its own RNG seeded
from (seed, split, category, subcategory, index), and x264 runs single-threaded.

    python -m research.data.synthetic --out data/demo --videos-per-class 40 --seed 0
    python -m research.data.synthetic --out data/hard --videos-per-class 40 --difficulty 0.7 1.0
    python -m research.data.synthetic --contact-sheet docs/contact_sheet.png --out data/demo
"""

from __future__ import annotations

import csv
import os
import json
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from rich.progress import Progress

from research.data import games, lifelike, raytrace, screens
from research.data.difficulty import apply_overlays, overlay_params, scaled
from research.data.drawing import (
    CODE_LINES, SensorNoise, add_noise, color, cursor, font, paste, photos, resize, score_label, sentence, smooth_path, sphere_normals, sprite, textures, vertical_gradient,
)
from research.errors import UserError

log = logging.getLogger(__name__)

CATEGORIES = ("animation", "flat_content", "gaming", "natural_content")
SPLITS = ("train", "val", "test")
RESOLUTIONS = ((320, 240), (256, 256), (352, 288), (426, 240), (300, 200), (240, 180), (362, 228))  # heights % 4 == 0: packed yuv420p layout
FPS_CHOICES = (15, 20, 24, 25, 30)  # the real-footage clips' rates, in equal shares
# Bumped whenever the same arguments would draw different videos; recorded in generator.json, so a
# dataset made by an older generator is never mistaken for the current one (research.demo checks it).
GENERATOR_VERSION = 6  # 2: per-video difficulty, overlays, compression; 3: every confuser certain at difficulty 1; 4: lifelike renderers; 5: board games draw their mouse pointer; 6: ray-traced 3-D worlds

Frames = Iterator[np.ndarray]
Renderer = Callable[[np.random.Generator, int, int, int, dict], Frames]


# ------------------------------------------------------------------ animation


def _cartoon_world(rng: np.random.Generator, w: int, h: int, photo: int | None = None) -> np.ndarray:
    """A wide cel-shaded landscape: gradient sky, outlined hills, flat clouds.

    With ``photo``, the sky is a real photograph (cartoons composited on live action: a confuser).
    """
    sky = resize(photos()[photo], w, h) if photo is not None else vertical_gradient(w, h, color(rng, 60, 200), color(rng, 150, 255))
    world = Image.fromarray(np.ascontiguousarray(sky))
    draw = ImageDraw.Draw(world)
    for layer in range(int(rng.integers(2, 4))):
        base = h * (0.55 + 0.12 * layer)
        xs = np.linspace(-20, w + 20, int(rng.integers(4, 9)))
        pts = [(float(x), float(base - rng.uniform(0, h * 0.25))) for x in xs]
        draw.polygon([(-20, h), *pts, (w + 20, h)], fill=color(rng, 30, 220), outline=(0, 0, 0), width=3)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h * 0.35), rng.uniform(10, 30)
        for dx in (-r, 0, r):
            draw.ellipse((cx + dx - r, cy - r, cx + dx + r, cy + r), fill=(250, 250, 250), outline=(30, 30, 30), width=2)
    return np.asarray(world).copy()


def render_cel_shapes(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Flat-shaded outlined shapes moving smoothly over a panning cartoon landscape."""
    world = _cartoon_world(rng, w * 2, h, params.get("photo"))
    pan = smooth_path(rng, n, w)
    sprites = []
    for _ in range(int(rng.integers(3, 7))):
        size, fill, kind = int(rng.integers(h // 8, h // 3)), color(rng), int(rng.integers(0, 3))

        def draw(d: ImageDraw.ImageDraw, s: int, fill: tuple = fill, kind: int = kind) -> None:
            box = (3, 3, s - 4, s - 4)
            if kind == 0:
                d.ellipse(box, fill=fill, outline=(0, 0, 0), width=3)
            elif kind == 1:
                d.rounded_rectangle(box, radius=s // 5, fill=fill, outline=(0, 0, 0), width=3)
            else:
                d.regular_polygon((s / 2, s / 2, s / 2 - 4), 5, fill=fill, outline=(0, 0, 0))

        sprites.append((*sprite(draw, size), smooth_path(rng, n, w - size), smooth_path(rng, n, h - size)))
    for i in range(n):
        x = int(pan[i])
        frame = world[:, x : x + w].copy()
        for img, mask, px, py in sprites:
            paste(frame, img, mask, int(px[i]), int(py[i]))
        yield add_noise(frame, rng, params["noise"]) if params["noise"] else frame


def render_characters(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Simple cartoon characters (body, head, eyes) hopping across a flat scene."""
    world = _cartoon_world(rng, w, h, params.get("photo"))
    chars = []
    for _ in range(int(rng.integers(2, 5))):
        s, body, skin = int(rng.integers(h // 5, h // 2.5)), color(rng), color(rng, 150, 255)

        def draw(d: ImageDraw.ImageDraw, s: int, body: tuple = body, skin: tuple = skin) -> None:
            d.ellipse((s * 0.2, s * 0.45, s * 0.8, s - 3), fill=body, outline=(0, 0, 0), width=3)
            d.ellipse((s * 0.28, 3, s * 0.72, s * 0.5), fill=skin, outline=(0, 0, 0), width=3)
            for ex in (0.4, 0.58):
                d.ellipse((s * ex - 4, s * 0.2, s * ex + 4, s * 0.3), fill=(255, 255, 255), outline=(0, 0, 0))
                d.ellipse((s * ex - 1, s * 0.23, s * ex + 2, s * 0.28), fill=(0, 0, 0))

        speed, phase = rng.uniform(0.5, 2.5) * rng.choice([-1, 1]), rng.uniform(0, w)
        hop_f, y0 = rng.uniform(1, 3), rng.uniform(h * 0.45, h * 0.6)
        chars.append((*sprite(draw, s), speed, phase, hop_f, y0))
    for i in range(n):
        frame = world.copy()
        for img, mask, speed, phase, hop_f, y0 in chars:
            x = (phase + speed * i) % (w + img.shape[1]) - img.shape[1]
            y = y0 - abs(math.sin(i / 25 * hop_f * math.pi)) * h * 0.15
            paste(frame, img, mask, int(x), int(y))
        yield add_noise(frame, rng, params["noise"]) if params["noise"] else frame


def render_cgi_balls(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Smoothly shaded 'CGI' spheres orbiting over a gradient, like a rendered intro."""
    bg = vertical_gradient(w, h, color(rng, 0, 120), color(rng, 60, 200))
    balls = []
    for _ in range(int(rng.integers(3, 8))):
        r = int(rng.integers(h // 12, h // 5))
        normals, inside = sphere_normals(r)
        xx, yy, zz = normals[..., 0], normals[..., 1], normals[..., 2]
        shade = np.clip(zz * 0.8 - 0.3 * (xx + yy) + 0.3, 0.1, 1.2)
        img = np.clip(shade[..., None] * np.array(color(rng), np.float32), 0, 255).astype(np.uint8)
        cx, cy = rng.uniform(0.2 * w, 0.8 * w), rng.uniform(0.2 * h, 0.8 * h)
        rad, f, p = rng.uniform(0.1, 0.35) * min(w, h), rng.uniform(0.5, 2) / n * 2 * np.pi, rng.uniform(0, 2 * np.pi)
        balls.append((img, inside, cx, cy, rad, f, p, r))
    for i in range(n):
        frame = bg.copy()
        for img, inside, cx, cy, rad, f, p, r in balls:
            paste(frame, img, inside, int(cx + rad * math.cos(f * i + p)) - r, int(cy + rad * math.sin(f * i + p)) - r)
        yield add_noise(frame, rng, params["noise"]) if params["noise"] else frame


# --------------------------------------------------------------- flat content

def render_slides(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Presentation slides: title, bullets appearing one by one, a slide change every few seconds."""
    bg, accent, ink = color(rng, 215, 256), color(rng, 0, 160), color(rng, 0, 70)
    per_slide = int(rng.integers(60, 150))
    slides = []
    for _ in range(n // per_slide + 1):
        bullets = [sentence(rng, int(rng.integers(2, 5))) for _ in range(int(rng.integers(2, 5)))]
        stages = []
        for k in range(len(bullets) + 1):
            img = Image.new("RGB", (w, h), bg)
            d = ImageDraw.Draw(img)
            d.rectangle((0, 0, w, h // 6), fill=accent)
            d.text((w // 20, h // 24), sentence(rng, 2) if k == 0 else stages[0][1], font=font(max(h // 14, 8), bold=True), fill=(255, 255, 255))
            for j, b in enumerate(bullets[:k]):
                d.text((w // 12, h // 4 + j * h // 8), "• " + b, font=font(max(h // 20, 7)), fill=ink)
            if params["photo"] is not None:  # confuser: a photograph on the slide
                ph = photos()[params["photo"]]
                pw, phh = int(w * params["photo_scale"]), int(h * params["photo_scale"])
                img.paste(Image.fromarray(resize(ph, pw, phh)), (w - pw - w // 20, h - phh - h // 12))
            stages.append((np.asarray(img).copy(), stages[0][1] if stages else sentence(rng, 2)))
        slides.append([s[0] for s in stages])
    for i in range(n):
        stages = slides[i // per_slide]
        k = min(len(stages) - 1, (i % per_slide) * len(stages) // per_slide + 1)
        yield stages[k]


def render_code_scroll(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """An editor with syntax-coloured code scrolling slowly, line numbers fixed."""
    dark = bool(rng.integers(0, 2))
    bg, fg = ((30, 30, 36), (220, 220, 210)) if dark else ((250, 250, 245), (30, 30, 40))
    fs = max(h // 22, 7)
    lines = int(n * params["speed"] / (fs + 3)) + h // (fs + 3) + 2
    page = Image.new("RGB", (w, (fs + 3) * lines), bg)
    d = ImageDraw.Draw(page)
    kw_color = (200, 120, 255) if dark else (160, 0, 160)
    for j in range(lines):
        text = str(rng.choice(CODE_LINES))
        color = kw_color if text.lstrip().split(" ")[0] in ("def", "class", "import", "if", "return") else fg
        d.text((w // 8, j * (fs + 3)), text, font=font(fs, mono=True), fill=color)
        d.text((4, j * (fs + 3)), f"{j + 1:3d}", font=font(fs, mono=True), fill=(128, 128, 128))
    page = np.asarray(page)
    for i in range(n):
        y = int(i * params["speed"])
        yield np.ascontiguousarray(page[y : y + h])


def render_spreadsheet(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A spreadsheet grid with a bar chart; a cell selection moves and values change now and then."""
    rows, cols = int(rng.integers(8, 14)), int(rng.integers(4, 7))
    ch, cw = h // rows, (w // 2) // cols
    values = rng.integers(1, 99, (rows, cols))
    bar_color = color(rng, 0, 200)

    def draw_sheet(vals: np.ndarray, sel: tuple[int, int]) -> np.ndarray:
        img = Image.new("RGB", (w, h), (255, 255, 255))
        d = ImageDraw.Draw(img)
        for r in range(rows):
            for c in range(cols):
                box = (c * cw, r * ch, (c + 1) * cw, (r + 1) * ch)
                d.rectangle(box, outline=(200, 200, 200), fill=(210, 230, 255) if (r, c) == sel else None)
                d.text((box[0] + 2, box[1] + 1), str(vals[r, c]), font=font(max(ch - 6, 6)), fill=(0, 0, 0))
        base, bw = h - 10, (w // 2 - 20) // rows
        for r in range(rows):  # bar chart of column 0
            d.rectangle((w // 2 + 10 + r * bw, base - vals[r, 0] * (h - 30) // 100, w // 2 + 8 + (r + 1) * bw, base), fill=bar_color)
        d.line((w // 2 + 8, base, w - 5, base), fill=(0, 0, 0))
        return np.asarray(img).copy()

    frame, sel = draw_sheet(values, (0, 0)), (0, 0)
    for i in range(n):
        if i % int(params["edit_every"]) == 0 and i:
            sel = (int(rng.integers(rows)), int(rng.integers(cols)))
            values[sel] = rng.integers(1, 99)
            frame = draw_sheet(values, sel)
        yield frame


def _wallpaper(rng: np.random.Generator, w: int, h: int, photo: int | None) -> np.ndarray:
    """A desktop background: a photograph (the confuser), a plain gradient, or the streaked abstract kind
    desktops ship (vertical bands of light over a dark gradient)."""
    if photo is not None:
        return resize(photos()[photo], w, h)
    base = vertical_gradient(w, h, color(rng, 0, 120), color(rng, 0, 120))
    if rng.uniform() < 0.5:
        return base
    streaks = np.zeros(w, np.float32)
    for _ in range(int(rng.integers(6, 20))):
        streaks += rng.uniform(10, 50) * np.exp(-(((np.arange(w) - rng.uniform(0, w)) / rng.uniform(2, w / 10)) ** 2))
    return np.clip(base + streaks[None, :, None], 0, 255).astype(np.uint8)


def _dialog(rng: np.random.Generator, d: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """A settings dialog: a header, labelled rows of switches, fields and drop-downs, a button or two."""
    x0, y0, x1, y1 = box
    d.rectangle(box, fill=color(rng, 235, 250), outline=(90, 90, 90))
    d.rectangle((x0, y0, x1, y0 + 14), fill=color(rng, 200, 235))
    d.text((x0 + 6, y0 + 2), sentence(rng, 1), font=font(9, bold=True), fill=(30, 30, 30))
    accent = color(rng, 20, 200)
    y = y0 + 22
    while y < y1 - 26:
        d.text((x0 + 6, y), sentence(rng, 2), font=font(9), fill=(40, 40, 40))
        kind, right = int(rng.integers(3)), x1 - 8
        if kind == 0:  # a switch
            on = rng.uniform() < 0.5
            d.rounded_rectangle((right - 24, y, right, y + 11), radius=5, fill=accent if on else (180, 180, 180))
            d.ellipse((right - (11 if on else 24), y, right - (0 if on else 13), y + 11), fill=(250, 250, 250))
        else:  # a field or a drop-down
            d.rectangle((right - (x1 - x0) // 3, y, right, y + 12), fill=(255, 255, 255), outline=(150, 150, 150))
            if kind == 2:
                d.polygon([(right - 10, y + 4), (right - 4, y + 4), (right - 7, y + 8)], fill=(60, 60, 60))
        y += 18
    for k in range(int(rng.integers(1, 3))):
        bx = x1 - 8 - (k + 1) * 48
        d.rounded_rectangle((bx, y1 - 20, bx + 42, y1 - 6), radius=3, fill=accent if k == 0 else (220, 220, 220), outline=(120, 120, 120))


def render_desktop(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A desktop with text windows or settings dialogs and a moving mouse cursor; nearly static otherwise
    (the wallpaper may be a photograph, a gradient or abstract streaks)."""
    img = Image.fromarray(np.ascontiguousarray(_wallpaper(rng, w, h, params.get("photo"))))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0 if params.get("photo") is not None else 1, 4))):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1, y1 = x0 + int(rng.integers(w // 3, w // 1.5)), y0 + int(rng.integers(h // 3, h // 1.5))
        if rng.uniform() < 0.5:
            _dialog(rng, d, (x0, y0, x1, y1))
            continue
        d.rectangle((x0, y0, x1, y1), fill=(245, 245, 245), outline=(90, 90, 90))
        d.rectangle((x0, y0, x1, y0 + 14), fill=color(rng, 40, 160))
        for j in range(int(rng.integers(2, 6))):
            d.text((x0 + 6, y0 + 20 + j * 14), sentence(rng, 3), font=font(10), fill=(20, 20, 20))
    d.rectangle((0, h - 16, w, h), fill=(40, 40, 50))
    desktop = np.asarray(img).copy()
    pointer, pointer_mask = cursor()
    cx, cy = smooth_path(rng, n, w - 14, 3.0), smooth_path(rng, n, h - 14, 3.0)
    for i in range(n):
        frame = desktop.copy()
        paste(frame, pointer, pointer_mask, int(cx[i]), int(cy[i]))
        yield frame


# --------------------------------------------------------------------- gaming


def _tile_map(rng: np.random.Generator, tiles_x: int, tiles_y: int, tile: int, photo_texture: int | None) -> np.ndarray:
    """A map of grass/water/wall/path tiles with per-tile texture (optionally photographic)."""
    palette = np.array([color(rng, 30, 120), color(rng, 0, 90), color(rng, 90, 180), color(rng, 150, 230)], np.int16)
    kinds = rng.choice(4, (tiles_y, tiles_x), p=[0.55, 0.15, 0.15, 0.15])
    world = np.repeat(np.repeat(palette[kinds], tile, 0), tile, 1)
    pattern = rng.integers(-18, 18, (tile, tile, 1)).astype(np.int16)  # the same pixel-art pattern per tile
    world = world + np.tile(pattern, (tiles_y, tiles_x, 1))
    if photo_texture is not None:
        tex = textures()[photo_texture].astype(np.int16)
        hh, ww = world.shape[:2]
        reps = (hh // tex.shape[0] + 1, ww // tex.shape[1] + 1, 1)
        world = (world * 0.4 + np.tile(tex, reps)[:hh, :ww] * 0.6).astype(np.int16)
    world[::tile] = world[::tile] * 0.6  # grid lines, as tile engines draw them
    world[:, ::tile] = world[:, ::tile] * 0.6
    return np.clip(world, 0, 255).astype(np.uint8)


def _hud(frame: np.ndarray, score: int, health: float, minimap: np.ndarray | None = None) -> None:
    """Score text, health bar and optional minimap drawn at fixed screen positions."""
    h, w = frame.shape[:2]
    frame[4:14, 4 : 4 + w // 4] = (60, 0, 0)
    frame[4:14, 4 : 4 + int(w // 4 * health)] = (230, 30, 30)
    label = score_label(score, max(h // 16, 8))
    frame[18 : 18 + label.shape[0], 4 : 4 + label.shape[1]][label > 0] = (255, 255, 80)
    if minimap is not None:
        mh, mw = minimap.shape[:2]
        frame[4 : 4 + mh, w - mw - 4 : w - 4] = minimap



def render_topdown(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A top-down tile level scrolling under a centred player, enemies, HUD and minimap fixed."""
    tile = int(rng.integers(12, 24))
    world = _tile_map(rng, (w * 2) // tile + 2, (h * 2) // tile + 2, tile, params["photo_texture"])
    mini = resize(world, w // 5, h // 5)
    px, py = smooth_path(rng, n, world.shape[1] - w), smooth_path(rng, n, world.shape[0] - h)
    hero, hmask = sprite(lambda d, s: d.ellipse((1, 1, s - 2, s - 2), fill=(255, 220, 0), outline=(0, 0, 0), width=2), tile)
    foe, fmask = sprite(lambda d, s: d.rectangle((2, 2, s - 3, s - 3), fill=(200, 0, 200), outline=(0, 0, 0), width=2), tile)
    foes = [(smooth_path(rng, n, world.shape[1]), smooth_path(rng, n, world.shape[0])) for _ in range(int(rng.integers(3, 8)))]
    score = 0
    for i in range(n):
        x, y = int(px[i]), int(py[i])
        frame = world[y : y + h, x : x + w].copy()
        for fx, fy in foes:
            paste(frame, foe, fmask, int(fx[i]) - x, int(fy[i]) - y)
        paste(frame, hero, hmask, w // 2 - tile // 2, h // 2 - tile // 2)
        score += int(rng.integers(0, 3) == 0) * 10
        m = mini.copy()
        m[int(y / world.shape[0] * m.shape[0]), int(x / world.shape[1] * m.shape[1])] = (255, 255, 255)
        _hud(frame, score, 0.4 + 0.6 * abs(math.cos(i / n * 3)), m)
        yield frame


def render_side_scroller(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A side-scrolling platformer: parallax sky, block platforms, coins, a jumping player, HUD."""
    tile = int(rng.integers(12, 20))
    length = w + int(n * params["speed"]) + tile
    if params.get("photo") is not None:  # a photographic backdrop (confuser)
        sky = resize(photos()[params["photo"]], length, h)
    else:
        sky = vertical_gradient(length, h, color(rng, 80, 200), color(rng, 150, 255))
    ground = _tile_map(rng, length // tile + 1, 3, tile, params["photo_texture"])[:, :length]
    level = sky.copy()
    level[h - ground.shape[0] :] = ground
    for _ in range(length // (tile * 6)):  # floating platforms with brick texture
        bx, by = int(rng.integers(0, length - tile * 4)), int(rng.integers(h // 3, h - ground.shape[0] - tile))
        level[by : by + tile, bx : bx + tile * int(rng.integers(2, 5))] = color(rng, 120, 200)
        level[by : by + tile : 4, bx : bx + tile * 4] = (60, 30, 10)
    coin, cmask = sprite(lambda d, s: d.ellipse((1, 1, s - 2, s - 2), fill=(255, 210, 0), outline=(120, 80, 0), width=2), tile // 2 + 4)
    hero, hmask = sprite(lambda d, s: d.rectangle((2, 0, s - 3, s - 1), fill=(220, 0, 0), outline=(0, 0, 0), width=2), tile)
    coins = [(int(rng.integers(0, length)), int(rng.integers(h // 4, h - tile * 4))) for _ in range(length // 40)]
    score = 0
    for i in range(n):
        x = int(i * params["speed"])
        frame = level[:, x : x + w].copy()
        for cx, cy in coins:
            if 0 <= cx - x < w:
                paste(frame, coin, cmask, cx - x, cy)
        jump = abs(math.sin(i / 18 * math.pi)) * h * 0.3
        paste(frame, hero, hmask, w // 3, int(h - ground.shape[0] - tile - jump))
        score += 5 * int(i % 15 == 0)
        _hud(frame, score, 1.0 - 0.5 * i / n)
        yield frame


def render_arena(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A dark arena shooter: bright projectiles, particles, crosshair, minimap and HUD."""
    floor = _tile_map(rng, w // 16 + 2, h // 16 + 2, 16, params["photo_texture"])[:h, :w] // 3
    bullets = rng.uniform(0, 1, (40, 4)) * np.array([w, h, 6, 6]) - np.array([0, 0, 3, 3])
    mini = np.full((h // 5, w // 5, 3), 20, np.uint8)
    mini[::4, ::4] = (0, 160, 0)
    score = 0
    for i in range(n):
        frame = floor.copy()
        pos = (bullets[:, :2] + bullets[:, 2:] * i) % np.array([w, h])
        for bx, by in pos.astype(int):
            frame[max(by - 1, 0) : by + 2, max(bx - 1, 0) : bx + 2] = (255, 255, 120)
        cx, cy = w // 2 + int(20 * math.sin(i / 10)), h // 2 + int(12 * math.cos(i / 13))
        frame[cy, max(cx - 8, 0) : cx + 9] = (0, 255, 0)
        frame[max(cy - 8, 0) : cy + 9, cx] = (0, 255, 0)
        score += int(rng.integers(0, 4) == 0)
        _hud(frame, score, 0.3 + 0.7 * (1 - i / n), mini)
        yield frame


# -------------------------------------------------------------------- natural


def _camera_crops(rng: np.random.Generator, photo: np.ndarray, w: int, h: int, n: int, params: dict) -> Frames:
    """A virtual camera over a photograph: pan, zoom, shake, light drift, motion blur, noise."""
    ph, pw = photo.shape[:2]
    scale = max(w / pw, h / ph) * rng.uniform(1.3, 1.8)
    big = resize(photo, int(pw * scale) + 2, int(ph * scale) + 2).astype(np.float32)
    bh, bw = big.shape[:2]
    zoom = 1 + params["zoom"] * np.linspace(0, 1, n) ** (1 if rng.uniform() < 0.5 else 2)
    x_path, y_path = smooth_path(rng, n, 1.0), smooth_path(rng, n, 1.0)
    shake = np.cumsum(rng.normal(0, params["shake"], (n, 2)), 0) * 0.3 + rng.normal(0, params["shake"], (n, 2))
    light = 1 + params["light"] * np.sin(np.linspace(0, rng.uniform(1, 4), n) + rng.uniform(0, 6))
    prev = None
    noise = SensorNoise(rng, params["noise"], (h, w, 3))
    for i in range(n):
        cw, ch = int(w / zoom[i] * 1.0), int(h / zoom[i] * 1.0)
        cw, ch = min(cw, bw), min(ch, bh)
        x = int(np.clip(x_path[i] * (bw - cw) + shake[i, 0], 0, bw - cw))
        y = int(np.clip(y_path[i] * (bh - ch) + shake[i, 1], 0, bh - ch))
        crop = big[y : y + ch, x : x + cw]
        frame = crop if (cw, ch) == (w, h) else np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32)
        frame = frame * light[i]
        if params["blur"] and prev is not None:  # motion blur: blend with the previous exposure
            frame = 0.6 * frame + 0.4 * prev
        prev = frame
        out = np.clip(frame + noise(), 0, 255).astype(np.uint8)
        if params["posterize"]:  # confuser: flat-shaded look on a real photo
            out = (out // 64) * 64 + 32
        if params.get("subtitle"):  # confuser: text on screen, as in news and lectures
            band = slice(h - h // 6, h - h // 30)
            out[band] = out[band] // 3
            label = score_label(int(params["subtitle"]) + i // 50, max(h // 14, 8))
            lh, lw = min(label.shape[0], h // 8), min(label.shape[1], w - 8)
            out[h - h // 6 + 2 : h - h // 6 + 2 + lh, 8 : 8 + lw][label[:lh, :lw] > 0] = 255
        yield out


def render_camera(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A camera over one real photograph; its parameters make it a slow documentary pan/zoom
    (``photo_pan``) or shaky, noisy, blurred handheld footage (``handheld``)."""
    yield from _camera_crops(rng, photos()[params["photo"]], w, h, n, params)


def render_scene_cuts(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Edited footage: several real photographs as shots, each with its own camera move."""
    shots = int(rng.integers(2, 5))
    bounds = np.linspace(0, n, shots + 1).astype(int)
    for s in range(shots):
        photo = photos()[int(rng.integers(len(photos())))]
        yield from _camera_crops(rng, photo, w, h, int(bounds[s + 1] - bounds[s]), params)


# --------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Subcategory:
    category: str
    name: str
    render: Renderer
    sample_params: Callable[[np.random.Generator, float], dict] = field(default=lambda rng, d: {})  # (rng, difficulty)


def _cartoon_confusers(rng: np.random.Generator, d: float) -> dict:
    """Sensor noise and a live-action photo behind the cartoon (each 30% at difficulty 0.5)."""
    return {"noise": float(rng.uniform(6, 14)) if rng.uniform() < scaled(0.3, d) else 0.0, "photo": _photo_or_none(rng, scaled(0.3, d))}


def _photo_or_none(rng: np.random.Generator, p: float) -> int | None:
    return int(rng.integers(len(photos()))) if rng.uniform() < p else None


def _texture_or_none(rng: np.random.Generator, p: float) -> int | None:
    return int(rng.integers(len(textures()))) if rng.uniform() < p else None


def _camera_params(rng: np.random.Generator, d: float, shake: tuple, noise: tuple, blur_p: float, zoom: tuple) -> dict:
    """A camera's motion and sensor; harder footage moves less (a still shot reads like a slide) and is posterised more."""
    calm = 1.25 - 0.75 * d
    return {
        "photo": int(rng.integers(len(photos()))),
        "shake": float(rng.uniform(*shake)) * calm,
        "noise": float(rng.uniform(*noise)),
        "light": float(rng.uniform(0.02, 0.15)),
        "blur": bool(rng.uniform() < blur_p),
        "zoom": float(rng.uniform(*zoom)),
        "posterize": bool(rng.uniform() < scaled(0.2, d)),
        "subtitle": int(rng.integers(1, 9999)) if rng.uniform() < scaled(0.3, d) else 0,
    }


CATALOG: tuple[Subcategory, ...] = (
    Subcategory("animation", "cel_shapes", render_cel_shapes, _cartoon_confusers),
    Subcategory("animation", "characters", render_characters, _cartoon_confusers),
    Subcategory("animation", "cgi_balls", render_cgi_balls, lambda rng, d: {"noise": float(rng.uniform(6, 14)) if rng.uniform() < scaled(0.4, d) else 0.0}),
    Subcategory("flat_content", "slides", render_slides, lambda rng, d: {"photo": _photo_or_none(rng, scaled(0.5, d)), "photo_scale": float(rng.uniform(0.3, 0.3 + 0.6 * d))}),
    Subcategory("flat_content", "code_scroll", render_code_scroll, lambda rng, d: {"speed": float(rng.uniform(0.3, 1.5))}),
    Subcategory("flat_content", "spreadsheet", render_spreadsheet, lambda rng, d: {"edit_every": int(rng.integers(15, 60))}),
    Subcategory("flat_content", "desktop", render_desktop, lambda rng, d: {"photo": _photo_or_none(rng, scaled(0.5, d))}),
    Subcategory("gaming", "topdown", render_topdown, lambda rng, d: {"photo_texture": _texture_or_none(rng, scaled(0.5, d))}),
    Subcategory("gaming", "side_scroller", render_side_scroller, lambda rng, d: {"photo_texture": _texture_or_none(rng, scaled(0.35, d)), "speed": float(rng.uniform(1, 4)) * (1.25 - 0.75 * d), "photo": _photo_or_none(rng, scaled(0.4, d))}),
    Subcategory("gaming", "arena", render_arena, lambda rng, d: {"photo_texture": _texture_or_none(rng, scaled(0.35, d))}),
    Subcategory("natural_content", "photo_pan", render_camera, lambda rng, d: _camera_params(rng, d, (0, 0.5), (0, 4), 0.2, (0, 0.4))),
    Subcategory("natural_content", "handheld", render_camera, lambda rng, d: _camera_params(rng, d, (1, 4), (3, 10), 0.6, (0, 0.15))),
    Subcategory("natural_content", "scene_cuts", render_scene_cuts, lambda rng, d: _camera_params(rng, d, (0, 2), (0, 6), 0.3, (0, 0.3))),
    # modelled on kinds of real footage the renderers above missed (research.data.lifelike, games, screens)
    Subcategory("animation", "gl_objects", lifelike.render_gl_objects, lifelike.gl_objects_params),
    Subcategory("animation", "visualiser", lifelike.render_visualiser, lifelike.visualiser_params),
    Subcategory("animation", "scene3d", raytrace.render_scene3d, raytrace.scene3d_params),
    Subcategory("flat_content", "terminal", screens.render_terminal, screens.terminal_params),
    Subcategory("flat_content", "document", screens.render_document, screens.document_params),
    Subcategory("flat_content", "test_card", screens.render_test_card, screens.test_card_params),
    Subcategory("flat_content", "diagram", screens.render_diagram, screens.diagram_params),
    Subcategory("gaming", "board_game", games.render_board_game, games.board_game_params),
    Subcategory("gaming", "card_game", games.render_card_game, games.card_game_params),
    Subcategory("gaming", "bubble_shooter", games.render_bubble_shooter, games.bubble_shooter_params),
    Subcategory("natural_content", "fixed_camera", lifelike.render_fixed_camera, lifelike.fixed_camera_params),
)


def subcategories(category: str) -> list[Subcategory]:
    return [s for s in CATALOG if s.category == category]


# --------------------------------------------------------------------- writing


@dataclass(frozen=True)
class VideoJob:
    split: str
    category: str
    subcategory: str
    index: int
    seed: int
    min_seconds: float
    max_seconds: float
    difficulty: tuple[float, float] = (0.0, 1.0)  # each video draws its own level uniformly from this range

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.category}/{self.subcategory}/{self.subcategory}_{self.index:04d}.mp4"


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar YUV 4:2:0 as one ``[H*3/2, W]`` array, in integers.

    Exact integer arithmetic (the classic fixed-point formula) rather than swscale or
    floats, so the encoder's input is bit-identical on every run and machine.
    """
    x = rgb.astype(np.uint16)
    h, w = x.shape[:2]
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16  # <= 56228: fits uint16
    # Chroma from 2x2 block sums (4x the mean), in int32 for the signed coefficients.
    blocks = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]).astype(np.int32)
    rs, gs, bs = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    planes = np.concatenate([y, u.reshape(h // 4, w), v.reshape(h // 4, w)])
    return np.clip(planes, 0, 255).astype(np.uint8)


def _yuv_frame(planes: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame over our own buffer, followed by zeroed slack.

    x264 reads past the picture (rows up to the next multiple of 16, SIMD overreads);
    with ffmpeg-allocated frames those bytes are uninitialised heap, which leaked into
    the bitstream and broke byte-identical output. Zero-copy over a buffer with
    zeros after the planes makes every byte the encoder can read deterministic.
    """
    slack = 32 * planes.shape[1] + 4096
    buffer = np.zeros(planes.size + slack, np.uint8)
    view = buffer[: planes.size].reshape(planes.shape)
    view[:] = planes
    return av.VideoFrame.from_numpy_buffer(view, format="yuv420p")


def write_video(path: Path, frames: Frames, width: int, height: int, fps: int, qp: int = 26) -> int:
    """Encode RGB frames to H.264/yuv420p, byte-identically for identical frames.

    Byte-identical output needed three things, each found by a failing test: our own
    integer RGB->YUV conversion (swscale/numpy-float results varied with memory
    alignment), frames over our own zero-padded buffer (x264 reads past the picture),
    and single-threaded constant-QP x264 without mbtree/AQ, whose float rate control
    gave different decisions once torch had run in the same process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    count = 0
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "qp": str(qp), "threads": "1", "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0:aq-mode=0"}
        stream.codec_context.thread_count = 1  # parallelism is over videos, not inside one
        for frame in frames:
            yuv = _yuv_frame(rgb_to_yuv420p(frame))
            for packet in stream.encode(yuv):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return count


def make_video(job: VideoJob, root: Path) -> dict:
    """Render and encode one video; returns its manifest row."""
    sub = next(s for s in CATALOG if s.category == job.category and s.name == job.subcategory)
    key = [job.seed, SPLITS.index(job.split), CATEGORIES.index(job.category), CATALOG.index(sub), job.index]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    fps = int(rng.choice(FPS_CHOICES))
    seconds = float(rng.uniform(job.min_seconds, job.max_seconds))
    n_frames = max(int(round(seconds * fps)), 1)
    lo, hi = job.difficulty
    difficulty = float(lo + (hi - lo) * rng.uniform())
    params = sub.sample_params(rng, difficulty)
    overlays = overlay_params(rng, difficulty, job.category)
    rendered = sub.render(rng, width, height, n_frames, params)
    frames = (np.ascontiguousarray(f, dtype=np.uint8) for f in apply_overlays(rendered, rng, overlays, width, height))
    written = write_video(root / job.relpath, frames, width, height, fps, qp=overlays["qp"])
    return {
        "path": job.relpath, "split": job.split, "category": job.category, "label": CATEGORIES.index(job.category),
        "subcategory": job.subcategory, "difficulty": round(difficulty, 4), "width": width, "height": height, "fps": fps,
        "frames": written, "seconds": round(written / fps, 3), "params": json.dumps(params | {"overlays": overlays}, sort_keys=True),
    }


def plan_jobs(videos_per_class: int, seed: int, fractions: tuple[float, float, float], min_seconds: float, max_seconds: float, difficulty: tuple[float, float] = (0.0, 1.0)) -> list[VideoJob]:
    """Split each class's videos over train/val/test (each at least one), round-robin over its subcategories.

    The round-robin runs across the splits, so even a tiny set covers every subcategory
    once it has as many videos per class as the class has subcategories.
    """
    if not 0 <= difficulty[0] <= difficulty[1] <= 1:
        raise UserError(f"difficulty range {difficulty}: needs 0 <= LO <= HI <= 1")
    if videos_per_class < len(SPLITS):
        raise UserError(f"videos_per_class={videos_per_class}: at least {len(SPLITS)} are needed, one per split")
    counts = [max(1, round(videos_per_class * f)) for f in fractions[1:]]
    counts.insert(0, videos_per_class - sum(counts))
    if counts[0] < 1:
        raise UserError(f"videos_per_class={videos_per_class} leaves no training videos with fractions {fractions}")
    most = max(len(subcategories(c)) for c in CATEGORIES)
    if videos_per_class < most:
        log.warning("%d videos per class cannot cover all %d subcategories of every class", videos_per_class, most)
    jobs = []
    for category in CATEGORIES:
        subs = subcategories(category)
        k = 0  # the class's video counter across splits
        for split, count in zip(SPLITS, counts, strict=True):
            for i in range(count):
                jobs.append(VideoJob(split, category, subs[k % len(subs)].name, i, seed, min_seconds, max_seconds, difficulty))
                k += 1
    return jobs


def generate(
    out: str | Path,
    videos_per_class: int = 40,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    min_seconds: float = 3.0,
    max_seconds: float = 12.0,
    difficulty: tuple[float, float] = (0.0, 1.0),
    workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Write the dataset, ``manifest.csv`` and ``generator.json`` under ``out``; returns the manifest rows."""
    root = Path(out)
    recipe = generator_settings(videos_per_class, seed, fractions, min_seconds, max_seconds, difficulty)
    jobs = plan_jobs(videos_per_class, seed, fractions, min_seconds, max_seconds, tuple(difficulty))
    workers = workers or os.cpu_count() or 1
    rows: list[dict] = []
    with ProcessPoolExecutor(workers) as pool, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating videos", total=len(jobs))
        for row in pool.map(make_video, jobs, [root] * len(jobs), chunksize=1):
            rows.append(row)
            bar.advance(task)
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "generator.json").write_text(json.dumps(recipe, indent=2))
    return rows


def generator_settings(
    videos_per_class: int,
    seed: int,
    fractions: tuple[float, float, float],
    min_seconds: float,
    max_seconds: float,
    difficulty: tuple[float, float],
) -> dict:
    """Everything that determines a generated dataset (written to ``generator.json``)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "videos_per_class": videos_per_class,
        "seed": seed,
        "fractions": [float(f) for f in fractions],
        "seconds": [float(min_seconds), float(max_seconds)],
        "difficulty": [float(d) for d in difficulty],
    }


def read_generator_settings(root: str | Path) -> dict | None:
    path = Path(root) / "generator.json"
    return json.loads(path.read_text()) if path.is_file() else None


def read_manifest(root: str | Path) -> list[dict]:
    with (Path(root) / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def contact_sheet(root: str | Path, out: str | Path, thumb: int = 128) -> Path:
    """One middle frame per subcategory (its first video in any split), in a grid: categories × subcategories."""
    root = Path(root)
    per_cat = max(len(subcategories(c)) for c in CATEGORIES)
    label_w = 130
    sheet = Image.new("RGB", (label_w + per_cat * (thumb + 4), len(CATEGORIES) * (thumb + 18)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, category in enumerate(CATEGORIES):
        y = r * (thumb + 18)
        draw.text((4, y + thumb // 2), category, font=font(13, bold=True), fill=(0, 0, 0))
        for c, sub in enumerate(subcategories(category)):
            videos = sorted(root.glob(f"*/{category}/{sub.name}/*.mp4"))  # a small set may lack some subcategories
            x = label_w + c * (thumb + 4)
            draw.text((x, y + thumb + 2), sub.name, font=font(11), fill=(60, 60, 60))
            if not videos:
                continue
            with av.open(str(videos[0])) as container:
                stream = container.streams.video[0]
                frames = list(container.decode(stream))
            sheet.paste(frames[len(frames) // 2].to_image().resize((thumb, thumb)), (x, y))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


if __name__ == "__main__":  # the command line lives in research.commands; the library never imports it
    from research.commands import synthetic_main

    synthetic_main()
