"""Screen-content renderers modelled on real screen recordings: a terminal (shell or ``top``),
a manual scrolling in a viewer window, a broadcast test card, an explainer diagram.

Same contract as every renderer (``videogen.catalogue``): ``(rng, width, height, n_frames, params) -> frames``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from videogen.difficulty import scaled
from videogen.drawing import Frames, app_window, color, font, photos, resize, sentence

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


def _icon(d: ImageDraw.ImageDraw, kind: int, x: float, y: float, s: float, fill: tuple, ink: tuple) -> None:
    """A grey line-art node of a diagram: a loudspeaker, a box, a disc or a screen."""
    if kind == 0:  # loudspeaker: a cone on a magnet
        d.polygon(
            [
                (x - s * 0.2, y - s * 0.2),
                (x - s * 0.5, y - s * 0.5),
                (x + s * 0.5, y - s * 0.5),
                (x + s * 0.2, y - s * 0.2),
            ],
            fill=fill,
            outline=ink,
        )
        d.rectangle((x - s * 0.2, y - s * 0.2, x + s * 0.2, y + s * 0.1), fill=fill, outline=ink)
    elif kind == 1:
        d.rounded_rectangle(
            (x - s * 0.5, y - s * 0.35, x + s * 0.5, y + s * 0.35), radius=s * 0.1, fill=fill, outline=ink
        )
    elif kind == 2:
        d.ellipse((x - s * 0.4, y - s * 0.4, x + s * 0.4, y + s * 0.4), fill=fill, outline=ink)
    else:  # a monitor on a stand
        d.rectangle((x - s * 0.5, y - s * 0.35, x + s * 0.5, y + s * 0.25), fill=fill, outline=ink)
        d.rectangle((x - s * 0.1, y + s * 0.25, x + s * 0.1, y + s * 0.45), fill=ink)


def render_diagram(rng: np.random.Generator, w: int, h: int, n: int, params: dict) -> Frames:
    """An explainer diagram on white (a loudspeaker layout, a signal chain): grey line-art nodes joined by
    lines, small labels, a caption and a logo; one node at a time lights up with coloured arcs, and the
    layout changes every few seconds."""
    paper = color(rng, 225, 256)
    ink, fill = color(rng, 40, 110), color(rng, 150, 215)
    accent = color(rng, 0, 256)
    per_layout = int(rng.integers(90, 240))
    layouts = []
    for _ in range(n // per_layout + 1):
        k, s = int(rng.integers(3, 7)), float(rng.uniform(0.12, 0.22) * h)
        centre = (w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.55))
        angles = (
            rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.uniform(-0.2, 0.2, k)
        )  # spread round the hub
        radius = rng.uniform(0.25, 0.4) * h
        nodes = [(centre[0] + radius * np.cos(a) * w / h * 0.8, centre[1] + radius * np.sin(a) * 0.9) for a in angles]
        img = Image.new("RGB", (w, h), paper)
        d = ImageDraw.Draw(img)
        kind = int(rng.integers(4))
        for x, y in nodes:
            d.line((centre, (x, y)), fill=ink, width=1)
            d.text(
                ((centre[0] + x) / 2 + 3, (centre[1] + y) / 2),
                f"{int(rng.integers(0, 180))}°",
                font=font(max(h // 40, 6)),
                fill=ink,
            )
        _icon(d, 2 if kind != 2 else 1, *centre, s * 0.8, fill, ink)
        for x, y in nodes:
            _icon(d, kind, x, y, s, fill, ink)
        d.text((w * 0.03, h * 0.9), sentence(rng, 3), font=font(max(h // 32, 6)), fill=ink)
        d.text(
            (w * 0.78, h * 0.88),
            sentence(rng, 1).split()[0],
            font=font(max(h // 22, 7), bold=True),
            fill=color(rng, 0, 160),
        )
        layouts.append((np.asarray(img).copy(), nodes, s))
    lit_every = int(rng.integers(12, 40))
    for i in range(n):
        base, nodes, s = layouts[i // per_layout]
        out = Image.fromarray(base)
        d = ImageDraw.Draw(out)
        x, y = nodes[(i // lit_every) % len(nodes)]
        for r in range(1, 4):  # sound waves: concentric arcs in the accent colour
            rr = s * (0.3 + 0.15 * r)
            d.arc((x - rr, y - rr, x + rr, y + rr), 200, 340, fill=accent, width=2)
        yield np.asarray(out)


def terminal_params(rng: np.random.Generator, d: float) -> dict:
    return {"dark": bool(rng.uniform() < 0.7), "top": bool(rng.uniform() < 0.3)}


def document_params(rng: np.random.Generator, d: float) -> dict:
    return {"figures": bool(rng.uniform() < scaled(0.5, d)), "page_every": int(rng.integers(20, 90))}


def diagram_params(rng: np.random.Generator, d: float) -> dict:
    return {}


def test_card_params(rng: np.random.Generator, d: float) -> dict:
    return {"layout": int(rng.integers(2)), "circle": bool(rng.uniform() < 0.6), "start": float(rng.uniform(0, 36000))}
