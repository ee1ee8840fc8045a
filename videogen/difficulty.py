"""Difficulty: one number per video in [0, 1] that scales every confuser the generator draws.

A video's difficulty ``d`` (drawn uniformly from the generator's ``--difficulty LO HI``
range and written to ``manifest.csv``) does two things:

- **the subcategory's own confusers** become more likely with ``d`` (``scaled``): a
  photograph behind a cartoon or on a slide, photographic textures in a game level,
  sensor noise on cel shading, a posterised camera shot, a slower, more static game;
- **class-agnostic overlays and degradations**, drawn here (``overlay_params``) and applied
  to any renderer's frames (``apply_overlays``): the picture shrunk into a window on black or
  on a desktop (how screen recordings show programs), subtitles, a channel logo, letterbox bars,
  a picture-in-picture window showing another class's kind of content, sensor noise,
  exposure drift, and stronger H.264 compression (the encoder's quantiser).

At ``d = 0`` a video has none of them; at ``d = 0.5`` the confusers appear with the base
rates the generator had before difficulty existed; at ``d = 1`` every one of them, at its
strongest. Test results can then be read as a curve over ``d`` instead of one number (the
research side reads the manifest's column back: ``studies.difficulty``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from videogen.drawing import Frames, SensorNoise, caption, photos

QP_EASY, QP_HARD = 20, 36  # x264 constant quantiser at d = 0 and d = 1 (26 before difficulty existed)


def scaled(p: float, d: float) -> float:
    """A confuser's probability at difficulty ``d``: 0 at 0, its base rate ``p`` at 0.5, certain at 1
    (linear in between)."""
    return 2.0 * p * d if d <= 0.5 else p + (1.0 - p) * (2.0 * d - 1.0)


def overlay_params(rng: np.random.Generator, d: float, category: str) -> dict:
    """The overlays one video gets, drawn from its own RNG (recorded in the manifest's params)."""
    natural = category == "natural_content"
    return {
        "qp": round(QP_EASY + (QP_HARD - QP_EASY) * d),
        "subtitle": int(rng.integers(1, 9999)) if rng.uniform() < scaled(0.3, d) else 0,
        "logo": int(rng.integers(4)) if rng.uniform() < scaled(0.25, d) else -1,  # corner 0-3
        "letterbox": float(rng.uniform(0.06, 0.14)) if rng.uniform() < scaled(0.2, d) else 0.0,
        # picture-in-picture: a UI panel over camera footage, a photograph over everything else
        "pip": (
            {
                "kind": "panel" if natural else "photo",
                "photo": int(rng.integers(len(photos()))),
                "scale": float(rng.uniform(0.2, 0.25 + 0.45 * d)),  # up to 70 % of the width
                "corner": int(rng.integers(4)),
            }
            if rng.uniform() < scaled(0.25, d)
            else None
        ),
        "noise": float(rng.uniform(2, 4 + 6 * d)) if not natural and rng.uniform() < scaled(0.2, d) else 0.0,
        "exposure": float(rng.uniform(0.05, 0.1 + 0.2 * d)) if rng.uniform() < scaled(0.2, d) else 0.0,
        # the whole picture in a window: real screen recordings of games, spreadsheets and viewers
        # leave the rest of the screen black or showing the desktop; what surrounds says nothing of the class
        "window": (
            {
                "scale": float(rng.uniform(0.85 - 0.35 * d, 0.9)),
                "x": float(rng.uniform()),
                "y": float(rng.uniform()),
                "surround": str(rng.choice(["black", "desktop"])),
            }
            if rng.uniform() < scaled(0.2, d)
            else None
        ),
    }


def _corner_box(corner: int, w: int, h: int, bw: int, bh: int, margin: int, bar: int) -> tuple[int, int]:
    """Top-left of a ``bw`` x ``bh`` box in a corner of the picture (inside letterbox bars of ``bar`` rows)."""
    x = margin if corner in (0, 2) else w - bw - margin
    y = bar + margin if corner in (0, 1) else h - bar - bh - margin
    return x, max(y, 0)


def _panel(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A flat UI panel (title bar, text lines, a button): screen content over camera footage."""
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, max(h // 7, 3)), fill=tuple(int(v) for v in rng.integers(20, 160, 3)))
    for j in range(1, 6):
        y = h * j // 7 + 4
        draw.rectangle((w // 10, y, w // 10 + int(rng.uniform(0.3, 0.8) * w), y + max(h // 20, 1)), fill=(60, 60, 70))
    draw.rectangle((w * 2 // 3, h - h // 6, w - w // 10, h - h // 20), fill=(40, 120, 220))
    return np.asarray(img).copy()


def _windowed(frame: np.ndarray, window: dict, surround: np.ndarray) -> np.ndarray:
    """``frame`` shrunk to ``window["scale"]`` of the picture and placed on ``surround``."""
    h, w = frame.shape[:2]
    ww, wh = max(int(w * window["scale"]), 8), max(int(h * window["scale"]), 8)
    x, y = int((w - ww) * window["x"]), int((h - wh) * window["y"])
    out = surround.copy()
    out[y : y + wh, x : x + ww] = np.asarray(Image.fromarray(frame).resize((ww, wh), Image.BILINEAR))
    return out


def _surround(kind: str, w: int, h: int) -> np.ndarray:
    if kind == "black":
        return np.zeros((h, w, 3), np.uint8)
    desktop = (np.linspace(60, 10, h)[:, None, None] * np.array([0.4, 0.6, 1.0])).astype(np.uint8)
    desktop = np.repeat(desktop, w, 1)
    desktop[: max(h // 20, 2)] = 30  # the top bar
    return desktop


def apply_overlays(
    frames: Frames,
    rng: np.random.Generator,
    params: dict,
    w: int,
    h: int,
) -> Frames:
    """Draw the video's overlays onto each frame."""
    bar = int(h * params["letterbox"])
    pip = params["pip"]
    inset = None
    if pip is not None:
        iw, ih = max(int(w * pip["scale"]), 8), max(int(h * pip["scale"]), 8)
        if pip["kind"] == "panel":
            inset = _panel(rng, iw, ih)
        else:
            inset = np.asarray(Image.fromarray(photos()[pip["photo"]]).resize((iw, ih), Image.BILINEAR)).copy()
        ix, iy = _corner_box(pip["corner"], w, h, iw, ih, max(w // 40, 2), bar)
    logo = None
    if params["logo"] >= 0:
        size = max(h // 10, 6)
        logo = np.zeros((size, size * 2), bool)
        logo[size // 4 : -size // 4, size // 4 : -size // 4] = True
        lx, ly = _corner_box(params["logo"], w, h, size * 2, size, max(w // 30, 2), bar)
    noise = SensorNoise(rng, params["noise"], (h, w, 3)) if params["noise"] else None
    window = params.get("window")
    surround = _surround(window["surround"], w, h) if window else None
    phase = rng.uniform(0, 2 * np.pi)
    for i, frame in enumerate(frames):
        if window:
            frame = _windowed(frame, window, surround)
        out = frame.astype(np.float32) if params["exposure"] or params["noise"] else frame.copy()
        if params["exposure"]:  # auto-exposure drift
            out *= 1 + params["exposure"] * np.sin(i / 40 + phase)
        if params["noise"]:
            out += noise()
        out = np.clip(out, 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out
        if inset is not None:
            out[iy : iy + inset.shape[0], ix : ix + inset.shape[1]] = inset
            out[iy : iy + inset.shape[0], ix : ix + 1] = 255  # a window border
        if logo is not None:  # a semi-transparent channel logo
            region = out[ly : ly + logo.shape[0], lx : lx + logo.shape[1]]
            region[logo] = (region[logo].astype(np.uint16) + 255) // 2
        if params["subtitle"]:
            text = caption(int(params["subtitle"]) + i // 60, max(h // 16, 8))
            th, tw = min(text.shape[0], h // 8), min(text.shape[1], w - 16)
            y0 = h - bar - th - max(h // 20, 2)
            out[y0 : y0 + th, 8 : 8 + tw][text[:th, :tw] > 0] = (255, 255, 230)
        if bar:
            out[:bar] = 0
            out[h - bar :] = 0
        yield out
