"""A data root (video files, or the seed's ``processed_data.pt`` folders) -> entries with identity and stamp.

Layout (seed): ``ROOT/{split}/{category}/[{subcategory}/]FILE``. The category index is
the position of the category folder in sorted order over all splits (the seed's
rule, made split-safe). Every entry has

- an **identity**, ``video_id``: its path under the root without the extension
  (``train/gaming/topdown/v001``; ``...#3`` for row 3 of a ``processed_data.pt``),
  which is what finished work is keyed on, never its position in a list;
- a **stamp**, ``size:mtime_ns`` of the file it comes from, so a file that was
  replaced or edited is recognised as changed (the same test ``make`` and ``rsync``
  use: cheap for thousands of files, unlike a content hash).

``inputs_fingerprint`` hashes the whole list; ``diff_inputs`` says what was added,
removed or changed between two lists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from research.errors import UserError

TENSOR_FILE = "processed_data.pt"


@dataclass(frozen=True)
class Entry:
    path: Path
    relpath: str  # relative to the data root, posix
    label: int
    subcategory: str
    stamp: str  # "size:mtime_ns" of ``path``
    tensor_item: int | None = None  # row inside a processed_data.pt file

    @property
    def video_id(self) -> str:
        base = self.relpath.rsplit(".", 1)[0] if "." in Path(self.relpath).name else self.relpath
        return base if self.tensor_item is None else f"{base}#{self.tensor_item}"


def file_stamp(path: Path) -> str:
    st = path.stat()
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


def scan_split(data_dir: Path, split: str, mapping: dict[str, int]) -> list[Entry]:
    """Every file under each category, sorted by path; ``processed_data.pt`` folders expand to their rows."""
    entries: list[Entry] = []
    split_dir = data_dir / split
    for category, label in mapping.items():
        cat_dir = split_dir / category
        if not cat_dir.is_dir():
            continue
        tensor_dirs = {p.parent for p in cat_dir.rglob(TENSOR_FILE)}
        for path in sorted(p for p in cat_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = path.relative_to(data_dir).as_posix()
            parts = path.relative_to(cat_dir).parts
            sub = parts[0] if len(parts) > 1 else ""
            stamp = file_stamp(path)
            if path.parent in tensor_dirs:
                if path.name == TENSOR_FILE:
                    n = load_tensor_file(path, mmap=True).shape[0]
                    entries.extend(Entry(path, rel, label, sub, stamp, tensor_item=i) for i in range(n))
                continue  # metadata.json and other sidecars of a tensor folder
            entries.append(Entry(path, rel, label, sub, stamp))
    return entries


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
