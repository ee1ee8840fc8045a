"""The HDF5 feature format: crash-safe streaming writer, attributes, inspect and merge.

File layout (seed 000, kept exactly so seed tooling reads our files):

    features    float32 [N, max_frames, D]   gzip 4, one chunk per video (1, max_frames, D)
    labels      int64   [N]
    num_frames  int32   [N]                  length of each feature sequence (73 for multi-scale T=64)
    attrs: num_videos, max_frames, feature_dim, category_mapping (JSON), multi_scale

Added by us: datasets ``video_ids`` and ``paths`` (relative to the data root) and
``decoded_frames`` (frames the video really has), and attributes ``backbone``,
``weights``, ``image_size``, ``frames_per_video``, ``scales``, ``sampling``,
``clip_seconds``, ``skipped`` (JSON list of ``{path, reason}``) and ``num_skipped``.

Writing is crash-safe: rows are committed in small ``.npz`` part files (written to
a temporary name, then renamed), one folder per rank. A killed run resumes from
its parts; when every part is in, ``assemble`` streams them, ordered by the
video's global index, into ``NAME.h5.tmp`` and renames it. Memory holds one part
per rank, whatever the number of videos.

    python -m research.features inspect features/demo/test_features_multiscale.h5
    python -m research.features merge OUT.h5 A.h5 B.h5
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

# Attributes that must agree for two files to be merged or compared.
IDENTITY_ATTRS = (
    "feature_dim",
    "multi_scale",
    "backbone",
    "weights",
    "image_size",
    "frames_per_video",
    "scales",
    "max_frames",
)
KINDS = {"single": "", "multi": "_multiscale"}


class FeatureFileError(ValueError):
    """A feature file that cannot be used as asked; the message says why."""


def feature_filename(split: str, kind: str) -> str:
    return f"{split}_features{KINDS[kind]}.h5"


# ------------------------------------------------------------------ part files


@dataclass
class Row:
    index: int  # the video's global position in the sorted input list
    video_id: str
    path: str
    label: int
    decoded_frames: int
    features: dict[str, np.ndarray]  # kind -> [L, D] float32


@dataclass
class PartWriter:
    """Buffers finished rows and skips; commits them atomically every ``flush_every``."""

    folder: Path
    flush_every: int = 16
    rows: list[Row] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("part_*.tmp.npz"):  # a part being written when the run was killed
            stale.unlink()
        committed = [int(p.name[5:11]) for p in self.folder.glob("part_*.npz")]
        self._seq = max(committed, default=-1) + 1

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self._maybe_flush()

    def skip(self, index: int, path: str, reason: str) -> None:
        self.skips.append({"index": index, "path": path, "reason": reason})
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self.rows) + len(self.skips) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.rows and not self.skips:
            return
        arrays: dict[str, Any] = {
            "index": np.array([r.index for r in self.rows], np.int64),
            "labels": np.array([r.label for r in self.rows], np.int64),
            "decoded_frames": np.array([r.decoded_frames for r in self.rows], np.int32),
            "video_ids": np.array([r.video_id for r in self.rows], dtype=str),
            "paths": np.array([r.path for r in self.rows], dtype=str),
            "skips": np.array(json.dumps(self.skips)),
        }
        for kind in self.rows[0].features if self.rows else ():
            arrays[f"features_{kind}"] = np.stack([r.features[kind] for r in self.rows])
        target = self.folder / f"part_{self._seq:06d}.npz"
        tmp = target.with_suffix(".tmp.npz")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)  # atomic: a part is either complete or absent
        self._seq += 1
        self.rows, self.skips = [], []


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("part_*.npz") if not p.name.endswith(".tmp.npz"))


def done_indices(folder: Path) -> set[int]:
    """Global indices already committed (rows and skips) under ``folder`` (all ranks)."""
    done: set[int] = set()
    for part in _parts(folder):
        with np.load(part) as z:
            done.update(z["index"].tolist())
            done.update(s["index"] for s in json.loads(str(z["skips"])))
    return done


def _iter_rank_rows(rank_folder: Path, kind: str) -> Iterator[tuple[int, tuple]]:
    for part in sorted(rank_folder.glob("part_*.npz")):
        if part.name.endswith(".tmp.npz"):
            continue
        with np.load(part) as z:
            idx = z["index"]
            feats = z[f"features_{kind}"] if len(idx) else None
            for j in range(len(idx)):
                yield (
                    int(idx[j]),
                    (
                        feats[j],
                        int(z["labels"][j]),
                        int(z["decoded_frames"][j]),
                        str(z["video_ids"][j]),
                        str(z["paths"][j]),
                    ),
                )


def create_layout(f: h5py.File, n: int, max_frames: int, feature_dim: int) -> dict[str, h5py.Dataset]:
    """The file format's datasets, sized for ``n`` videos: the one place the layout is defined."""
    out = {
        "features": f.create_dataset(
            "features",
            (n, max_frames, feature_dim),
            np.float32,
            chunks=(1, max_frames, feature_dim) if n else None,  # one chunk per video: read one, inflate one
            compression="gzip",
            compression_opts=4,
        )
    }
    for name, dtype in (("labels", np.int64), ("num_frames", np.int32), ("decoded_frames", np.int32)):
        out[name] = f.create_dataset(name, (n,), dtype)
    for name in ("video_ids", "paths"):
        out[name] = f.create_dataset(name, (n,), h5py.string_dtype())
    return out


def assemble(folder: Path, target: Path, kind: str, attrs: dict[str, Any], feature_dim: int, max_frames: int) -> int:
    """Stream all parts under ``folder`` (one subfolder per rank) into ``target``, sorted by index."""
    parts = _parts(folder)
    n = 0
    skipped: list[dict] = []
    for part in parts:
        with np.load(part) as z:
            n += len(z["index"])
            skipped.extend(json.loads(str(z["skips"])))
    ranks = sorted({p.parent for p in parts}) or [folder]
    rows = heapq.merge(*(_iter_rank_rows(r, kind) for r in ranks), key=lambda item: item[0])
    tmp = target.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        ds = create_layout(f, n, max_frames, feature_dim)
        last = -1
        for i, (index, (feat, label, dec, vid, path)) in enumerate(rows):
            if index <= last:
                raise FeatureFileError(f"{folder}: video index {index} appears twice in the parts")
            last = index
            ds["features"][i, : feat.shape[0]] = feat
            for name, value in (
                ("labels", label),
                ("num_frames", feat.shape[0]),
                ("decoded_frames", dec),
                ("video_ids", vid),
                ("paths", path),
            ):
                ds[name][i] = value
        skipped.sort(key=lambda s: s["index"])
        f.attrs.update(
            {
                **attrs,
                "num_videos": n,
                "max_frames": max_frames,
                "feature_dim": feature_dim,
                "skipped": json.dumps([{"path": s["path"], "reason": s["reason"]} for s in skipped]),
                "num_skipped": len(skipped),
            }
        )
    tmp.replace(target)
    return n


# ---------------------------------------------------------------------- reading


def read_attrs(path: str | Path) -> dict[str, Any]:
    """Attributes with JSON fields decoded and numpy scalars made plain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file not found: {path}")
    with h5py.File(path, "r") as f:
        out = {}
        for key, value in f.attrs.items():
            if isinstance(value, np.generic):
                value = value.item()
            if key in ("category_mapping", "scales", "skipped") and isinstance(value, str):
                value = json.loads(value)
            out[key] = value
        out.setdefault("num_videos", int(f["labels"].shape[0]))
    return out


def summary(path: str | Path) -> dict[str, Any]:
    """What ``inspect`` prints and ``configuration_analysis.json`` records per file."""
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        nf = f["num_frames"][:]
        labels = f["labels"][:]
        shape = list(f["features"].shape)
        compression = f["features"].compression
    mapping = attrs.get("category_mapping", {})
    by_index = {v: k for k, v in mapping.items()}
    return {
        "features_shape": shape,
        "labels_shape": [len(labels)],
        "num_frames": {
            "min": int(nf.min()) if len(nf) else 0,
            "max": int(nf.max()) if len(nf) else 0,
            "mean": float(nf.mean()) if len(nf) else 0.0,
        },
        "feature_dim": attrs.get("feature_dim"),
        "multi_scale": bool(attrs.get("multi_scale")),
        "compression": f"{compression} level {4 if compression == 'gzip' else ''}".strip(),
        "class_counts": {by_index.get(int(c), str(c)): int((labels == c).sum()) for c in np.unique(labels)},
        "attrs": attrs,
    }


def merge(output: str | Path, inputs: list[str | Path]) -> int:
    """Concatenate feature files of the same kind (backbone, dims, scales); refuse mismatches."""
    metas = [read_attrs(p) for p in inputs]
    if not metas:
        raise FeatureFileError("nothing to merge")
    ref = metas[0]
    for path, meta in zip(inputs[1:], metas[1:], strict=True):
        for key in (*IDENTITY_ATTRS, "category_mapping"):
            if meta.get(key) != ref.get(key):
                raise FeatureFileError(
                    f"cannot merge {path} into {inputs[0]}: {key} differs ({meta.get(key)!r} vs {ref.get(key)!r})"
                )
    total = sum(m["num_videos"] for m in metas)
    output = Path(output)
    tmp = output.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as out, h5py.File(inputs[0], "r") as first:
        create_layout(out, total, ref["max_frames"], ref["feature_dim"])
        out.attrs.update(dict(first.attrs))
        offset, skipped = 0, []
        for path in inputs:
            with h5py.File(path, "r") as f:
                n = f["labels"].shape[0]
                for i in range(n):
                    out["features"][offset + i] = f["features"][i]
                for name in ("labels", "num_frames", "decoded_frames", "video_ids", "paths"):
                    if name in f:
                        out[name][offset : offset + n] = f[name][:]
                skipped.extend(json.loads(f.attrs.get("skipped", "[]")))
            offset += n
        out.attrs.update({"num_videos": total, "skipped": json.dumps(skipped), "num_skipped": len(skipped)})
    tmp.replace(output)
    return total


def print_inspect(path: str | Path) -> None:
    from rich.console import Console
    from rich.table import Table

    info = summary(path)
    console = Console()
    table = Table(title=str(path), show_header=False)
    table.add_row("features", f"{info['features_shape']} float32, {info['compression']}")
    nf = info["num_frames"]
    table.add_row("num_frames", f"min {nf['min']}  max {nf['max']}  mean {nf['mean']:.1f}")
    table.add_row("classes", ", ".join(f"{k}: {v}" for k, v in info["class_counts"].items()))
    for key, value in info["attrs"].items():
        if key not in ("skipped",):
            table.add_row(key, str(value))
    console.print(table)
    skipped = info["attrs"].get("skipped", [])
    if skipped:
        sk = Table("skipped input", "reason", title=f"{len(skipped)} skipped")
        for s in skipped:
            sk.add_row(s["path"], s["reason"])
        console.print(sk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("inspect", help="print attributes, shapes and skipped inputs").add_argument("files", nargs="+")
    m = sub.add_parser("merge", help="concatenate files with the same backbone and settings")
    m.add_argument("output")
    m.add_argument("inputs", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            for path in args.files:
                print_inspect(path)
        else:
            print(f"merged {merge(args.output, args.inputs)} videos into {args.output}")
    except (FeatureFileError, FileNotFoundError) as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
