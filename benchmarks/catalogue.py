"""Extraction through a catalogue name against its alias: the generic path must cost nothing extra.

    python benchmarks/catalogue.py [--clips 24] [--frames 16] [--repeats 2]

Extracts the first ``clips`` clips of benchmarks/real (listed in an annotation file) end to end, single-scale,
with each pair side by side, interleaved, best of ``repeats``:

- ``efficientnet_lite0`` against ``timm/tf_efficientnet_lite0`` (the packaged Lite0 weights as the timm
  state dict they map onto, the alias's normalisation), which give the same features;
- ``mobilenet_v2`` against ``torchvision/mobilenet_v2:IMAGENET1K_V1``;
- ``mobilenet_v2`` with ``resize: crop`` (the model's own eval transform) against squash.

frames/s = sampled frames / wall seconds, decoding included.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from research.backbones.loading import _timm_classifier
from research.backbones.table import TF_LITE_MEAN, TF_LITE_STD, get_spec
from research.config import ExtractConfig
from research.features.extraction import extract

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (ROOT / "benchmarks/real/manifest.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))[:: max(1, 352 // args.clips)][: args.clips]
        listing = folder / "clips.csv"
        with listing.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            writer.writerows([r["path"], r["class"]] for r in rows)
        weights = folder / "lite0.pth"
        torch.save(_timm_classifier(get_spec("efficientnet_lite0"), True).state_dict(), weights)
        lite = {"mean": list(TF_LITE_MEAN), "std": list(TF_LITE_STD)}
        arms = {
            "efficientnet_lite0": {"backbone": "efficientnet_lite0"},
            "timm/tf_efficientnet_lite0": {
                "backbone": "timm/tf_efficientnet_lite0",
                **lite,
                "weights": {"timm/tf_efficientnet_lite0": str(weights)},
            },
            "mobilenet_v2": {"backbone": "mobilenet_v2"},
            "torchvision/mobilenet_v2:IMAGENET1K_V1": {"backbone": "torchvision/mobilenet_v2:IMAGENET1K_V1"},
            "mobilenet_v2, resize: crop": {"backbone": "mobilenet_v2", "resize": "crop"},
        }
        best: dict[str, float] = {}
        for repeat in range(args.repeats):
            for k, (name, values) in enumerate(arms.items()):
                cfg = ExtractConfig(
                    data_dir=str(ROOT / "benchmarks/real"),
                    annotations=str(listing),
                    out_dir=str(folder / f"{k}_{repeat}"),
                    frames=args.frames,
                    image_size=None,
                    clip_seconds=None,
                    outputs=["single"],
                    log_mlflow=False,
                    **values,
                )
                start = time.perf_counter()
                extract(cfg)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        frames = args.clips * args.frames
        print(f"\n{args.clips} clips x {args.frames} frames, best of {args.repeats}")
        print("| backbone | seconds | frames/s | vs its alias |\n|---|---|---|---|")
        pairs = {
            "timm/tf_efficientnet_lite0": "efficientnet_lite0",
            "torchvision/mobilenet_v2:IMAGENET1K_V1": "mobilenet_v2",
            "mobilenet_v2, resize: crop": "mobilenet_v2",
        }
        for name, seconds in best.items():
            ratio = f"{best[pairs[name]] / seconds:.2f}x" if name in pairs else ""
            print(f"| {name} | {seconds:.1f} | {frames / seconds:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
