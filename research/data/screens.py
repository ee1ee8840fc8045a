"""Screen-content renderers modelled on real screen recordings: a terminal (shell or ``top``),
a manual scrolling in a viewer window, a broadcast test card.

Same contract as ``research.data.synthetic``: ``(rng, width, height, n_frames, params) -> frames``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from research.data.difficulty import scaled
from research.data.drawing import app_window, color, font, photos, resize, sentence

Frames = Iterator[np.ndarray]


_COMMANDS = (
    "ls -la",
    "make test",
    "git status",
    "python train.py",
    "cat README.md",
    "top",
    "man ls",
    "grep -rn TODO .",
)


def render_terminal(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A terminal: a shell typing commands and printing output, or ``top`` refreshing its table every second."""
    dark = params["dark"]
    bg, fg = ((10, 10, 14), color(rng, 170, 256)) if dark else ((250, 250, 250), (20, 20, 20))
    fs = max(h // 22, 7)
    rows, line_h = h // (fs + 2), fs + 2
    lines: list[str] = []
    typed, queue = "", []
    shown: list[str] | None = None
    for i in range(n):
        if params["top"]:
            if i % 25 == 0 or not lines:
                head = [
                    f"top - {10 + i // 1500:02d}:{(i // 25) % 60:02d}  load average: {rng.uniform(0, 3):.2f}",
                    "Tasks: 213 total, 1 running",
                ]
                table = [
                    f"{int(rng.integers(100, 9999)):5d} user  20  0 {int(rng.integers(1, 999)):4d}m "
                    f"{rng.uniform(0, 60):5.1f} {rng.uniform(0, 9):4.1f} {sentence(rng, 1).lower()}"
                    for _ in range(rows)
                ]
                lines = [
                    *head,
                    "  PID USER  PR NI  RES  %CPU %MEM COMMAND",
                    *sorted(table, key=lambda s: -float(s.split()[5])),
                ]
        elif queue:
            lines.append(queue.pop(0))
        elif typed:
            if i % 3 == 0:
                lines[-1] += typed[0]
                typed = typed[1:]
            if not typed:
                queue = [sentence(rng, int(rng.integers(2, 7))).lower() for _ in range(int(rng.integers(1, 12)))] + [
                    "$ "
                ]
        else:
            if not lines:
                lines.append("$ ")
            typed = str(rng.choice(_COMMANDS))
        if lines[-rows:] != shown:  # most frames change nothing: draw only when the text does
            shown = lines[-rows:]
            img = Image.new("RGB", (w, h), bg)
            d = ImageDraw.Draw(img)
            for k, text in enumerate(shown):
                d.text((4, 2 + k * line_h), text, font=font(fs, mono=True), fill=fg)
            frame = np.asarray(img)
        yield frame


def render_document(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A manual or web page in a viewer window: headings, paragraphs, a figure; it scrolls a screen at a time."""
    window, bar = app_window(rng, w, h, "Help")
    page_h = h * int(rng.integers(3, 6))
    page = Image.new("RGB", (w, page_h), (255, 255, 255))
    d = ImageDraw.Draw(page)
    fs = max(h // 24, 7)
    y, link = 8, color(rng, 0, 160)
    while y < page_h - 4 * fs:
        roll = rng.uniform()
        if roll < 0.15:
            d.text((w // 12, y), sentence(rng, 3), font=font(int(fs * 1.6), bold=True), fill=(30, 30, 30))
            y += int(fs * 2.6)
        elif roll < 0.22 and params["figures"]:
            fw, fh = int(w * 0.5), int(h * 0.35)
            figure = (
                resize(photos()[int(rng.integers(len(photos())))], fw, fh)
                if rng.uniform() < 0.5
                else np.full((fh, fw, 3), color(rng, 200, 250), np.uint8)
            )
            page.paste(Image.fromarray(np.ascontiguousarray(figure)), (w // 4, y))
            y += fh + fs
        else:
            for _ in range(int(rng.integers(2, 6))):
                d.text(
                    (w // 12, y),
                    sentence(rng, int(rng.integers(5, 10))),
                    font=font(fs),
                    fill=link if rng.uniform() < 0.1 else (50, 50, 50),
                )
                y += fs + 3
            y += fs
    page, chrome = np.asarray(page), np.asarray(window)
    top = 0.0
    view = h - bar
    for i in range(n):
        if i % params["page_every"] == params["page_every"] - 1:
            top = min(top + view * rng.uniform(0.3, 0.9), page_h - view)
        frame = chrome.copy()
        frame[bar:] = page[int(top) : int(top) + view]
        yield frame


def render_test_card(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """A broadcast test card: colour bars, a grey step wedge, a circle and a running clock."""
    img = Image.new("RGB", (w, h), (128, 128, 128))
    d = ImageDraw.Draw(img)
    bars = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]
    if params["layout"] == 1:
        bars = bars[::-1]
    bw = w / len(bars)
    for k, c in enumerate(bars):
        d.rectangle((k * bw, 0, (k + 1) * bw, h * 0.62), fill=c)
    for k in range(8):
        g = int(k * 255 / 7)
        d.rectangle((k * w / 8, h * 0.62, (k + 1) * w / 8, h * 0.8), fill=(g, g, g))
    if params["circle"]:
        d.ellipse((w / 2 - h * 0.35, h * 0.1, w / 2 + h * 0.35, h * 0.8), outline=(255, 255, 255), width=2)
    card = np.asarray(img).copy()
    fs = max(h // 10, 8)
    for i in range(n):
        out = Image.fromarray(card)
        seconds = params["start"] + i / 25
        text = f"{int(seconds // 3600):02d}:{int(seconds // 60) % 60:02d}:{int(seconds) % 60:02d}:{i % 25:02d}"
        ImageDraw.Draw(out).rectangle((w * 0.3, h * 0.83, w * 0.7, h * 0.98), fill=(0, 0, 0))
        ImageDraw.Draw(out).text((w * 0.32, h * 0.84), text, font=font(fs, mono=True), fill=(255, 255, 255))
        yield np.asarray(out)


def terminal_params(rng: np.random.Generator, d: float) -> dict:
    return {"dark": bool(rng.uniform() < 0.7), "top": bool(rng.uniform() < 0.3)}


def document_params(rng: np.random.Generator, d: float) -> dict:
    return {"figures": bool(rng.uniform() < scaled(0.5, d)), "page_every": int(rng.integers(20, 90))}


def test_card_params(rng: np.random.Generator, d: float) -> dict:
    return {"layout": int(rng.integers(2)), "circle": bool(rng.uniform() < 0.6), "start": float(rng.uniform(0, 36000))}
