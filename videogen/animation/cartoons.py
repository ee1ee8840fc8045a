"""Cartoons and a rendered intro: cel-shaded shapes and characters over a cartoon landscape, shaded
spheres orbiting over a gradient (subcategories ``cel_shapes``, ``characters``, ``cgi_balls``).

Confusers: a live-action photograph as the sky, sensor noise on the cel shading.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from videogen.difficulty import scaled
from videogen.drawing import (
    Frames,
    add_noise,
    color,
    paste,
    photo_or_none,
    photos,
    resize,
    smooth_path,
    sphere_normals,
    sprite,
    vertical_gradient,
)


def _cartoon_world(rng: np.random.Generator, w: int, h: int, photo: int | None = None) -> np.ndarray:
    """A wide cel-shaded landscape: gradient sky, outlined hills, flat clouds.

    With ``photo``, the sky is a real photograph (cartoons composited on live action: a confuser).
    """
    sky = (
        resize(photos()[photo], w, h)
        if photo is not None
        else vertical_gradient(w, h, color(rng, 60, 200), color(rng, 150, 255))
    )
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
            draw.ellipse(
                (cx + dx - r, cy - r, cx + dx + r, cy + r), fill=(250, 250, 250), outline=(30, 30, 30), width=2
            )
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


# --------------------------------------------------------------- parameters
# (rng, difficulty) -> the renderer's params; harder videos carry more of their class's confusers.


def cartoon_params(rng: np.random.Generator, d: float) -> dict:
    """Sensor noise and a live-action photo behind the cartoon (each 30% at difficulty 0.5)."""
    return {
        "noise": float(rng.uniform(6, 14)) if rng.uniform() < scaled(0.3, d) else 0.0,
        "photo": photo_or_none(rng, scaled(0.3, d)),
    }


def cgi_balls_params(rng: np.random.Generator, d: float) -> dict:
    return {"noise": float(rng.uniform(6, 14)) if rng.uniform() < scaled(0.4, d) else 0.0}
