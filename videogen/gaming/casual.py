"""Game renderers modelled on real casual games: board games in a desktop window (reversi,
minesweeper, tile puzzles, mahjongg, lines of balls), solitaire on felt, a bubble shooter.

Added because the demo's first game renderers (tile maps with HUDs) taught nothing about the
GNOME games of the real-footage benchmark, which the demo ensemble read as slides or cartoons.
Same contract as every renderer (``videogen.catalogue``): ``(rng, width, height, n_frames, params) -> frames``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from videogen.difficulty import scaled
from videogen.drawing import (
    Frames,
    app_window,
    color,
    cursor,
    font,
    paste,
    phong,
    photos,
    resize,
    sentence,
    sphere_normals,
)


def _board_state(rng: np.random.Generator, kind: str, cells: int) -> np.ndarray:
    if kind == "reversi":
        state = np.zeros((cells, cells), int)
        m = cells // 2
        state[m - 1 : m + 1, m - 1 : m + 1] = [[1, 2], [2, 1]]
        return state
    if kind == "mines":
        return np.full((cells, cells), -1)  # -1 covered, 0-8 revealed count, 9 flag
    if kind == "mahjongg":
        return rng.integers(0, 4, (cells, cells))  # stack height per cell
    return rng.integers(0, 5, (cells, cells))  # tiles: colour index per cell (0 = empty)


def _move(rng: np.random.Generator, kind: str, state: np.ndarray) -> tuple[int, int]:
    """One move of the game: a cell changes (and, in reversi, a neighbour flips)."""
    cells = state.shape[0]
    r, c = int(rng.integers(cells)), int(rng.integers(cells))
    if kind == "reversi":
        state[r, c] = int(rng.integers(1, 3))
        rr, cc = (
            min(max(r + int(rng.integers(-1, 2)), 0), cells - 1),
            min(max(c + int(rng.integers(-1, 2)), 0), cells - 1),
        )
        if state[rr, cc]:
            state[rr, cc] = 3 - state[rr, cc]
    elif kind == "mahjongg":  # a matching pair leaves the table
        for rr, cc in ((r, c), (int(rng.integers(cells)), int(rng.integers(cells)))):
            state[rr, cc] = max(state[rr, cc] - 1, 0)
    elif kind == "mines":
        state[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = rng.integers(
            0, 4, state[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].shape
        )
        if rng.uniform() < 0.3:
            state[r, c] = 9
    else:
        state[r, c] = int(rng.integers(0, 5))
    return r, c


_TITLES = {"reversi": "Reversi", "mines": "Mines", "tiles": "Tetravex", "balls": "Five or More", "mahjongg": "Mahjongg"}
_GLYPHS = "●◆▲■♣♦★♥123456789"
_NUMBER_COLOURS = (
    (0, 0, 0),
    (30, 60, 220),
    (20, 140, 20),
    (220, 30, 30),
    (20, 20, 140),
    (140, 20, 20),
    (0, 140, 140),
    (0, 0, 0),
    (90, 90, 90),
)


def _draw_board(img: Image.Image, kind: str, state: np.ndarray, box: tuple[int, int, int], palette: list) -> None:
    x0, y0, size = box
    cells = state.shape[0]
    step = size / cells
    d = ImageDraw.Draw(img)
    if kind == "reversi":
        d.rectangle((x0, y0, x0 + size, y0 + size), fill=palette[0])
    if kind == "mahjongg":  # ivory tiles with coloured glyphs, stacked with an offset per layer
        glyph = font(max(int(step * 0.45), 6), bold=True)
        for layer in range(1, int(state.max(initial=0)) + 1):
            lift = (layer - 1) * max(step * 0.12, 1)
            for r, c in zip(*np.nonzero(state >= layer), strict=True):
                cx, cy = x0 + c * step - lift, y0 + r * step - lift
                d.rectangle((cx + 2, cy + 2, cx + step + 1, cy + step + 1), fill=(90, 80, 60))  # the tile's side
                d.rectangle((cx, cy, cx + step - 1, cy + step - 1), fill=(246, 242, 226), outline=(120, 110, 90))
                ink = palette[2 + (r * 7 + c * 3) % (len(palette) - 2)]
                d.text((cx + step * 0.25, cy + step * 0.15), _GLYPHS[(r * 5 + c) % len(_GLYPHS)], font=glyph, fill=ink)
        return
    for r in range(cells):
        for c in range(cells):
            cx, cy = x0 + c * step, y0 + r * step
            cell = (cx + 1, cy + 1, cx + step - 1, cy + step - 1)
            value = int(state[r, c])
            if kind == "reversi":
                d.rectangle(cell, outline=(20, 70, 20))
                if value:
                    d.ellipse(
                        (cx + step * 0.12, cy + step * 0.12, cx + step * 0.88, cy + step * 0.88),
                        fill=(20, 20, 20) if value == 1 else (245, 245, 245),
                        outline=(60, 60, 60),
                    )
            elif kind == "mines":
                if value == -1 or value == 9:
                    d.rectangle(cell, fill=palette[1], outline=(255, 255, 255))
                    if value == 9:
                        d.polygon(
                            [
                                (cx + step * 0.35, cy + step * 0.2),
                                (cx + step * 0.75, cy + step * 0.4),
                                (cx + step * 0.35, cy + step * 0.6),
                            ],
                            fill=(220, 30, 30),
                        )
                else:
                    d.rectangle(cell, fill=(222, 222, 218), outline=(190, 190, 190))
                    if value:
                        d.text(
                            (cx + step * 0.3, cy + step * 0.1),
                            str(value),
                            font=font(max(int(step * 0.7), 6), bold=True),
                            fill=_NUMBER_COLOURS[value],
                        )
            else:
                fill = palette[value % len(palette)] if value else (200, 200, 200)
                if kind == "balls":
                    d.rectangle(cell, fill=(210, 210, 205), outline=(170, 170, 170))
                    if value:
                        d.ellipse(
                            (cx + step * 0.15, cy + step * 0.15, cx + step * 0.85, cy + step * 0.85),
                            fill=fill,
                            outline=tuple(v // 2 for v in fill),
                        )
                        d.ellipse(
                            (cx + step * 0.3, cy + step * 0.25, cx + step * 0.45, cy + step * 0.4), fill=(255, 255, 255)
                        )
                else:  # tiles: four triangles per tile, as tetravex draws them
                    mid = (cx + step / 2, cy + step / 2)
                    corners = [
                        (cx + 1, cy + 1),
                        (cx + step - 1, cy + 1),
                        (cx + step - 1, cy + step - 1),
                        (cx + 1, cy + step - 1),
                    ]
                    for k in range(4):
                        tri = palette[(value + k * (r + c + 1)) % len(palette)] if value else fill
                        d.polygon([corners[k], corners[(k + 1) % 4], mid], fill=tri, outline=(60, 60, 60))


def render_board_game(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A desktop board game (reversi, minesweeper, tile puzzles, lines of balls, mahjongg) in a window; the mouse
    moves to a cell and the board changes."""
    kind = params["kind"]
    cells = int(rng.integers(6, 11))
    palette = [color(rng, 20, 120), color(rng, 150, 200), *[color(rng, 60, 255) for _ in range(5)]]
    window, bar = app_window(rng, w, h, _TITLES[kind])
    if kind == "mahjongg":  # the table under the tiles
        ImageDraw.Draw(window).rectangle((0, bar, w, h), fill=color(rng, 20, 110))
    size = min(w - 8, h - bar - 8)
    box = ((w - size) // 2, bar + (h - bar - size) // 2, size)
    dialog = None
    if params["dialog"]:  # "start a new game?": a modal box over the board for the middle third
        dialog = Image.new("RGB", (w * 3 // 5, h // 3), (246, 246, 246))
        dd = ImageDraw.Draw(dialog)
        dd.text((8, 8), sentence(rng, 4) + "?", font=font(max(h // 22, 7), bold=True), fill=(30, 30, 30))
        for k in range(2):
            dd.rectangle(
                (8 + k * w * 3 // 10, h // 3 - h // 10, (k + 1) * w * 3 // 10 - 8, h // 3 - 8),
                fill=(225, 225, 225),
                outline=(160, 160, 160),
            )
    state = _board_state(rng, kind, cells)
    pointer, pointer_mask = cursor()
    every = max(int(params["move_every"]), 2)
    target = (box[0] + size // 2, box[1] + size // 2)
    position = np.array(target, np.float32)
    frame = None
    for i in range(n):
        if frame is None or i % every == 0 or i in (n // 3, 2 * n // 3):
            if i and i % every == 0:
                r, c = _move(rng, kind, state)
                target = (box[0] + int((c + 0.5) * size / cells), box[1] + int((r + 0.5) * size / cells))
            img = window.copy()
            _draw_board(img, kind, state, box, palette)
            if dialog is not None and n // 3 <= i < 2 * n // 3:
                img.paste(dialog, (w // 5, h // 3))
            frame = np.asarray(img)
        position += (np.array(target, np.float32) - position) * 0.25  # the hand eases onto the next cell
        out = frame.copy()
        paste(out, pointer, pointer_mask, int(position[0]), int(position[1]))
        yield out


def _card(rng: np.random.Generator, cw: int, ch: int, face_up: bool, back: tuple) -> np.ndarray:
    img = Image.new("RGB", (cw, ch), (250, 250, 245) if face_up else back)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, cw - 1, ch - 1), outline=(60, 60, 60))
    if face_up:
        red = rng.uniform() < 0.5
        ink = (200, 20, 30) if red else (20, 20, 20)
        d.text((2, 1), str(rng.choice(list("A234567890JQK"))), font=font(max(ch // 5, 6), bold=True), fill=ink)
        d.text((cw // 3, ch // 3), "♥" if red else "♠", font=font(max(ch // 3, 6)), fill=ink)
    else:
        for k in range(0, cw + ch, 4):
            d.line((k, 0, k - ch, ch), fill=tuple(min(v + 40, 255) for v in back))
    return np.asarray(img).copy()


def render_card_game(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """Solitaire on felt: columns of face-down and face-up cards; now and then a card is dragged to another column."""
    felt = np.zeros((h, w, 3), np.float32) + np.array(params["felt"], np.float32)
    felt += rng.normal(0, 3, (h, w, 1))
    felt = np.clip(felt, 0, 255).astype(np.uint8)
    cols = int(rng.integers(5, 8))
    cw, ch = w // (cols + 1), int(w // (cols + 1) * 1.4)
    gap = (w - cols * cw) // (cols + 1)
    back = color(rng, 20, 160)
    columns = [[_card(rng, cw, ch, k >= c, back) for k in range(c + 1)] for c in range(cols)]
    step = max(ch // 5, 4)

    def table() -> np.ndarray:
        frame = felt.copy()
        for c, pile in enumerate(columns):
            x = gap + c * (cw + gap)
            for k, card in enumerate(pile):
                y = h // 5 + k * step
                frame[y : y + ch, x : x + cw][: max(min(ch, h - y), 0)] = card[: max(min(ch, h - y), 0)]
        return frame

    still = table()
    drag = None
    every = max(int(params["move_every"]), 10)
    for i in range(n):
        if i % every == 0 and i:
            src, dst = int(rng.integers(cols)), int(rng.integers(cols))
            if len(columns[src]) > 1:
                card = columns[src].pop()
                still = table()
                start = (gap + src * (cw + gap), h // 5 + len(columns[src]) * step)
                end = (gap + dst * (cw + gap), h // 5 + len(columns[dst]) * step)
                drag = (card, start, end, i, dst)
        frame = still.copy()
        if drag is not None:
            card, start, end, t0, dst = drag
            f = min((i - t0) / (every * 0.6), 1.0)
            paste(
                frame,
                card,
                np.ones(card.shape[:2], bool),
                int(start[0] + (end[0] - start[0]) * f),
                int(start[1] + (end[1] - start[1]) * f),
            )
            if f >= 1:
                columns[dst].append(card)
                still, drag = table(), None
        yield frame


def render_bubble_shooter(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A bubble shooter: a hexagonal ceiling of shiny bubbles, a launcher, a bubble bouncing off the walls."""
    if params["photo"] is not None:
        backdrop = resize(photos()[params["photo"]], w, h) // 2 + 40
    else:
        backdrop = np.zeros((h, w, 3), np.uint8) + np.array(color(rng, 20, 120), np.uint8)
        backdrop[:, : w // 6] = backdrop[:, : w // 6] // 2  # the playfield's side walls
        backdrop[:, -w // 6 :] = backdrop[:, -w // 6 :] // 2
    left, right = w // 6, w - w // 6
    r = max((right - left) // 16, 4)
    colours = [np.array(color(rng, 60, 256), np.float32) for _ in range(6)]
    normals, inside = sphere_normals(r)
    bubbles = {k: phong(normals, np.broadcast_to(c, normals.shape), 30).astype(np.uint8) for k, c in enumerate(colours)}
    rows = int(rng.integers(3, 7))
    grid = {
        (row, col): int(rng.integers(6)) for row in range(rows) for col in range((right - left) // (2 * r) - row % 2)
    }
    ball, pos, vel = int(rng.integers(6)), None, None
    for i in range(n):
        frame = backdrop.copy()
        for (row, col), k in grid.items():
            paste(frame, bubbles[k], inside, left + col * 2 * r + (row % 2) * r, row * int(1.75 * r))
        if pos is None:
            pos = np.array([(left + right) / 2 - r, h - 3 * r], np.float32)
            angle = rng.uniform(-1.2, 1.2)
            vel = np.array([math.sin(angle), -math.cos(angle)], np.float32) * params["speed"]
        pos += vel
        if pos[0] < left or pos[0] > right - 2 * r:
            vel[0] = -vel[0]
        if pos[1] < rows * 1.75 * r:  # sticks to the ceiling; a few neighbours pop
            grid[(rows, int((pos[0] - left) // (2 * r)))] = ball
            for key in list(grid)[: int(rng.integers(0, 3))]:
                grid.pop(key)
            ball, pos = int(rng.integers(6)), None
            rows = min(rows + int(rng.uniform() < 0.2), h // (2 * r) - 3)
        else:
            paste(frame, bubbles[ball], inside, int(pos[0]), int(pos[1]))
        img = Image.fromarray(frame)
        aim = (w // 2 + int(3 * r * math.sin(i / 9)), h - 4 * r)
        ImageDraw.Draw(img).line(((w // 2, h - r), aim), fill=(240, 240, 240), width=3)  # the launcher
        yield np.asarray(img)


def board_game_params(rng: np.random.Generator, d: float) -> dict:
    # harder: fewer moves, so the board is as static as a spreadsheet
    return {
        "kind": str(rng.choice(list(_TITLES))),
        "move_every": float(rng.uniform(8, 40) * (0.5 + d)),
        "dialog": bool(rng.uniform() < 0.25),
    }


def card_game_params(rng: np.random.Generator, d: float) -> dict:
    felt = (int(rng.integers(0, 40)), int(rng.integers(90, 150)), int(rng.integers(30, 80)))
    return {"felt": felt, "move_every": float(rng.uniform(15, 45) * (0.5 + d))}


def bubble_shooter_params(rng: np.random.Generator, d: float) -> dict:
    photo = int(rng.integers(len(photos()))) if rng.uniform() < scaled(0.4, d) else None
    return {"photo": photo, "speed": float(rng.uniform(3, 8))}
