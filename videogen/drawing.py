"""Drawing resources and helpers every renderer shares: fonts, real photographs and textures that
ship inside installed packages (no download), random colours, sprites, smooth trajectories, text.

Every function that draws takes the video's own RNG, so a renderer stays a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Frames = Iterator[np.ndarray]  # what a renderer yields: RGB uint8 frames [H, W, 3]


@cache
def font(size: int, mono: bool = False, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu ships inside matplotlib, so text looks the same on every machine."""
    import matplotlib

    name = "DejaVuSansMono" if mono else "DejaVuSans"
    name += "-Bold" if bold else ""
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf"), size)


@cache
def photos() -> tuple[np.ndarray, ...]:
    """Real photographs shipped inside installed packages (no download)."""
    import matplotlib
    import skimage.data as skd
    from sklearn.datasets import load_sample_images

    photos = [getattr(skd, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")]
    photos.append(skd.stereo_motorcycle()[0])
    photos.extend(load_sample_images().images)
    photos.append(np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")))
    for gray in (skd.camera(), skd.coins(), skd.moon()):  # tinted greyscale photographs
        photos.append(np.stack([gray, (gray * 0.95).astype(np.uint8), (gray * 0.85).astype(np.uint8)], -1))
    return tuple(np.ascontiguousarray(p[..., :3]) for p in photos)


@cache
def textures() -> tuple[np.ndarray, ...]:
    """Photographic textures (grass, gravel, brick) for game levels that look real."""
    import skimage.data as skd

    out = []
    for gray, tint in (
        (skd.grass(), (0.6, 1.0, 0.5)),
        (skd.gravel(), (0.9, 0.85, 0.8)),
        (skd.brick(), (1.0, 0.6, 0.5)),
    ):
        out.append(np.clip(np.stack([gray * t for t in tint], -1), 0, 255).astype(np.uint8))
    return tuple(out)


def photo_or_none(rng: np.random.Generator, p: float) -> int | None:
    """A photograph's index with probability ``p`` (a confuser), else None."""
    return int(rng.integers(len(photos()))) if rng.uniform() < p else None


def texture_or_none(rng: np.random.Generator, p: float) -> int | None:
    """A photographic texture's index with probability ``p`` (a confuser), else None."""
    return int(rng.integers(len(textures()))) if rng.uniform() < p else None


def color(rng: np.random.Generator, lo: int = 40, hi: int = 255) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def smooth_path(rng: np.random.Generator, n: int, amplitude: float, wiggles: float = 1.5) -> np.ndarray:
    """A smooth 1-D trajectory in [0, amplitude]: a sum of two slow sinusoids."""
    t = np.linspace(0, 1, n)
    f1, f2 = rng.uniform(0.3, wiggles, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    y = 0.6 * np.sin(2 * np.pi * f1 * t + p1) + 0.4 * np.sin(2 * np.pi * f2 * t + p2)
    return (y + 1) / 2 * amplitude


def paste(frame: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x: int, y: int) -> None:
    """Paste a sprite with a boolean mask at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    sh, sw = mask.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x0 >= x1 or y0 >= y1:
        return
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    frame[y0:y1, x0:x1][m] = sprite[y0 - y : y1 - y, x0 - x : x1 - x][m]


def sprite(draw_fn: Callable[[ImageDraw.ImageDraw, int], None], size: int) -> tuple[np.ndarray, np.ndarray]:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw_fn(ImageDraw.Draw(img), size)
    arr = np.asarray(img)
    return np.ascontiguousarray(arr[..., :3]), arr[..., 3] > 127


def gaussian(rng: np.random.Generator, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean noise drawn in float32: per-frame sensor noise is the generator's costliest draw, and
    ``rng.normal`` (float64, then a cast) takes twice as long."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


class SensorNoise:
    """Per-frame noise for a whole video from a bank of ``k`` fields drawn once, each frame taking a random
    one, randomly flipped: a fresh field per frame (3 ms at 320x240) cost more than drawing most frames."""

    def __init__(self, rng: np.random.Generator, sigma: float, shape: tuple[int, ...], k: int = 6) -> None:
        self.rng = rng
        self.bank = gaussian(rng, sigma, (k, *shape))

    def __call__(self) -> np.ndarray:
        field = self.bank[self.rng.integers(len(self.bank))]
        flips = self.rng.integers(4)
        return field[:: 1 - 2 * (flips & 1), :: 1 - (flips & 2)]


def add_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(frame.astype(np.float32) + gaussian(rng, sigma, frame.shape), 0, 255).astype(np.uint8)


def vertical_gradient(w: int, h: int, top: tuple, bottom: tuple) -> np.ndarray:
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    grad = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    return np.ascontiguousarray(np.broadcast_to(grad, (h, w, 3)).astype(np.uint8))


_WORDS = (  # a vocabulary for slide bullets, captions and window text
    "revenue quarterly growth model pipeline results design review roadmap metrics customer baseline "
    "training feature latency summary budget analysis objective risk timeline platform impact team"
)
CODE_LINES = (
    "def train(cfg):",
    "    model = build(cfg)",
    "    for epoch in range(cfg.epochs):",
    "        loss = step(batch)",
    "    return metrics",
    "class Loader:",
    "    def __iter__(self):",
    "import numpy as np",
    "x = np.zeros((n, d))",
    "if not path.exists():",
    "    raise FileNotFoundError(path)",
    "# TODO: cache this",
    "return {'acc': acc}",
)


def sentence(rng: np.random.Generator, k: int) -> str:
    return " ".join(rng.choice(_WORDS.split(), k)).capitalize()


@cache
def score_label(score: int, size: int) -> np.ndarray:
    img = Image.new("L", (size * 7, size + 4), 0)
    ImageDraw.Draw(img).text((0, 0), f"SCORE {score}", font=font(size, mono=True, bold=True), fill=255)
    return np.asarray(img)


@cache
def caption(number: int, size: int) -> np.ndarray:
    """A subtitle line as a text mask; the same number gives the same words."""
    img = Image.new("L", (size * 30, size + 6), 0)
    ImageDraw.Draw(img).text((0, 0), sentence(np.random.default_rng(number), 6), font=font(size), fill=255)
    return np.asarray(img)


def cursor() -> tuple[np.ndarray, np.ndarray]:
    """A white mouse pointer with a black outline, 14 px: (image, mask)."""
    return sprite(
        lambda d, s: d.polygon(
            [(0, 0), (0, s - 2), (s // 3, s * 2 // 3), (s - 2, s * 2 // 3)], fill=(255, 255, 255), outline=(0, 0, 0)
        ),
        14,
    )


def app_window(rng: np.random.Generator, w: int, h: int, title: str) -> tuple[Image.Image, int]:
    """A desktop window filling the frame: a light header bar with a title and buttons; returns (image, bar height)."""
    bar = max(h // 10, 12)
    img = Image.new("RGB", (w, h), color(rng, 225, 250))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, bar), fill=color(rng, 200, 240) if rng.uniform() < 0.7 else color(rng, 30, 80))
    d.text((w // 3, bar // 5), title, font=font(max(bar // 2, 7), bold=True), fill=(40, 40, 40))
    for k in range(3):
        x = w - (k + 1) * bar
        d.ellipse((x + bar // 4, bar // 4, x + 3 * bar // 4, 3 * bar // 4), fill=(120, 120, 120))
    return img, bar


LIGHT = np.array([-0.45, -0.55, 0.7]) / np.linalg.norm([-0.45, -0.55, 0.7])  # key light: upper left, towards the viewer
_HALFWAY = (LIGHT + np.array([0, 0, 1.0])) / np.linalg.norm(LIGHT + np.array([0, 0, 1.0]))  # light/viewer bisector


def sphere_normals(r: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals ``[2r+1, 2r+1, 3]`` of a sphere of radius ``r`` seen head-on, and the disc they lie in."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32) / max(r, 1)
    inside = xx**2 + yy**2 <= 1
    zz = np.sqrt(np.clip(1 - xx**2 - yy**2, 0, 1))
    return np.stack([xx, yy, zz], -1), inside


def phong(normals: np.ndarray, base: np.ndarray, shininess: float) -> np.ndarray:
    """Ambient + diffuse + specular shading of unit normals ``[..., 3]`` with colours ``base`` ``[..., 3]``."""
    diffuse = np.clip(normals @ LIGHT, 0, 1)[..., None]
    specular = np.clip(normals @ _HALFWAY, 0, 1)[..., None] ** shininess
    return np.clip(base * (0.18 + 0.82 * diffuse) + 255 * 0.8 * specular, 0, 255)
