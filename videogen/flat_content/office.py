"""Office screens: presentation slides, scrolling code, a spreadsheet, a desktop with windows or
settings dialogs (subcategories ``slides``, ``code_scroll``, ``spreadsheet``, ``desktop``).

Confusers: a photograph on a slide, a photographic wallpaper.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from videogen.difficulty import scaled
from videogen.drawing import (
    CODE_LINES,
    Frames,
    color,
    cursor,
    font,
    paste,
    photo_or_none,
    photos,
    resize,
    sentence,
    smooth_path,
    vertical_gradient,
)


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
            d.text(
                (w // 20, h // 24),
                sentence(rng, 2) if k == 0 else stages[0][1],
                font=font(max(h // 14, 8), bold=True),
                fill=(255, 255, 255),
            )
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
            d.rectangle(
                (w // 2 + 10 + r * bw, base - vals[r, 0] * (h - 30) // 100, w // 2 + 8 + (r + 1) * bw, base),
                fill=bar_color,
            )
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
        d.rounded_rectangle(
            (bx, y1 - 20, bx + 42, y1 - 6),
            radius=3,
            fill=accent if k == 0 else (220, 220, 220),
            outline=(120, 120, 120),
        )


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


# --------------------------------------------------------------- parameters


def slides_params(rng: np.random.Generator, d: float) -> dict:
    return {"photo": photo_or_none(rng, scaled(0.5, d)), "photo_scale": float(rng.uniform(0.3, 0.3 + 0.6 * d))}


def code_scroll_params(rng: np.random.Generator, d: float) -> dict:
    return {"speed": float(rng.uniform(0.3, 1.5))}


def spreadsheet_params(rng: np.random.Generator, d: float) -> dict:
    return {"edit_every": int(rng.integers(15, 60))}


def desktop_params(rng: np.random.Generator, d: float) -> dict:
    return {"photo": photo_or_none(rng, scaled(0.5, d))}
