"""Disk per clip of each kind of feature file and of its uncompressed training copy, from real features.

    python benchmarks/disk_per_clip.py [--clips-per-class 8] [--results benchmarks/RESULTS.md]

Extracts the first ``--clips-per-class`` clips of each class of benchmarks/real (experiments/demo.yaml's
extraction: efficientnet_lite0, 1280-d, each backbone's own 224 px) twice: at the demo's 16 frames (single-scale
16 rows, multi-scale 18) and at the seed's 64 (64 and 73 rows). For each of the four files it measures what a
clip costs on disk:

- the gzip file (``create_layout``: gzip 4, one chunk per clip): each clip's stored chunk (mean, and the
  smallest and largest: gzip's ratio follows the content), plus the file's other datasets and attributes
  per clip;
- the uncompressed training copy (``lazy_reading: copy``, ``research.data.copies``), made by the project's own
  code: its rows, exactly rows x 1280 x 4 bytes, plus its small header per clip;

and what 10^6 clips of each need. File sizes, not timings: the machine's load changes nothing here. With
``--results`` it writes its section into that file (replacing the section it wrote before, else appended).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console

from research.config import ExtractConfig, load_config
from research.data.dataset import FeatureDataset
from research.features.extraction import extract

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "benchmarks" / "real"
TITLE = "## Disk per clip: feature files and their training copies (`benchmarks/disk_per_clip.py`, issue 50)"
MILLION = 1_000_000  # the collection size issue 50 plans for
console = Console()


def subset_manifest(path: Path, per_class: int) -> int:
    """The first ``per_class`` clips of each class of benchmarks/real's manifest (by path), written to ``path``."""
    with (REAL / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, sorted(reader, key=lambda r: r["path"])
    chosen = [r for c in sorted({r["class"] for r in rows}) for r in [r for r in rows if r["class"] == c][:per_class]]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields or [])
        writer.writeheader()
        writer.writerows(chosen)
    return len(chosen)


def measure(path: Path) -> dict:
    """Bytes per clip of a feature file (its chunks, the rest) and of the training copy the project makes of it."""
    with h5py.File(path, "r") as f:
        features = f["features"]
        clips, rows, dim = features.shape
        chunks = np.array([features.id.get_chunk_info(i).size for i in range(clips)])
    file_bytes = path.stat().st_size
    dataset = FeatureDataset(path, in_memory="no", lazy_reading="copy", copy_budget_gb=None)
    assert dataset.copy_path is not None, f"{path}: no training copy was made"
    copy_bytes = dataset.copy_path.stat().st_size
    return {
        "rows": rows,
        "dim": dim,
        "clips": clips,
        "chunk_mean": float(chunks.mean()),
        "chunk_min": int(chunks.min()),
        "chunk_max": int(chunks.max()),
        "file_per_clip": file_bytes / clips,
        "copy_per_clip": copy_bytes / clips,
        "raw_per_clip": rows * dim * 4,
    }


def kb(n: float) -> str:
    return f"{n / 1e3:,.1f} kB"


def gb(n: float) -> str:
    return f"{n / 1e9:,.0f} GB" if n >= 10e9 else f"{n / 1e9:,.1f} GB"


def section(results: dict[str, dict], clips: int, per_class: int) -> str:
    lines = [
        f"{TITLE} — {datetime.date.today()}",
        "",
        f"`python benchmarks/disk_per_clip.py --clips-per-class {per_class}` — {clips} real clips of benchmarks/real "
        f"(the first {per_class} of each class), extracted as experiments/demo.yaml extracts (efficientnet_lite0, "
        "1280-d float32, 224 px) at the demo's 16 frames and the seed's 64. The gzip file as extraction writes it "
        "(gzip 4, one chunk per clip): a clip's stored chunk (mean, smallest-largest), and the whole file per clip "
        "(with its ids, paths, stamps and attributes). The training copy as `lazy_reading: copy` makes it "
        "(`research.data.copies`): rows x 1280 x 4 bytes, contiguous, plus its header. File sizes: no timing.",
        "",
        "| kind | rows per clip | gzip file: chunk per clip, mean (smallest-largest) | gzip file: all per clip "
        "| training copy: rows per clip | copy / gzip chunk | 10^6 clips: gzip file | 10^6 clips: copy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['rows']} | {kb(r['chunk_mean'])} ({kb(r['chunk_min'])}-{kb(r['chunk_max'])}) "
            f"| {kb(r['file_per_clip'])} | {kb(r['raw_per_clip'])} | {r['raw_per_clip'] / r['chunk_mean']:.2f}x "
            f"| {gb(MILLION * r['chunk_mean'])} | {gb(MILLION * r['raw_per_clip'])} |"
        )
    header = max(r["copy_per_clip"] * r["clips"] - r["raw_per_clip"] * r["clips"] for r in results.values())
    lines += [
        "",
        f'- "all per clip" spreads each file\'s fixed part (datasets of ids, paths and stamps, attributes) over '
        f"{clips} clips; at 10^6 clips it vanishes, and the last two columns count the rows alone (a copy's header "
        f"is at most {kb(header)}). A copy's rows are exact (rows x 1280 x 4 bytes); gzip's share varies from "
        "clip to clip with the content (the ReLU features' zeros), so the file's is a mean over these clips.",
    ]
    seed = results.get("seed, 64 frames, multi-scale")
    if seed:
        lines.append(
            f"- 10^6 clips at the seed's settings: a training reads the train and val copies of one kind (80 % of "
            f"the clips: {gb(0.8 * MILLION * seed['raw_per_clip'])} multi-scale), which "
            "`TrainConfig.copy_budget_gb`'s default of 500 GB holds; a cross-validation's next fold makes its "
            "copies once the last fold's, no longer read, are removed."
        )
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of ``path`` (from its title to the next ``## ``), or append it."""
    old = path.read_text() if path.is_file() else ""
    start = old.find(TITLE)
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(TITLE))
    path.write_text(old[:start] + text + (old[end:] if end >= 0 else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-per-class", type=int, default=8, help="clips of each class of benchmarks/real")
    parser.add_argument("--results", type=Path, default=None, help="write the section into this file")
    args = parser.parse_args()
    base = load_config(ExtractConfig, "extract", ROOT / "experiments" / "demo.yaml")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "manifest.csv"
        clips = subset_manifest(manifest, args.clips_per_class)
        for label, frames in (("demo", 16), ("seed", 64)):
            out = Path(tmp) / label
            cfg = dataclasses.replace(
                base, data_dir=str(REAL), annotations=str(manifest), out_dir=str(out), frames=frames, log_mlflow=False
            )
            extract(cfg)
            for kind, name in (("single-scale", "all_features.h5"), ("multi-scale", "all_features_multiscale.h5")):
                results[f"{label}, {frames} frames, {kind}"] = measure(out / name)
    text = section(results, clips, args.clips_per_class)
    console.print(text, highlight=False, soft_wrap=True)
    if args.results:
        write_section(args.results, text)
        console.print(f"wrote its section into {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
