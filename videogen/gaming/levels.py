"""Tile-engine games: a top-down level, a side-scrolling platformer, a dark arena shooter, each with a
HUD (subcategories ``topdown``, ``side_scroller``, ``arena``).

Confusers: photographic textures in the tiles, a photographic backdrop, a slower, more static game.
"""

from __future__ import annotations

import math

import numpy as np

from videogen.difficulty import scaled
from videogen.drawing import (
    Frames,
    color,
    paste,
    photo_or_none,
    photos,
    resize,
    score_label,
    smooth_path,
    sprite,
    texture_or_none,
    textures,
    vertical_gradient,
)


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
    hero, hmask = sprite(
        lambda d, s: d.ellipse((1, 1, s - 2, s - 2), fill=(255, 220, 0), outline=(0, 0, 0), width=2), tile
    )
    foe, fmask = sprite(
        lambda d, s: d.rectangle((2, 2, s - 3, s - 3), fill=(200, 0, 200), outline=(0, 0, 0), width=2), tile
    )
    foes = [
        (smooth_path(rng, n, world.shape[1]), smooth_path(rng, n, world.shape[0]))
        for _ in range(int(rng.integers(3, 8)))
    ]
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
    coin, cmask = sprite(
        lambda d, s: d.ellipse((1, 1, s - 2, s - 2), fill=(255, 210, 0), outline=(120, 80, 0), width=2), tile // 2 + 4
    )
    hero, hmask = sprite(
        lambda d, s: d.rectangle((2, 0, s - 3, s - 1), fill=(220, 0, 0), outline=(0, 0, 0), width=2), tile
    )
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


# --------------------------------------------------------------- parameters


def topdown_params(rng: np.random.Generator, d: float) -> dict:
    return {"photo_texture": texture_or_none(rng, scaled(0.5, d))}


def side_scroller_params(rng: np.random.Generator, d: float) -> dict:
    return {
        "photo_texture": texture_or_none(rng, scaled(0.35, d)),
        "speed": float(rng.uniform(1, 4)) * (1.25 - 0.75 * d),
        "photo": photo_or_none(rng, scaled(0.4, d)),
    }


def arena_params(rng: np.random.Generator, d: float) -> dict:
    return {"photo_texture": texture_or_none(rng, scaled(0.35, d))}
