"""Annotation files: a collection described by rows, not by folders.

Three formats, each read into the same ``Row``s:

- ``csv``: a header naming ``path`` and ``label``, and optionally ``split``, ``group``, ``family``,
  ``start`` and ``end`` (seconds; a segment of a longer file); every other column is kept in ``extra``.
  ``columns`` renames: ``{label: class, group: source}`` reads a file whose label column is ``class``.
- ``list``: the MMAction2 / PySlowFast list, ``path label`` per line (space-separated; the path may hold
  spaces, the label is the last word), the label a class index or a name; ``class_names`` is an optional
  file of names, one per line, line k naming index k.
- ``kinetics``: the Kinetics CSV (``label,youtube_id,time_start,time_end,split``); each row's file is
  ``template`` filled with those columns (the downloaders' ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4``).

A row is an entry: two segments of one file are two entries. Whatever would make a wrong dataset is one
``AnnotationError`` naming the file and line: an empty label, a duplicate row, ``end <= start``, a label
seen only in val/test, an index without a name. A BOM, CRLF line ends and quoted paths with commas read
as they should. Files are not opened here: a missing one becomes a skipped entry at extraction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research.errors import UserError, did_you_mean

FORMATS = ("auto", "csv", "list", "kinetics")
KNOWN = ("path", "label", "split", "group", "family", "start", "end")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
KINETICS_TEMPLATE = "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
TRAIN_SPLIT = "train"


class AnnotationError(UserError):
    """A row that cannot be an entry; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    path: str  # as written (relative paths are under the data root)
    label: str  # a class name, or an index as text
    line: int  # 1-based line in the file (the header is line 1 of a CSV)
    split: str = ""
    group: str = ""
    family: str = ""
    start: float | None = None
    end: float | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[str, float | None, float | None]:
        return (self.path, self.start, self.end)


@dataclass(frozen=True)
class Annotations:
    source: str  # the file, as given
    rows: list[Row]
    classes: list[str]  # index -> name
    columns: tuple[str, ...]  # what the file offers besides path and label (split, group, ... and extras)

    def where(self, row: Row) -> str:
        return f"{self.source}:{row.line}"

    @property
    def has_splits(self) -> bool:
        return any(r.split for r in self.rows)


def _text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"annotation file not found: {path}")
    return path.read_bytes().decode("utf-8-sig")  # a BOM (spreadsheets write one) is not part of a column name


def _seconds(value: str, name: str, where: str) -> float | None:
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise AnnotationError(f"{where}: {name} {value!r} is not a number of seconds") from None


def _csv_rows(text: str, source: str, columns: dict[str, str]) -> tuple[list[Row], tuple[str, ...]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    rename = {raw: name for name, raw in columns.items()}  # the file's column -> our name
    for name, raw in columns.items():
        if name not in KNOWN:
            raise UserError(f"columns: {name!r} is not one of {list(KNOWN)}{did_you_mean(name, KNOWN)}")
        if raw not in header:
            raise UserError(f"{source}: columns.{name} names {raw!r}, which the header lacks: {header}")
    ours = [rename.get(h, h) for h in header]
    missing = [name for name in ("path", "label") if name not in ours]
    if missing:
        hint = "; columns: {label: NAME} reads another column as the label" if "label" in missing else ""
        raise UserError(f"{source}: the header {header} has no {' or '.join(map(repr, missing))} column{hint}")
    rows = []
    for number, record in enumerate(reader, start=2):
        if not any((v or "").strip() for v in record.values()):
            continue  # a blank line
        values = {rename.get(k, k): (v or "").strip() for k, v in record.items() if k is not None}
        where = f"{source}:{number}"
        rows.append(
            Row(
                path=values["path"],
                label=values["label"],
                line=number,
                split=values.get("split", ""),
                group=values.get("group", ""),
                family=values.get("family", ""),
                start=_seconds(values.get("start", ""), "start", where),
                end=_seconds(values.get("end", ""), "end", where),
                # every column under its own name too (a renamed one stays reachable: group_by: source)
                extra={k: (v or "").strip() for k, v in zip(header, record.values(), strict=False) if k not in KNOWN},
            )
        )
    offered = [name for name in ours if name not in ("path", "label")]
    return rows, tuple(offered + [raw for raw in header if raw in rename and raw not in KNOWN])


def _list_rows(text: str, source: str) -> list[Row]:
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError(f"{source}:{number}: expected 'path label', got {line!r}")
        rows.append(Row(path=parts[0], label=parts[1], line=number))
    return rows


def _kinetics_rows(text: str, source: str, template: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in KINETICS_COLUMNS if c not in header]
    if missing:
        raise UserError(f"{source}: a Kinetics CSV needs the columns {list(KINETICS_COLUMNS)}; missing {missing}")
    rows = []
    for number, record in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in record.items() if k is not None}
        if not any(values.values()):
            continue
        where = f"{source}:{number}"
        fields: dict[str, Any] = dict(values)
        for name in ("time_start", "time_end"):
            try:
                fields[name] = int(float(values[name]))
            except ValueError:
                raise AnnotationError(f"{where}: {name} {values[name]!r} is not a number") from None
        try:
            path = template.format(**fields)
        except (KeyError, ValueError, IndexError) as err:
            raise UserError(f"file_template {template!r} cannot name {where}'s file: {err}") from None
        extra = {k: v for k, v in values.items() if k not in ("label", "split")}
        rows.append(Row(path=path, label=values["label"], line=number, split=values.get("split", ""), extra=extra))
    return rows


def detect_format(path: Path, text: str) -> str:
    """``kinetics`` for a header with youtube_id, ``csv`` for a comma-separated header naming a path,
    else the ``list`` format."""
    first = text.split("\n", 1)[0].strip().lower()
    cells = [c.strip() for c in first.split(",")]
    if "youtube_id" in cells:
        return "kinetics"
    if len(cells) > 1 or path.suffix.lower() == ".csv":
        return "csv"
    return "list"


def _classes(rows: list[Row], source: str, names: list[str] | None) -> list[str]:
    """Class index -> name: the names file when given, else the sorted label names (as the folder rule)."""
    labels = {r.label for r in rows}
    numeric = all(label.isdigit() for label in labels)
    if names is not None:
        if numeric:
            bad = next((r for r in rows if int(r.label) >= len(names)), None)
            if bad is not None:
                raise AnnotationError(
                    f"{source}:{bad.line}: label {bad.label} has no name (the class-name file has {len(names)})"
                )
            return list(names)
        unknown = next((r for r in rows if r.label not in names), None)
        if unknown is not None:
            raise AnnotationError(f"{source}:{unknown.line}: label {unknown.label!r} is not in the class-name file")
        return list(names)
    if numeric:
        return [str(i) for i in range(max(int(label) for label in labels) + 1)]
    return sorted(labels)


def _check(rows: list[Row], source: str) -> None:
    seen: dict[tuple[str, float | None, float | None], int] = {}
    for r in rows:
        where = f"{source}:{r.line}"
        if not r.path:
            raise AnnotationError(f"{where}: empty path")
        if not r.label:
            raise AnnotationError(f"{where}: empty label for {r.path}")
        if (r.start is None) != (r.end is None):
            raise AnnotationError(f"{where}: {r.path} has a start or an end but not both")
        if r.start is not None and r.end is not None and (r.end <= r.start or r.start < 0):
            raise AnnotationError(f"{where}: {r.path}: the segment {r.start}-{r.end} s is empty (end <= start)")
        if r.key in seen:
            raise AnnotationError(f"{where}: {r.path} duplicates line {seen[r.key]}")
        seen[r.key] = r.line
    if any(r.split for r in rows):
        trained = {r.label for r in rows if r.split == TRAIN_SPLIT}
        unseen = next((r for r in rows if r.split != TRAIN_SPLIT and r.label not in trained), None)
        if unseen is not None:
            raise AnnotationError(
                f"{source}:{unseen.line}: label {unseen.label!r} appears in {unseen.split or 'no split'} but never "
                "in train: a model cannot learn it"
            )


def read_annotations(
    path: str | Path,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    class_names: str | Path | None = None,
    template: str = KINETICS_TEMPLATE,
) -> Annotations:
    """Rows of an annotation file, checked; ``classes`` in index order."""
    path = Path(path)
    text = _text(path)
    source = str(path)
    fmt = detect_format(path, text) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise UserError(f"annotation format {fmt!r} is not one of {list(FORMATS)}{did_you_mean(fmt, FORMATS)}")
    offered: tuple[str, ...] = ()
    if fmt == "csv":
        rows, offered = _csv_rows(text, source, columns or {})
    elif fmt == "list":
        rows = _list_rows(text, source)
    else:
        rows = _kinetics_rows(text, source, template)
        offered = ("split",)
    if not rows:
        raise UserError(f"{source} lists no videos")
    names = None
    if class_names is not None:
        names = [n.strip() for n in _text(Path(class_names)).splitlines() if n.strip()]
    _check(rows, source)
    return Annotations(source, rows, _classes(rows, source, names), offered)


def label_index(annotations: Annotations) -> dict[str, int]:
    """A row's label text -> class index (names, and indices written as text)."""
    index = {name: i for i, name in enumerate(annotations.classes)}
    if all(r.label.isdigit() for r in annotations.rows):
        index |= {str(i): i for i in range(len(annotations.classes))}
    return index


def by_column(annotations: Annotations, column: str, rows: Iterable[Row] | None = None) -> list[str]:
    """Each row's value of ``column``: ``group``/``family``/``split``, or any other column of the file."""
    rows = annotations.rows if rows is None else rows
    if column in ("group", "family", "split"):
        return [getattr(r, column) for r in rows]
    return [r.extra.get(column, "") for r in rows]
