"""Extraction throughput: ours vs the seed's extractor vs the backbone alone, side by side.

    python benchmarks/extraction.py [--videos 8] [--frames 32] [--image-size 160] [--backbones mobilenet_v2 resnet50]

On the same generated videos and backbone, in one process run:

(a) ``extract(cfg)``: decoding in a worker overlapped with the CNN, frames batched
    across videos, one CNN pass for all scales, rows streamed to disk;
(b) the seed's extractor, re-implemented faithfully: sequential decode, a CNN pass
    per temporal scale (batches of 24), every feature held in RAM until the end,
    then one gzip HDF5 write;
(c) the backbone alone on already-decoded, normalised tensors: the ceiling here.

Rates are sampled frames (videos x T) per second of wall time. resnet50 uses random
weights (timing only); mobilenet_v2 its real weights. Results: benchmarks/RESULTS.md.

    python benchmarks/extraction.py --real [--videos 381] [--seed-videos 48] [--runtimes torch onnxruntime]

The clips of benchmarks/real/ as ``make demo`` extracts them (efficientnet_lite0, 16 frames, its own 224 px,
whole clips), per runtime of the CNN (research.backbones.runtime), side by side: (a) ``extract(cfg)`` end to
end; (c) the CNN alone on decoded frames; (d) decoding alone, in this one process, so the split of the
time shows where it goes; (b) the seed's loop (torch) on the first ``--seed-videos`` clips, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from research.backbones.loading import create_backbone, create_backbones
from research.config import ExtractConfig
from research.features.extraction import extract
from research.features.frames import auto_batch_size
from research.features.settings import FeatureSettings
from research.video.decode import decode_video, normalize
from videogen.writing import generate

SCALES = [1.0, 0.85, 1.15]


def seed_extractor(
    videos: list[Path], backbone: torch.nn.Module, frames: int, size: int, out: Path, multi_scale: bool
) -> float:
    """Seed 000's loop: decode, per-scale CNN passes in batches of 24, lists in RAM, write at the end."""
    start = time.perf_counter()
    all_features, all_num_frames = [], []
    with torch.no_grad():
        for path in videos:
            video = normalize(
                torch.from_numpy(decode_video(path, frames, size).expanded()), backbone.spec.mean, backbone.spec.std
            )
            video = video.contiguous(memory_format=torch.channels_last)
            num_frames = video.shape[0]
            scale_features = []
            for scale in SCALES if multi_scale else [1.0]:
                if scale != 1.0:
                    indices = np.linspace(0, num_frames - 1, max(int(num_frames * scale), 5)).astype(int)
                    scaled = video[indices]
                else:
                    scaled = video
                scale_features.append(torch.cat([backbone(scaled[i : i + 24]) for i in range(0, scaled.shape[0], 24)]))
            max_len = max(sf.shape[0] for sf in scale_features)
            padded = [torch.cat([sf, torch.zeros(max_len - sf.shape[0], sf.shape[1])]) for sf in scale_features]
            feats = torch.stack(padded).mean(0)
            all_features.append(feats.numpy())
            all_num_frames.append(feats.shape[0])
    padded = np.zeros((len(all_features), max(all_num_frames), all_features[0].shape[1]), np.float32)
    for i, f in enumerate(all_features):
        padded[i, : f.shape[0]] = f
    with h5py.File(out, "w") as h5:  # the seed's own writer, timed as the seed ran it
        h5.create_dataset("features", data=padded, compression="gzip", compression_opts=4)
        h5.create_dataset("num_frames", data=np.array(all_num_frames, np.int32))
    return time.perf_counter() - start


def backbone_alone(videos: list[Path], backbone: torch.nn.Module, frames: int, size: int, batch_size: int) -> float:
    decoded = torch.cat([torch.from_numpy(decode_video(p, frames, size).expanded()) for p in videos])
    x = normalize(decoded, backbone.spec.mean, backbone.spec.std)
    if getattr(backbone, "uses_channels_last", True):  # as FrameBatcher hands frames to it
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        backbone(x[:batch_size])  # warm-up
        start = time.perf_counter()
        for i in range(0, x.shape[0], batch_size):
            backbone(x[i : i + batch_size])
    return time.perf_counter() - start


def ours(data: Path, out: Path, backbone: str, frames: int, size: int, outputs: list[str], batch_size: int) -> float:
    cfg = ExtractConfig(
        data_dir=str(data),
        out_dir=str(out),
        backbone=backbone,
        random_weights=backbone != "mobilenet_v2",
        frames=frames,
        image_size=size,
        outputs=outputs,
        splits=["train"],
        batch_size=batch_size,
        clip_seconds=None,
        log_mlflow=False,
    )
    start = time.perf_counter()
    extract(cfg)
    return time.perf_counter() - start


REAL = Path(__file__).resolve().parent / "real"


def real_config(manifest: Path, out: Path, runtime: str) -> ExtractConfig:
    """``make demo``'s extraction (experiments/demo.yaml) of the clips ``manifest`` lists, run by ``runtime``."""
    return ExtractConfig(
        data_dir=str(REAL),
        annotations=str(manifest),
        columns={"label": "class", "group": "source"},
        out_dir=str(out),
        splits=["all"],
        backbone="efficientnet_lite0",
        frames=16,
        image_size=None,
        clip_seconds=None,
        runtime=runtime,
        log_mlflow=False,
    )


def real_main(args: argparse.Namespace, console: Console, tmp: Path) -> dict[str, dict[str, float]]:
    """The clips of benchmarks/real, per runtime: end to end, the CNN alone, decoding alone; the seed's loop."""
    lines = (REAL / "manifest.csv").read_text().splitlines()
    rows = lines[1:]
    count = args.videos or len(rows)  # spread over the manifest, whose rows run class by class
    chosen = rows[:: max(1, len(rows) // count)][:count]
    manifest = tmp / "manifest.csv"
    manifest.write_text("\n".join([lines[0], *chosen]) + "\n")
    paths = [REAL / line.split(",", 1)[0] for line in chosen]
    settings = FeatureSettings.from_config(real_config(manifest, tmp, "torch"))
    part, frames = settings.parts[0], settings.frames
    size, batch = part.image_size, args.batch_size or auto_batch_size(torch.device("cpu"), part.image_size)
    n_frames = len(paths) * frames
    sample = paths[: args.seed_videos]
    start = time.perf_counter()
    for p in sample:
        decode_video(p, frames, size)
    decode_rate = len(sample) * frames / (time.perf_counter() - start)
    seed_net = create_backbone(part.backbone)
    seed_rate = len(sample) * frames / seed_extractor(sample, seed_net, frames, size, tmp / "seed.h5", True)
    table = Table(
        title=f"benchmarks/real: {len(paths)} clips x {frames} frames, {part.backbone} at {size}px, CNN batch "
        f"{batch}; CNN-alone and decoding on the first {len(sample)} clips; threads {torch.get_num_threads()}"
    )
    for col in ("runtime", "variant", "frames/s", "vs seed (b)", "vs CNN alone (c)", "vs torch"):
        table.add_column(col, justify="left" if col in ("runtime", "variant") else "right")
    numbers: dict[str, dict[str, float]] = {
        "(b) seed extractor, multi-scale (torch)": {"fps": seed_rate},
        "(d) decoding alone, 1 process": {"fps": decode_rate},
    }
    for runtime in args.runtimes:
        net = create_backbones(settings, runtime=runtime)[0]
        cnn_rate = len(sample) * frames / backbone_alone(sample, net, frames, size, batch)
        start = time.perf_counter()
        extract(real_config(manifest, tmp / f"ours_{runtime}", runtime))
        numbers[runtime] = {
            "(c) CNN alone": cnn_rate,
            "(a) end to end, both files": n_frames / (time.perf_counter() - start),
        }
    table.add_row("torch", "(b) seed extractor, multi-scale", f"{seed_rate:.1f}", "1.00x", "", "")
    table.add_row("", "(d) decoding alone, 1 process", f"{decode_rate:.1f}", "", "", "")
    for runtime in args.runtimes:
        cnn = numbers[runtime]["(c) CNN alone"]
        for variant, rate in numbers[runtime].items():
            base = numbers[args.runtimes[0]][variant]
            table.add_row(
                runtime, variant, f"{rate:.1f}", f"{rate / seed_rate:.2f}x", f"{rate / cnn:.0%}", f"{rate / base:.2f}x"
            )
    console.print(table)
    # on C cores, decoding (1/decode_rate core-seconds per frame) and the CNN (threads/cnn_rate) share the cores
    for runtime in args.runtimes:
        cnn = numbers[runtime]["(c) CNN alone"]
        cores = os.cpu_count() or 1
        bound = cores / (torch.get_num_threads() / cnn + 1 / decode_rate)
        end = numbers[runtime]["(a) end to end, both files"]
        console.print(
            f"{runtime}: {cores}-core bound with decoding sharing the cores {bound:.1f} frames/s; "
            f"end to end {end:.1f} ({end / bound:.0%} of it)"
        )
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--videos", type=int, default=None, help="generated videos (default 24); --real: clips (default all)"
    )
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="frames per CNN call (default: auto, as extract.py)"
    )
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2", "resnet50"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--real", action="store_true", help="benchmarks/real as make demo extracts it, per runtime")
    parser.add_argument("--seed-videos", type=int, default=48, help="--real: clips for the seed loop and CNN alone")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    args = parser.parse_args()
    console = Console(width=120)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    if args.real:
        numbers = real_main(args, console, tmp)
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2))
        return
    args.videos = args.videos or 24
    generate(
        tmp / "data",
        videos_per_class=max(2, args.videos // 4 * 5 // 3 + 1),
        seed=1,
        fractions=(0.6, 0.2, 0.2),
        progress=False,
    )
    videos = sorted((tmp / "data" / "train").rglob("*.mp4"))[: args.videos]
    for extra in sorted((tmp / "data" / "train").rglob("*.mp4"))[args.videos :]:
        extra.unlink()
    n_frames = len(videos) * args.frames
    batch = args.batch_size or auto_batch_size(torch.device("cpu"), args.image_size)
    table = Table(
        title=f"{len(videos)} videos x {args.frames} frames at {args.image_size}px, CNN batch {batch} (seed loop: 24), "
        f"torch threads {torch.get_num_threads()}"
    )
    for col in ("backbone", "variant", "seconds", "frames/s", "vs seed (b)", "vs backbone (c)"):
        table.add_column(col, justify="right" if col not in ("backbone", "variant") else "left")
    numbers = {}
    for name in args.backbones:
        backbone = create_backbone(name, pretrained=name == "mobilenet_v2")
        times: dict[str, list[float]] = {k: [] for k in ("c", "b", "multi", "single", "both")}
        for rep in range(args.repeats):  # interleaved, best of N: the machine is shared and noisy
            times["c"].append(backbone_alone(videos, backbone, args.frames, args.image_size, batch))
            times["b"].append(
                seed_extractor(
                    videos, backbone, args.frames, args.image_size, tmp / f"seed_{name}.h5", multi_scale=True
                )
            )
            for kind, outputs in (("multi", ["multi"]), ("single", ["single"]), ("both", ["single", "multi"])):
                times[kind].append(
                    ours(
                        tmp / "data",
                        tmp / f"ours_{name}_{kind}_{rep}",
                        name,
                        args.frames,
                        args.image_size,
                        outputs,
                        args.batch_size,
                    )
                )
        t_c, t_b, t_a_multi, t_a_single, t_a_both = (min(times[k]) for k in ("c", "b", "multi", "single", "both"))
        rows = {
            "(c) backbone alone": t_c,
            "(b) seed extractor, multi-scale": t_b,
            "(a) ours, single-scale": t_a_single,
            "(a) ours, multi-scale": t_a_multi,
            "(a) ours, both files": t_a_both,
        }
        numbers[name] = rows
        for variant, t in rows.items():
            table.add_row(
                name,
                variant,
                f"{t:.1f}",
                f"{n_frames / t:.0f}",
                f"{t_b / t:.2f}x",
                f"{(n_frames / t) / (n_frames / t_c):.0%}",
            )
        console.print(
            f"{name}: multi-scale costs {t_a_multi / t_a_single - 1:+.1%} over single-scale; "
            f"ours is {t_b / t_a_multi:.2f}x the seed"
        )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
