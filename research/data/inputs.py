"""A collection -> entries with identity and stamp: a folder tree, the seed's ``processed_data.pt``
folders, or an annotation file (``research.data.annotations``).

Folder layout (seed): ``ROOT/{split}/{category}/[{subcategory}/]FILE``. The category index is
the position of the category folder in sorted order over all splits (the seed's rule, made
split-safe). An annotation file gives each row's split (``all`` when it has no split column),
label, group and family, and optionally a segment; its paths are relative to ROOT. Every entry has

- an **identity**, ``video_id``: its path under the root without the extension
  (``train/gaming/topdown/v001``; ``...#3`` for row 3 of a ``processed_data.pt``;
  ``.../v001@12.5-20`` for the segment 12.5-20 s of an annotation row),
  which is what finished work is keyed on, never its position in a list;
- a **stamp**, ``size:mtime_ns`` of the file it comes from, so a file that was
  replaced or edited is recognised as changed (the same test ``make`` and ``rsync``
  use: cheap for thousands of files, unlike a content hash).

A collection is listed first (rows, or the folder tree's sorted entries: no ``stat``), then stamped
(one ``stat`` per file). An array task (``--shard K/N``) cuts its block from the listing and stamps only
that: its set-up makes its own block's metadata calls, not the whole collection's
(``benchmarks/task_metadata.py``). ``listing_fingerprint`` hashes a listing (identities and labels, in
order), what the tasks of one array must agree on; ``inputs_fingerprint`` hashes identities and stamps
(order-independent), what a file was made from; ``diff_inputs`` says what was added, removed or changed
between two lists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from research.config import ExtractConfig
from research.data.annotations import Annotations, Row, label_index, read_annotations
from research.errors import UserError

TENSOR_FILE = "processed_data.pt"


ALL_SPLIT = "all"  # the split of annotation rows that name none: one pool, split later by group


@dataclass(frozen=True)
class Entry:
    path: Path
    relpath: str  # relative to the data root, posix
    label: int
    subcategory: str
    stamp: str  # "size:mtime_ns" of ``path``
    tensor_item: int | None = None  # row inside a processed_data.pt file
    start: float | None = None  # a segment of the file, in seconds (annotation rows)
    end: float | None = None
    group: str = ""  # what must stay on one side of a split (annotation rows; folders: see research.data.splits)
    family: str = ""  # groups that look alike
    origin: str = ""  # FILE:LINE of the annotation row, for messages

    @property
    def video_id(self) -> str:
        if self.tensor_item is not None:
            return f"{_stem(self.relpath)}#{self.tensor_item}"
        return video_id(self.relpath, self.start, self.end)

    @property
    def segment(self) -> tuple[float, float] | None:
        return None if self.start is None or self.end is None else (self.start, self.end)


def _stem(relpath: str) -> str:
    name = relpath.rsplit("/", 1)[-1]
    return relpath.rsplit(".", 1)[0] if "." in name else relpath


def video_id(relpath: str, start: float | None = None, end: float | None = None) -> str:
    """The identity of a file (its path without the extension), or of a segment of it (``...@start-end``)."""
    return _stem(relpath) if start is None else f"{_stem(relpath)}@{start:g}-{end:g}"


def split_of(row: Row) -> str:
    """A row's split: its ``split`` column, or the one pool (``all``) that is split later by group."""
    return row.split or ALL_SPLIT


def row_video_id(row: Row) -> str:
    """The identity of an annotation row's entry (what ``annotation_entries`` gives it), without a stat."""
    return video_id(Path(row.path).as_posix(), row.start, row.end)


MISSING = "missing"  # the stamp of a file that is not there (skipped at extraction, redone once it is)


def file_stamp(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        return MISSING
    return f"{st.st_size}:{st.st_mtime_ns}"


def tensor_videos(data: object) -> torch.Tensor:
    """The ``[N, T, C, H, W]`` tensor of a loaded ``processed_data.pt`` (a dict, or the bare tensor)."""
    return data["videos"] if isinstance(data, dict) else data  # type: ignore[return-value]


def load_tensor_file(path: Path, mmap: bool = False) -> torch.Tensor:
    """Seed Stage-1 tensors, read with ``weights_only`` (a data file must not run code)."""
    return tensor_videos(torch.load(path, map_location="cpu", weights_only=True, mmap=mmap))


def file_entry(path: Path) -> Entry:
    """A video outside any data root (``--predict``): its folder name stands for the subcategory."""
    return Entry(path, str(path), -1, path.parent.name, "")


def category_mapping(data_dir: Path, splits: list[str]) -> dict[str, int]:
    """Category -> index by sorted folder name over all splits."""
    names = sorted(
        {
            d.name
            for s in splits
            if (data_dir / s).is_dir()
            for d in (data_dir / s).iterdir()
            if d.is_dir() and not d.name.startswith(".")
        }
    )
    return {name: i for i, name in enumerate(names)}


def _walk(folder: Path) -> tuple[list[Path], set[Path]]:
    """Every file under ``folder`` as ``rglob("*")`` and ``is_file()`` find them (folders that are symlinks
    not entered, a symlink to a file kept, an unreadable folder passed over), and the folders that hold a
    ``processed_data.pt``: read from the directory entries, with no ``stat`` per file (only per symlink, or
    where the file system gives no type)."""
    files: list[Path] = []
    tensor_dirs: set[Path] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as listing:
                found = list(listing)
        except PermissionError:
            continue
        for entry in found:
            if entry.name == TENSOR_FILE:
                tensor_dirs.add(current)
            if entry.is_dir(follow_symlinks=False):
                stack.append(current / entry.name)
            elif entry.is_file():
                files.append(current / entry.name)
    return files, tensor_dirs


def list_split(data_dir: Path, split: str, mapping: dict[str, int]) -> list[Entry]:
    """Every file under each category, sorted by path, not yet stamped (``stamp_entries``);
    ``processed_data.pt`` folders expand to their rows (the tensor file's header is read for their count)."""
    entries: list[Entry] = []
    split_dir = data_dir / split
    for category, label in mapping.items():
        cat_dir = split_dir / category
        if not cat_dir.is_dir():
            continue
        files, tensor_dirs = _walk(cat_dir)
        for path in sorted(p for p in files if not p.name.startswith(".")):
            rel = path.relative_to(data_dir).as_posix()
            parts = path.relative_to(cat_dir).parts
            sub = parts[0] if len(parts) > 1 else ""
            if path.parent in tensor_dirs:
                if path.name == TENSOR_FILE:
                    n = load_tensor_file(path, mmap=True).shape[0]
                    entries.extend(Entry(path, rel, label, sub, "", tensor_item=i) for i in range(n))
                continue  # metadata.json and other sidecars of a tensor folder
            entries.append(Entry(path, rel, label, sub, ""))
    return entries


def scan_split(data_dir: Path, split: str, mapping: dict[str, int]) -> list[Entry]:
    """Every file under each category, sorted by path and stamped; ``processed_data.pt`` folders expand to
    their rows."""
    return stamp_entries(list_split(data_dir, split, mapping), labelled=False)


def stamp_entries(entries: list[Entry], labelled: bool) -> list[Entry]:
    """``entries`` with their stamps: one ``stat`` per file, however many entries (segments, tensor rows)
    name it. ``labelled``: an annotation file's rows, whose label is part of the stamp (a row relabelled is
    a changed input: its features are redone)."""
    stamps: dict[Path, str] = {}
    out = []
    for entry in entries:
        if entry.path not in stamps:
            stamps[entry.path] = file_stamp(entry.path)
        stamp = f"{stamps[entry.path]}:label={entry.label}" if labelled else stamps[entry.path]
        out.append(dataclasses.replace(entry, stamp=stamp))
    return out


def check_data_root(data_dir: Path, splits: list[str]) -> dict[str, int]:
    """The category mapping of a data root, or a one-line error saying what layout was expected."""
    if not data_dir.is_dir():
        raise UserError(f"data directory not found: {data_dir}")
    mapping = category_mapping(data_dir, splits)
    if not mapping:
        raise UserError(
            f"no category folders under {data_dir}/{{{','.join(splits)}}}/: "
            "expected ROOT/split/category/[subcategory/]video files"
        )
    return mapping


def annotation_entries(annotations: Annotations, data_dir: Path) -> tuple[dict[str, int], dict[str, list[Entry]]]:
    """The category mapping and each split's entries of an annotation file, in row order, not yet stamped
    (``stamp_entries``): nothing is looked at on disk. Relative paths are under ``data_dir``."""
    index = label_index(annotations)
    files: dict[str, tuple[Path, str]] = {}  # as written -> (path, posix relpath): made once per file
    splits: dict[str, list[Entry]] = {}
    for row in annotations.rows:
        if row.path not in files:
            written = Path(row.path)
            files[row.path] = (written if written.is_absolute() else data_dir / written, written.as_posix())
        path, relpath = files[row.path]
        entry = Entry(
            path,
            relpath,
            index[row.label],
            "",
            "",
            start=row.start,
            end=row.end,
            group=row.group,
            family=row.family,
            origin=annotations.where(row),
        )
        splits.setdefault(split_of(row), []).append(entry)
    return {name: i for i, name in enumerate(annotations.classes)}, splits


@dataclass(frozen=True)
class Listing:
    """A split as listed, before any of its files is looked at: what every task of an array computes alike
    from the listing alone (the annotation file's rows, or the folder tree's sorted entries)."""

    videos: int
    fingerprint: str  # ``listing_fingerprint``: the split's identities and labels, in order
    frames: tuple[int, ...] = ()  # the frame counts of its seed tensor files (a file's ``max_frames``)


def listing_fingerprint(entries: Iterable[Entry]) -> str:
    """One hash over a listing's identities and labels in order, without a ``stat``: two tasks that cut their
    blocks from listings with the same fingerprint cut them from the same list."""
    digest = hashlib.sha1()
    for entry in entries:
        digest.update(f"{entry.video_id}\t{entry.label}\n".encode())
    return digest.hexdigest()[:16]


def _listing(entries: list[Entry]) -> Listing:
    tensors = {e.path for e in entries if e.tensor_item is not None}
    frames = tuple(sorted({load_tensor_file(p, mmap=True).shape[1] for p in tensors}))
    return Listing(len(entries), listing_fingerprint(entries), frames)


@dataclass(frozen=True)
class Collection:
    """What a config's data source holds: the class mapping, each split's stamped entries (the whole split,
    or one array task's block of it), each split's ``Listing``, and the annotation rows."""

    mapping: dict[str, int]
    entries: dict[str, list[Entry]]
    annotations: Annotations | None = None
    listings: dict[str, Listing] = field(default_factory=dict)


def config_annotations(cfg: ExtractConfig) -> Annotations:
    """The rows of ``cfg.annotations``, read as the config says (format, columns, names, template)."""
    assert cfg.annotations, "the config names no annotation file"
    return read_annotations(cfg.annotations, cfg.annotation_format, cfg.columns, cfg.class_names, cfg.file_template)


def open_collection(cfg: ExtractConfig, block: Callable[[list[Entry]], list[Entry]] | None = None) -> Collection:
    """``cfg.annotations`` when set (every split the file names), else the folder tree's ``splits``.

    ``block``: an array task's cut of a split's listing (``research.distributed.Shard.block``); its entries
    are then that block alone, and only its files are stat'ed: N tasks make one collection's metadata calls
    between them, not N times as many. Every task still knows each whole split's ``Listing``."""
    data_dir = Path(cfg.data_dir)
    annotations = None
    if cfg.annotations:
        annotations = config_annotations(cfg)
        mapping, listed = annotation_entries(annotations, data_dir)
    else:
        mapping = check_data_root(data_dir, cfg.splits)
        present = [s for s in cfg.splits if (data_dir / s).is_dir()]
        listed = {split: list_split(data_dir, split, mapping) for split in present}
    labelled = annotations is not None
    entries = {split: stamp_entries(rows if block is None else block(rows), labelled) for split, rows in listed.items()}
    return Collection(mapping, entries, annotations, {split: _listing(rows) for split, rows in listed.items()})


def identities(entries: Iterable[Entry]) -> dict[str, str]:
    """``{video_id: stamp}``."""
    return {e.video_id: e.stamp for e in entries}


def inputs_fingerprint(stamps: dict[str, str]) -> str:
    """One hash over every input's identity and stamp (order-independent)."""
    digest = hashlib.sha1()
    for video_id in sorted(stamps):
        digest.update(f"{video_id}\t{stamps[video_id]}\n".encode())
    return digest.hexdigest()[:16]


def diff_inputs(before: dict[str, str], now: dict[str, str], show: int = 3) -> str:
    """``"2 added (a, b), 1 removed (c), 1 changed (d)"``; empty when the lists are equal."""
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(k for k in set(now) & set(before) if now[k] != before[k])
    parts = []
    for word, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            shown = ", ".join(names[:show]) + (", ..." if len(names) > show else "")
            parts.append(f"{len(names)} {word} ({shown})")
    return ", ".join(parts)
