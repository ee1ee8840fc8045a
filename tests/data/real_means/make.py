"""Write ``real_means.npz``: the masked frame means of benchmarks/real's 381 clips, small enough to commit.

    python tests/data/real_means/make.py features/demo/all_features.h5

(the demo's extraction, ``make demo`` or ``research.features.extraction.extract`` on experiments/demo.yaml:
efficientnet_lite0, 16 frames, 224 px). Each of the 1280 features is quantised to 8 bits over its own range
(``q = round((m - lo) / (hi - lo) * 255)``; ``lo``, ``hi`` in float32): 317 KB instead of 1.9 MB of float32,
a step of under a fortieth of a feature's spread. Beside them each clip's label, source and family (from
benchmarks/real/manifest.csv), so a test can group the clips as the demo does (``cv.group_by: family``), and
its part of the demo's split by family (``features/demo/by_group/split.json``: train, val or test).
tests/conftest.py's ``real_means`` reads it back."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # this checkout's research package, run as a script
OUT = Path(__file__).with_name("real_means.npz")


def main(features: Path) -> None:
    from research.models.probe import pooled_mean

    with h5py.File(features, "r") as f:
        means = pooled_mean(f["features"][()], f["num_frames"][()])
        labels = f["labels"][()].astype(np.int64)
        ids = [v.decode() for v in f["video_ids"][()]]
    with open(ROOT / "benchmarks" / "real" / "manifest.csv", newline="") as fh:
        rows = {r["path"].removesuffix(".mp4"): r for r in csv.DictReader(fh)}
    split = json.loads((features.parent / "by_group" / "split.json").read_text())["splits"]
    part = {video: name for name, members in split.items() for video in members["videos"]}
    lo, hi = means.min(axis=0), means.max(axis=0)
    q = np.round((means - lo) / np.where(hi > lo, hi - lo, 1.0) * 255).astype(np.uint8)
    np.savez_compressed(
        OUT,
        q=q,
        lo=lo.astype(np.float32),
        hi=hi.astype(np.float32),
        labels=labels,
        sources=np.array([rows[i]["source"] for i in ids]),
        families=np.array([rows[i]["family"] for i in ids]),
        split=np.array([part[i] for i in ids]),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB): {len(ids)} clips x {means.shape[1]} features")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
