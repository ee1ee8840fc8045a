"""3-D screensavers and music visualisers (subcategories ``gl_objects``, ``visualiser``).

Trained on the first catalogue only, the demo's ensemble scored 0.46-0.60 macro-F1 on the
real-footage benchmark (``benchmarks/real``): 3-D screensavers and music visualisers read as
camera footage, GNOME board and card games as slides or cartoons (``videogen.gaming.casual``),
terminals and manuals as camera footage (``videogen.flat_content.screens``), a fixed surveillance
camera as a side-scroller (``videogen.natural_content.cameras``). Each renderer draws one such kind
from first principles (no real footage is copied): here lit 3-D objects on black, a checkered floor
or deep water, and feedback visualisers.

Same contract as every renderer (``videogen.catalogue``): ``(rng, width, height, n_frames, params)
-> frames``, every random draw from the video's own RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from videogen.difficulty import scaled
from videogen.drawing import (
    Frames,
    color,
    paste,
    phong,
    photos,
    resize,
    smooth_path,
    sphere_normals,
    sprite,
    vertical_gradient,
)


def _rotation(a: float, b: float) -> np.ndarray:
    ca, sa, cb, sb = math.cos(a), math.sin(a), math.cos(b), math.sin(b)
    return np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]]) @ np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])


def _perspective_floor(rng: np.random.Generator, w: int, h: int) -> Callable[[float], np.ndarray]:
    """A checkered floor running to a horizon under a gradient sky, seen by a camera moving forward."""
    horizon = int(h * rng.uniform(0.25, 0.5))
    sky = vertical_gradient(w, horizon, color(rng, 0, 80), color(rng, 60, 200))
    tiles = np.array([color(rng, 20, 255), color(rng, 20, 255)], np.float32)
    rows = np.arange(h - horizon, dtype=np.float32)[:, None] + 1
    depth = h / rows  # distance of each floor row
    across = (np.arange(w, dtype=np.float32)[None, :] - w / 2) * depth / w * 4
    fog = np.clip(1.4 - depth / 12, 0.25, 1)[..., None]

    def frame(t: float) -> np.ndarray:
        checker = (np.floor(across + 0.5 * math.sin(t / 7)).astype(int) + np.floor(depth + t).astype(int)) % 2
        floor = tiles[checker] * fog
        return np.concatenate([sky, floor.astype(np.uint8)])

    return frame


def _fish(size: int, shade: tuple) -> tuple[np.ndarray, np.ndarray]:
    def draw(d: ImageDraw.ImageDraw, s: int) -> None:
        d.ellipse((s * 0.1, s * 0.38, s * 0.75, s * 0.62), fill=shade)
        d.polygon([(s * 0.7, s * 0.5), (s * 0.98, s * 0.3), (s * 0.98, s * 0.7)], fill=shade)

    return sprite(draw, size)


_METALS = ((212, 196, 120), (190, 190, 200), (176, 120, 70), (150, 170, 210))


def _banded_sphere(normals: np.ndarray, angles: np.ndarray, palette: np.ndarray, bands: int) -> np.ndarray:
    """A lit sphere painted with longitude bands and hemispheres, turned by ``angles`` (two axes)."""
    rotated = normals @ _rotation(*angles).T  # body coordinates of each visible point
    band = ((np.arctan2(rotated[..., 0], rotated[..., 2]) / math.pi + 1) * bands / 2).astype(int)
    band += (rotated[..., 1] > 0).astype(int)
    return phong(normals, palette[band % len(palette)], 24).astype(np.uint8)


def _gear(r: int, teeth: int, angle: float, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A toothed wheel at ``angle`` with a darker extruded side and hub, lit from above: (image, mask)."""
    size = 2 * r + 1
    layer, mask = Image.new("RGB", (size, size)), Image.new("L", (size, size))
    pts = []
    for k in range(teeth * 4):
        radius = r if (k // 2) % 2 == 0 else r * 0.78
        a = angle + 2 * math.pi * k / (teeth * 4)
        pts.append((r + radius * math.cos(a), r + radius * math.sin(a)))
    side = [(px + 3, py + 3) for px, py in pts]
    c = tuple(int(v) for v in base)
    dark = tuple(int(v * 0.45) for v in c)
    draw = ImageDraw.Draw(layer)
    draw.polygon(side, fill=dark)
    draw.polygon(pts, fill=c)
    draw.ellipse((r * 0.7, r * 0.7, r * 1.3, r * 1.3), fill=dark)
    ImageDraw.Draw(mask).polygon(side, fill=255)
    ImageDraw.Draw(mask).polygon(pts, fill=255)
    shade = np.linspace(1.25, 0.7, size, dtype=np.float32)[:, None, None]
    return np.clip(np.asarray(layer, np.float32) * shade, 0, 255).astype(np.uint8), np.asarray(mask) > 127


def render_gl_objects(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A 3-D screensaver: lit, rotating, banded spheres and spinning gears over black, a dark gradient, a
    checkered floor running to the horizon, deep water with fish or, as a confuser, a photograph."""
    backdrop = params["backdrop"]
    bg = np.zeros((h, w, 3), np.uint8)
    floor = _perspective_floor(rng, w, h) if backdrop == "floor" else None
    fish = []
    if backdrop == "gradient":
        bg[:] = (np.linspace(0, 1, h)[:, None, None] * np.array(color(rng, 0, 90))).astype(np.uint8)
    elif backdrop == "deep":
        bg = vertical_gradient(w, h, (10, 60, 140), (0, 10, 40))
        for _ in range(int(rng.integers(4, 12))):
            shark = _fish(int(rng.integers(h // 20, h // 8)), (40, 50, 70))
            fish.append((*shark, rng.uniform(-1.5, -0.3), rng.uniform(0, w), rng.uniform(0.1, 0.9) * h))
    elif backdrop == "photo":  # confuser: 3-D objects over a real photograph
        bg = resize(photos()[params["photo"]], w, h) // 2
    objects = []
    for _ in range(params["objects"]):
        r = int(rng.integers(h // 12, h // 4))
        if rng.uniform() < 0.4:  # polished metal, as the GL demos draw gears
            palette = np.array([_METALS[int(rng.integers(len(_METALS)))]], np.float32)
        else:
            palette = np.array([color(rng, 30, 255) for _ in range(int(rng.integers(1, 4)))], np.float32)
        spin = rng.uniform(0.02, 0.12, 2) * rng.choice([-1, 1], 2)
        objects.append(
            {
                "kind": "gear" if rng.uniform() < params["gears"] else "sphere",
                "r": r,
                "palette": palette,
                "bands": int(rng.integers(3, 9)),
                "spin": spin,
                "teeth": int(rng.integers(8, 20)),
                "x": smooth_path(rng, n, max(w - 2 * r, 1), 2.5),
                "y": smooth_path(rng, n, max(h - 2 * r, 1), 2.5),
                "sphere": sphere_normals(r),  # (normals, disc)
            }
        )
    for i in range(n):
        frame = floor(i * params["speed"]) if floor is not None else bg.copy()
        for img, mask, speed, x0, y0 in fish:
            paste(frame, img, mask, int((x0 + speed * i) % (w + img.shape[1]) - img.shape[1]), int(y0))
        for o in objects:
            r, x, y = o["r"], int(o["x"][i]), int(o["y"][i])
            if o["kind"] == "sphere":
                normals, disc = o["sphere"]
                paste(frame, _banded_sphere(normals, o["spin"] * i, o["palette"], o["bands"]), disc, x, y)
            else:
                paste(frame, *_gear(r, o["teeth"], o["spin"][0] * i * 3, o["palette"][0]), x, y)
        yield frame


def render_visualiser(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A music visualiser: a plasma of colour fields under zooming, rotating feedback and an oscilloscope trace."""
    sw, sh = max(w // 4, 8), max(h // 4, 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    freqs = rng.uniform(0.05, 0.3, 4)
    phases = rng.uniform(0, 2 * np.pi, 3)
    feedback = np.zeros((h, w, 3), np.float32)
    zoom, turn = rng.uniform(1.01, 1.06), rng.uniform(-2, 2)
    for i in range(n):
        t = i * params["speed"]
        v = np.sin(xx * freqs[0] + t) + np.sin(yy * freqs[1] - t * 0.7) + np.sin((xx + yy) * freqs[2] + t * 1.3)
        v += np.sin(np.hypot(xx - sw / 2, yy - sh / 2) * freqs[3] - t)
        plasma = np.stack([np.sin(v * math.pi / 2 + p) for p in phases], -1) * 127 + 128
        plasma = np.asarray(Image.fromarray(plasma.astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32)
        previous = Image.fromarray(feedback.astype(np.uint8)).rotate(turn, resample=Image.BILINEAR)
        pw, ph = int(w * zoom), int(h * zoom)
        previous = previous.resize((pw, ph), Image.BILINEAR).crop(
            ((pw - w) // 2, (ph - h) // 2, (pw - w) // 2 + w, (ph - h) // 2 + h)
        )
        feedback = 0.82 * np.asarray(previous, np.float32) + params["plasma"] * plasma
        trace = Image.fromarray(np.clip(feedback, 0, 255).astype(np.uint8))
        wave = [(x, h / 2 + h / 4 * math.sin(x / w * 12 + t * 3) * math.sin(t + x / 37)) for x in range(0, w, 4)]
        ImageDraw.Draw(trace).line(wave, fill=color(rng, 150, 256), width=2)
        feedback = np.asarray(trace, np.float32)
        yield np.clip(feedback, 0, 255).astype(np.uint8)


# --------------------------------------------------------------- parameters
# (rng, difficulty) -> the renderer's params; harder videos carry more of their class's confusers.


def gl_objects_params(rng: np.random.Generator, d: float) -> dict:
    photo = rng.uniform() < scaled(0.1, d)  # 3-D objects over a photograph read like camera footage
    return {
        "backdrop": "photo" if photo else str(rng.choice(["black", "gradient", "floor", "deep"])),
        "speed": float(rng.uniform(0.02, 0.1)),
        "photo": int(rng.integers(len(photos()))),
        "objects": int(rng.integers(1, 5)),
        "gears": float(rng.uniform(0, 0.7)),
    }


def visualiser_params(rng: np.random.Generator, d: float) -> dict:
    return {"speed": float(rng.uniform(0.03, 0.15)), "plasma": float(rng.uniform(0.08, 0.3))}
