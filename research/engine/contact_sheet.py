"""Clips as pictures: a contact sheet of the misclassified clips of a predictions file, or of any list of clips.

A researcher reads a model's mistakes faster from frames than from ids. From any ``predictions.csv``
(``research.engine.predictions``: ``video_id, path, true_class, predicted_class, ..., p_<class>...``)
``write_contact_sheet`` writes, beside it or wherever asked:

- ``contact_sheet.png``: one row per misclassified clip (``include_correct``: every classified clip), in
  the sheet order (below): video id, true class, predicted class and its probability, then ``frames``
  thumbnails evenly spaced through the video (the centres of ``frames`` equal parts). At most
  ``max_rows`` rows; the sheet says how many more there were;
- ``contact_sheet.html``: one self-contained page (thumbnails embedded as base64 JPEG), a table of every
  such clip in the same order: the frames, then the verdict beside them (true, predicted, probability of the
  prediction and of the true class; the decision, familiarity and group where the file has them), then the
  video id and the path, which wrap; at 1,200 px the verdict stands on screen next to the frames;
  the first ``max_rows`` with their frames.

``write_sheet`` draws any list of ``SheetRow`` the same way under other names and another title: the label
audit's sheet of likely label issues (``research.engine.audit``) is one.

**The sheet order**, one for every sheet (``sheet_order``): the model's disagreement with the label first,
that is the probability the model gives the label (the true or given class) from lowest to highest, which
is cleanlab's self-confidence ranking of label issues; ties by video id. Clips without a label (``--predict``)
follow, most confident first. On an errors sheet the first rows are the confident mistakes.

Frames come from the project's decoder (``research.video.decode``: only the groups of pictures that hold
the frames are decoded, from the probe's keyframe plan). A path is resolved as it is stored: absolute, or
relative to ``roots`` (an evaluation: the current folder, where it wrote the data root joined to the path
under it). A video that is not there, or that does not decode, gets a tile that says so and is counted and
logged: the sheet is still written, never a crash. No errors: a sheet that says so.

Both files are deterministic (same predictions and videos, same bytes: no dates, no absolute paths
beyond those the predictions file holds), so a committed demo output stays byte for byte.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from research.errors import UserError, ensure_dir
from research.files import replaced_atomically, shown_path, write_text_atomic
from research.video.decode import VideoDecodeError, decode_frames_at, probe

log = logging.getLogger(__name__)

PNG_NAME = "contact_sheet.png"
HTML_NAME = "contact_sheet.html"
FRAMES = 4  # thumbnails per clip
MAX_ROWS = 48  # clips with pictures; the HTML table lists the rest without
THUMB_W, THUMB_H = 128, 72  # a thumbnail's box (16:9); other aspects are letterboxed into it
DECODE_SIZE = 128  # decoded square (the seed's squash), stretched back to the video's aspect
LABEL_W, GAP, PAD = 300, 4, 8
ROW_H = THUMB_H + 2 * GAP
HEADER_H, FOOTER_H = 44, 22
BACKGROUND, TILE, INK, FAINT, WRONG = (255, 255, 255), (40, 40, 40), (0, 0, 0), (90, 90, 90), (180, 20, 20)
NOT_FOUND, NOT_DECODED = "video not found", "cannot decode"


@dataclass
class SheetRow:
    """One clip of the sheet, from one row of the predictions file."""

    video_id: str
    path: str  # as stored in the predictions file
    true_class: str
    predicted_class: str
    probability: float  # of the predicted class
    true_probability: float | None  # of the true class (None without a true class)
    familiarity: str = ""  # as stored, where the file has the column
    group: str = ""  # the clip's group (source, family), where known
    decision: str = ""  # accept or review, where the file has the column
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 thumbnails, THUMB_H high
    problem: str = ""  # NOT_FOUND, NOT_DECODED (with why) or "" once decoded

    @property
    def correct(self) -> bool:
        return self.true_class == self.predicted_class


@dataclass
class ContactSheet:
    """What ``write_contact_sheet`` wrote and counted."""

    png: Path
    html: Path
    clips: int  # classified clips in the predictions file
    rows: list[SheetRow]  # every clip the sheet lists, in the sheet order
    shown: int  # of them, with frames (at most max_rows)
    not_found: int
    not_decoded: int
    errors_only: bool
    label_word: str = "true"  # what the label is called: "true" (an evaluation), "given" (a label audit)

    @property
    def left_out(self) -> int:
        return len(self.rows) - self.shown


# -------------------------------------------------------------------- reading


def sheet_order(rows: list[SheetRow]) -> list[SheetRow]:
    """The one order of every sheet: the label's probability lowest first (the model's strongest disagreement
    with the label, cleanlab's self-confidence), ties by video id; clips without a label after them, the
    prediction's probability highest first."""
    return sorted(
        rows,
        key=lambda r: (
            (0, r.true_probability, r.video_id) if r.true_probability is not None else (1, -r.probability, r.video_id)
        ),
    )


def read_sheet_rows(predictions: str | Path, include_correct: bool = False) -> tuple[list[SheetRow], int]:
    """``(rows, classified clips)``: the misclassified rows (every classified row with ``include_correct``),
    in the sheet order (``sheet_order``). Rows without a prediction (a video ``--predict`` could not read)
    are left out; a file that is not a predictions file is a ``UserError``. The ``familiarity``,
    ``decision`` and ``group`` columns are read where the file has them (older files do not)."""
    path = Path(predictions)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        missing = [c for c in ("video_id", "path", "true_class", "predicted_class") if c not in fields]
        if missing:
            raise UserError(
                f"{path} is not a predictions file (no column {', '.join(missing)}): see docs/evaluation.md"
            )
        records = list(reader)
    rows, clips = [], 0
    for record in records:
        predicted = record["predicted_class"]
        if not predicted:
            continue
        clips += 1
        true = record["true_class"]
        if not include_correct and (not true or true == predicted):
            continue
        rows.append(
            SheetRow(
                video_id=record["video_id"],
                path=record["path"],
                true_class=true,
                predicted_class=predicted,
                probability=_probability(record, predicted, path),
                true_probability=_probability(record, true, path) if true else None,
                familiarity=record.get("familiarity") or "",
                group=record.get("group") or "",
                decision=record.get("decision") or "",
            )
        )
    return sheet_order(rows), clips


def _probability(record: dict[str, str], cls: str, path: Path) -> float:
    try:
        return float(record[f"p_{cls}"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: video {record['video_id']!r} has no probability p_{cls}") from None


def resolve_video(stored: str, roots: Sequence[Path]) -> Path | None:
    """The file a stored path names: itself when absolute, else the first of ``roots`` it lies under."""
    if not stored:
        return None
    path = Path(stored)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    return next((c for c in candidates if c.is_file()), None)


def default_roots(predictions: Path) -> list[Path]:
    """Where relative paths are looked for: the current folder (an evaluation's, where it wrote them), then
    the folders above the predictions file (the checkout, when the command runs from elsewhere)."""
    above = Path(predictions).resolve().parent
    return [Path.cwd(), *[above, *above.parents]]


# -------------------------------------------------------------------- frames


def frame_numbers(n_frames: int, count: int) -> list[int]:
    """``count`` frames evenly spaced: the centres of ``count`` equal parts (never a fade-in's first frame)."""
    return sorted({min(n_frames - 1, int((i + 0.5) * n_frames / count)) for i in range(count)})


def thumbnails(path: Path, count: int, plan: bool = True) -> list[np.ndarray]:
    """``count`` (fewer for a video that short) uint8 RGB thumbnails of ``path``, at the video's aspect
    within ``THUMB_W`` x ``THUMB_H``. Raises ``VideoDecodeError`` for a file that does not decode."""
    info = probe(path)
    frames = decode_frames_at(path, frame_numbers(info.n_frames, count), DECODE_SIZE, plan=plan)
    if not frames:
        raise VideoDecodeError("no frame decodes")
    aspect = info.width / max(1, info.height)
    width, height = (THUMB_W, max(1, round(THUMB_W / aspect))) if aspect >= THUMB_W / THUMB_H else (0, THUMB_H)
    if not width:
        width = max(1, round(THUMB_H * aspect))
    return [np.asarray(Image.fromarray(frames[k]).resize((width, height), Image.BILINEAR)) for k in sorted(frames)]


def decode_rows(rows: list[SheetRow], count: int, roots: Sequence[Path], plan: bool = True) -> None:
    """Each row's thumbnails, or its ``problem`` (a missing or undecodable video: counted, never raised)."""
    for row in rows:
        path = resolve_video(row.path, roots)
        if path is None:
            row.problem = NOT_FOUND
            continue
        try:
            row.frames = thumbnails(path, count, plan)
        except (VideoDecodeError, av.FFmpegError, OSError, ValueError) as err:
            row.problem = f"{NOT_DECODED}: {err}"


# -------------------------------------------------------------------- the files


def write_contact_sheet(
    predictions: str | Path,
    out_dir: str | Path,
    frames: int = FRAMES,
    include_correct: bool = False,
    max_rows: int = MAX_ROWS,
    roots: Sequence[Path] | None = None,
    plan: bool = True,
) -> ContactSheet:
    """``out_dir/contact_sheet.png`` and ``.html`` of ``predictions``'s misclassified clips (every classified
    clip with ``include_correct``); the first ``max_rows`` with ``frames`` thumbnails each."""
    check_sheet_size(frames, max_rows)
    predictions = Path(predictions)
    rows, clips = read_sheet_rows(predictions, include_correct)
    what = "misclassified" if not include_correct else "classified"
    source = shown_path(predictions)
    if rows:
        title = f"{len(rows)} {what} of {clips} clips ({source}), the label's probability lowest first"
    else:
        title = f"no misclassified clips among {clips} ({source})"
    return write_sheet(
        rows,
        out_dir,
        title,
        clips=clips,
        errors_only=not include_correct,
        frames=frames,
        max_rows=max_rows,
        roots=default_roots(predictions) if roots is None else list(roots),
        plan=plan,
    )


def check_sheet_size(frames: int, max_rows: int) -> None:
    if frames < 1 or max_rows < 0:
        raise UserError(f"a contact sheet needs frames >= 1 and rows >= 0 (got frames={frames}, rows={max_rows})")


def write_sheet(
    rows: list[SheetRow],
    out_dir: str | Path,
    title: str,
    clips: int | None = None,
    errors_only: bool = True,
    frames: int = FRAMES,
    max_rows: int = MAX_ROWS,
    roots: Sequence[Path] = (),
    plan: bool = True,
    png_name: str = PNG_NAME,
    html_name: str = HTML_NAME,
    label_word: str = "true",
) -> ContactSheet:
    """``out_dir/png_name`` and ``out_dir/html_name`` of ``rows`` (put in the sheet order), titled ``title``:
    the first ``max_rows`` decoded (relative paths under ``roots``) with ``frames`` thumbnails each.
    ``clips``: how many clips the rows were drawn from (default: the rows)."""
    check_sheet_size(frames, max_rows)
    rows = sheet_order(rows)
    pictured = rows[:max_rows]
    decode_rows(pictured, frames, list(roots), plan)
    not_found = sum(r.problem == NOT_FOUND for r in pictured)
    not_decoded = sum(r.problem.startswith(NOT_DECODED) for r in pictured)
    if not_found or not_decoded:
        first = next(r for r in pictured if r.problem)
        log.warning(
            "contact sheet: %d of %d videos not found, %d do not decode (first: %s, %s): their tiles say so",
            not_found,
            len(pictured),
            not_decoded,
            first.path or first.video_id,
            first.problem,
        )
    out = ensure_dir(Path(out_dir))
    sheet = ContactSheet(
        out / png_name,
        out / html_name,
        len(rows) if clips is None else clips,
        rows,
        len(pictured),
        not_found,
        not_decoded,
        errors_only,
        label_word,
    )
    with replaced_atomically(sheet.png) as tmp:
        render_png(sheet, title, frames).save(tmp, format="PNG")  # no date: the same bytes each time
    write_text_atomic(sheet.html, render_html(sheet, title))
    return sheet


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text`` cut (with an ellipsis at the front: a path's end says most) to ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def _tile(row: SheetRow) -> Image.Image:
    """The placeholder of a clip without frames: dark, with what went wrong."""
    tile = Image.new("RGB", (THUMB_W, THUMB_H), TILE)
    draw = ImageDraw.Draw(tile)
    words = row.problem.split(": ", 1)
    draw.text((6, 6), words[0], font=_font(12), fill=(255, 255, 255))
    if len(words) > 1:
        draw.text((6, 24), _fit(draw, words[1], _font(10), THUMB_W - 12), font=_font(10), fill=(200, 200, 200))
    return tile


def row_strip(row: SheetRow, frames: int) -> Image.Image:
    """A clip's thumbnails side by side (its placeholder where it has none), each in its box."""
    strip = Image.new("RGB", (frames * (THUMB_W + GAP) - GAP, THUMB_H), BACKGROUND)
    if not row.frames:
        strip.paste(_tile(row), (0, 0))
        return strip
    for i, frame in enumerate(row.frames[:frames]):
        h, w = frame.shape[:2]
        box = Image.new("RGB", (THUMB_W, THUMB_H), TILE)
        box.paste(Image.fromarray(frame), ((THUMB_W - w) // 2, (THUMB_H - h) // 2))
        strip.paste(box, (i * (THUMB_W + GAP), 0))
    return strip


def png_size(rows: int, frames: int) -> tuple[int, int]:
    """The sheet's width and height in pixels for ``rows`` pictured clips (one blank row when none)."""
    return LABEL_W + frames * (THUMB_W + GAP) + PAD, HEADER_H + max(1, rows) * ROW_H + FOOTER_H


def render_png(sheet: ContactSheet, title: str, frames: int) -> Image.Image:
    pictured = sheet.rows[: sheet.shown]
    image = Image.new("RGB", png_size(len(pictured), frames), BACKGROUND)
    draw = ImageDraw.Draw(image)
    bold, small = _font(14), _font(12)
    draw.text((PAD, 8), _fit(draw, title, bold, image.width - 2 * PAD), font=bold, fill=INK)
    draw.text(
        (PAD, 26),
        f"{sheet.label_word} class and its probability, predicted class (red: another) and its probability; "
        f"{frames} frames evenly spaced",
        font=small,
        fill=FAINT,
    )
    for i, row in enumerate(pictured):
        y = HEADER_H + i * ROW_H + GAP
        folder, _, name = row.video_id.rpartition("/")
        label_p = "" if row.true_probability is None else f"  p={row.true_probability:.3f}"
        lines = [
            (f"{i + 1}. {name}", INK),
            (f"{sheet.label_word}: {row.true_class or '-'}{label_p}", INK),
            (f"predicted: {row.predicted_class}  p={row.probability:.3f}", INK if row.correct else WRONG),
            ("  ".join(filter(None, [f"group {row.group}" if row.group else folder, _extras(row)])), FAINT),
        ]
        for k, (text, colour) in enumerate(lines):
            draw.text((PAD, y + 2 + 16 * k), _fit(draw, text, small, LABEL_W - 2 * PAD), font=small, fill=colour)
        image.paste(row_strip(row, frames), (LABEL_W, y))
    notes = []
    if sheet.left_out:
        notes.append(f"{sheet.left_out} more not shown: every one is in {HTML_NAME}")
    if sheet.not_found or sheet.not_decoded:
        notes.append(f"{sheet.not_found} videos not found, {sheet.not_decoded} not decodable")
    if not sheet.rows:
        notes.append("nothing to show")
    draw.text((PAD, image.height - FOOTER_H + 4), "; ".join(notes), font=small, fill=FAINT)
    return image


def _extras(row: SheetRow) -> str:
    return "  ".join(filter(None, [f"familiarity {row.familiarity}" if row.familiarity else "", row.decision]))


def _jpeg_data(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# The page at 1,200 px: the frames (4 x 132 px), the verdict beside them in one narrow cell (the label, the
# prediction, their probabilities, what else the file says), then the video id and the path, which wrap (a path is
# one long word: without break-all it would widen the table and push the rest off the screen).
STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:middle}"
    "td.frames img{display:block}td.verdict{white-space:nowrap;font-size:small}span.predicted.wrong{color:#b41414}"
    "td.video-id,td.path{max-width:16em;overflow-wrap:anywhere;word-break:break-all}"
    "td.path{font-family:monospace;font-size:small}.note{color:#555}"
)


def _verdict(row: SheetRow, word: str) -> str:
    """The verdict cell: one line each, every value in a span named by its column."""
    wrong = "" if row.correct else " wrong"
    lines = [
        f'{word}: <span class="true">{html.escape(row.true_class)}</span>',
        f'predicted: <span class="predicted{wrong}">{html.escape(row.predicted_class)}</span>',
        f'p: <span class="probability">{row.probability:.3f}</span>',
    ]
    if row.true_probability is not None:
        lines.append(f'p({word}): <span class="true-probability">{row.true_probability:.3f}</span>')
    for column in ("decision", "familiarity", "group"):
        if getattr(row, column):
            lines.append(f'{column}: <span class="{column}">{html.escape(getattr(row, column))}</span>')
    return "<br>".join(lines)


def render_html(sheet: ContactSheet, title: str) -> str:
    """The page: a table of every listed clip in the sheet order (the first ``shown`` with their frames), the
    verdict beside the frames, no external file."""
    frames = max((len(r.frames) for r in sheet.rows[: sheet.shown]), default=FRAMES) or FRAMES
    head = ["#", "frames", "verdict", "video id", "path"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    notes = []
    if sheet.left_out:
        notes.append(f"{sheet.left_out} clips beyond the first {sheet.shown} are listed without frames.")
    if sheet.not_found or sheet.not_decoded:
        notes.append(f"{sheet.not_found} videos not found, {sheet.not_decoded} not decodable.")
    if not sheet.rows and sheet.errors_only:
        notes.append("No misclassified clips: every classified clip got its true class.")
    out += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    out.append('<table id="clips"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(sheet.rows):
        if i < sheet.shown:
            picture = f'<img alt="{html.escape(row.problem or "frames")}" src="{_jpeg_data(row_strip(row, frames))}">'
        else:
            picture = '<span class="note">not shown</span>'
        cells = [
            ("index", str(i + 1)),
            ("frames", picture),
            ("verdict", _verdict(row, sheet.label_word)),
            ("video-id", html.escape(row.video_id)),
            ("path", html.escape(row.path)),
        ]
        status = "correct" if row.correct else "error"
        out.append(
            f'<tr class="{status}" data-video-id="{html.escape(row.video_id)}">'
            + "".join(f'<td class="{cls}">{text}</td>' for cls, text in cells)
            + "</tr>"
        )
    out += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(out)
