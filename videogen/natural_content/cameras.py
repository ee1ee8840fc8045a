"""Camera footage over real photographs: a documentary pan and zoom, shaky handheld footage, edited
shots, a camera on a tripod (subcategories ``photo_pan``, ``handheld``, ``scene_cuts``, ``fixed_camera``).

Confusers: posterised shots (a flat-shaded look), subtitles; harder footage moves less, so a
still shot reads like a slide.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from videogen.difficulty import scaled
from videogen.drawing import Frames, SensorNoise, color, gaussian, paste, photos, resize, score_label, smooth_path


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
        frame = (
            crop
            if (cw, ch) == (w, h)
            else np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((w, h), Image.BILINEAR), np.float32)
        )
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


def render_fixed_camera(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A camera on a tripod (surveillance, lab bench, talking head): a still photographic scene, walkers
    crossing it, sensor noise; optionally old film or underwater colour."""
    scene = resize(photos()[params["photo"]], w, h).astype(np.float32)
    subjects = []
    for _ in range(params["subjects"]):  # walkers: a head over a body in muted clothing colours, soft-edged
        sw, sh = int(rng.integers(w // 40, w // 16)) + 3, int(rng.integers(h // 10, h // 4)) + 6
        person = Image.new("RGBA", (sw, sh), (0, 0, 0, 0))
        pd = ImageDraw.Draw(person)
        pd.ellipse((sw * 0.25, 0, sw * 0.75, sh * 0.18), fill=(*color(rng, 90, 200), 255))
        pd.rounded_rectangle(
            (0, sh * 0.17, sw - 1, sh * 0.62), radius=max(sw // 3, 1), fill=(*color(rng, 10, 120), 255)
        )
        pd.rectangle((sw * 0.15, sh * 0.6, sw * 0.85, sh - 1), fill=(*color(rng, 10, 80), 255))
        rgba = np.asarray(person.filter(ImageFilter.GaussianBlur(0.8)), np.float32)
        speed = rng.uniform(0.2, 1.5) * rng.choice([-1, 1])
        subjects.append(
            (
                rgba[..., :3],
                rgba[..., 3] > 100,
                speed,
                rng.uniform(0, w),
                rng.uniform(h * 0.35, h - sh),
                rng.uniform(0.5, 2),
            )
        )
    flicker = rng.uniform(0, 0.08) if params["look"] == "film" else 0.0
    noise = SensorNoise(rng, params["noise"], (h, w, 3))
    for i in range(n):
        frame = scene.copy()
        for patch, mask, speed, x0, y0, bob in subjects:
            x = int((x0 + speed * i) % (w + patch.shape[1]) - patch.shape[1])
            y = int(y0 + 2 * math.sin(i / 6 * bob))
            paste(frame, patch, mask, x, y)
        frame += noise()
        if params["look"] == "film":  # monochrome, grain, flicker and the odd scratch
            grey = frame.mean(-1, keepdims=True) * (1 + flicker * rng.standard_normal())
            frame = np.repeat(grey, 3, -1) + gaussian(rng, 9, (h, w, 1))
            if rng.uniform() < 0.3:
                frame[:, int(rng.integers(w))] += 60
        elif params["look"] == "underwater":  # red absorbed, blue-green haze
            frame = frame * np.array([0.45, 0.85, 1.0], np.float32) + np.array([0, 25, 45], np.float32)
        yield np.clip(frame, 0, 255).astype(np.uint8)


# --------------------------------------------------------------- parameters
# (rng, difficulty) -> the renderer's params; harder videos carry more of their class's confusers.


def _camera_params(rng: np.random.Generator, d: float, shake: tuple, noise: tuple, blur_p: float, zoom: tuple) -> dict:
    """A camera's motion and sensor; harder footage moves less (a still shot reads like a slide) and is
    posterised more."""
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


def photo_pan_params(rng: np.random.Generator, d: float) -> dict:
    return _camera_params(rng, d, (0, 0.5), (0, 4), 0.2, (0, 0.4))


def handheld_params(rng: np.random.Generator, d: float) -> dict:
    return _camera_params(rng, d, (1, 4), (3, 10), 0.6, (0, 0.15))


def scene_cuts_params(rng: np.random.Generator, d: float) -> dict:
    return _camera_params(rng, d, (0, 2), (0, 6), 0.3, (0, 0.3))


def fixed_camera_params(rng: np.random.Generator, d: float) -> dict:
    # harder: nothing moves through the scene, and it reads like a still slide
    return {
        "photo": int(rng.integers(len(photos()))),
        "subjects": int(rng.integers(0, 2 + round(3 * (1 - d)))),
        "noise": float(rng.uniform(1.5, 6)),
        "look": str(rng.choice(["plain", "plain", "film", "underwater"])),
    }
