"""Extraction throughput: ours vs the seed's extractor vs the backbone alone, side by side.

    python benchmarks/extraction.py [--videos 8] [--frames 32] [--image-size 160] [--backbones mobilenet_v2 resnet50]

On the same generated videos and backbone, in one process run:

(a) ``extract(cfg)`` (runtime auto: ONNX Runtime on this CPU): decoding in a worker overlapped with the CNN,
    frames batched across videos, one CNN pass for all scales, rows streamed to disk;
(b) the seed's extractor, re-implemented faithfully: sequential decode, a CNN pass
    per temporal scale (batches of 24), every feature held in RAM until the end,
    then one gzip HDF5 write (torch, as the seed ran);
(c) the backbone alone, in (a)'s runtime, on already-decoded, normalised tensors: the ceiling here.

Rates are sampled frames (videos x T) per second of wall time. Backbones without offline weights (resnet50)
use random weights (timing only), and (a) then exports them to ONNX in memory at every run (counted);
mobilenet_v2 and the EfficientNet-Lites their real weights, exported once.

    python benchmarks/extraction.py --real [--videos 381] [--seed-videos 48] [--runtimes torch onnxruntime]

The clips of benchmarks/real/ as ``make demo`` extracts them (efficientnet_lite0, 16 frames, its own 224 px,
whole clips), per runtime of the CNN (research.backbones.runtime), side by side: (a) ``extract(cfg)`` end to
end, with its CPU time split by stage (``CpuSplit``: decode, colour conversion and resize, normalisation and
batching, the CNN, writes, and what is left in each process); (c) the CNN alone on decoded frames; (d) decoding
alone, in this one process; (b) the seed's loop (torch) on the first ``--seed-videos`` clips, for the ratio.

``--results benchmarks/RESULTS.md --label "..."`` writes the tables as a dated section of that file (replacing
the section of the same mode and label), the label naming the code measured. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from research.backbones.loading import create_backbone, create_backbones
from research.backbones.runtime import onnx_backbone, resolve_runtime
from research.config import ExtractConfig
from research.features.extraction import extract
from research.features.frames import auto_batch_size, decode_workers
from research.features.settings import FeatureSettings
from research.video.decode import decode_video, normalize
from videogen.writing import generate

SCALES = [1.0, 0.85, 1.15]
# backbones whose real weights load offline (the rest run with random weights: timing only)
REAL_WEIGHTS = ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# the sections --results writes (their titles, less the label of the code measured and the date)
REAL_TITLE = "## Extraction of benchmarks/real, stage by stage (`benchmarks/extraction.py --real`, issue 50)"
GENERATED_TITLE = "## Extraction against the seed's loop (`benchmarks/extraction.py`, issue 50)"


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
        random_weights=backbone not in REAL_WEIGHTS,
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

# ----------------------------------------------------------------- CPU split by stage

# (stage, where it runs, what it counts): every stage of one extraction, in the order a frame meets them
STAGES = (
    ("decode", "workers", "probe, demux and decode (research.video.decode.decode_video, less the conversion)"),
    ("convert", "workers", "colour conversion and resize to the CNN's size (swscale: to_rgb)"),
    ("workers, other", "workers", "the rest of the decoding processes: handing frames to the main process"),
    ("set-up", "main", "the backbone loaded once per run: the torch module, or ONNX Runtime's session"),
    ("tensor", "main", "normalisation and the CNN's input layout, batching (FrameBatcher._run, less the CNN)"),
    ("cnn", "main", "the CNN itself (the torch module's forward, or ONNX Runtime's session.run)"),
    ("write", "main", "part files and the final HDF5 files (PartWriter, assemble)"),
    ("main, other", "main", "the rest of the main process: set-up, receiving frames, scales, checks, progress"),
)
TIMED = (
    "decode",
    "convert",
    "set-up",
    "tensor",
    "cnn",
    "write",
)  # what the wrappers count; the two others are remainders


class CpuSplit:
    """CPU seconds per stage of one ``extract(cfg)`` run, counted in the processes that do the work.

    The stage functions are wrapped, for the run only, with a timer of the calling process's CPU
    (``time.process_time``: every thread of it, so ONNX Runtime's and torch's intra-op threads count where
    they run); nested timed calls count once, in the innermost stage (``decode_video`` less its
    ``to_rgb``). The decoding workers are forked from this process, so they inherit the wrappers and add
    into counters in shared memory. Nothing else changes: the same processes, threads and batches as an
    unmeasured run, and a wrapper costs two clock reads per call (a few per frame).

    ``main, other`` and ``workers, other`` are what the wrappers did not see, from each side's total: this
    process's CPU and its reaped children's (``getrusage(RUSAGE_CHILDREN)``: the workers, joined when the
    loader is exhausted). So the stages add up to the whole by construction, and the remainders say how
    much of it the named stages leave out.
    """

    def __init__(self) -> None:
        self.counters = multiprocessing.Array("d", len(TIMED))  # seconds per timed stage, every process
        self._stack: list[list[float]] = []  # this process's open timed calls: [start, time of nested calls]
        self._undo: list[tuple[Any, str, Any]] = []
        self.seconds: dict[str, float] = {}

    def _timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        slot = TIMED.index(stage)

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.process_time(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.process_time() - frame[0]
                if self._stack:
                    self._stack[-1][1] += elapsed  # the caller's stage does not count it again
                with self.counters.get_lock():
                    self.counters[slot] += elapsed - frame[1]

        return timed

    def _wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        self._undo.append((owner, name, original))
        setattr(owner, name, self._timed(stage, original))

    def _instrumented(self, create: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
        """``create_backbones`` whose networks time their own forward pass: the CNN stage."""

        def wrapped(*args: Any, **kwargs: Any) -> list[Any]:
            nets = create(*args, **kwargs)
            for net in nets:
                if isinstance(net, torch.nn.Module):
                    net.register_forward_pre_hook(lambda *_: self._stack.append([time.process_time(), 0.0]))
                    net.register_forward_hook(lambda *_: self._stop_hook())
                else:  # OnnxBackbone: time the session's run, not the tensor's conversion around it
                    net.session = _TimedSession(net.session, self._timed("cnn", net.session.run))
            return nets

        return wrapped

    def _stop_hook(self) -> None:
        start, nested = self._stack.pop()
        elapsed = time.process_time() - start
        if self._stack:
            self._stack[-1][1] += elapsed
        with self.counters.get_lock():
            self.counters[TIMED.index("cnn")] += elapsed - nested

    def __enter__(self) -> CpuSplit:
        import research.features.extraction as extraction
        import research.features.frames as frames
        import research.features.writing as writing
        import research.video.decode as decode

        self._wrap(frames, "decode_video", "decode")
        self._wrap(decode, "to_rgb", "convert")
        self._wrap(frames.FrameBatcher, "_run", "tensor")
        for name in ("add", "skip", "flush"):
            self._wrap(writing.PartWriter, name, "write")
        self._wrap(extraction, "assemble", "write")
        self._undo.append((extraction, "create_backbones", extraction.create_backbones))
        extraction.create_backbones = self._timed("set-up", self._instrumented(extraction.create_backbones))
        self._own, self._children = time.process_time(), _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        own, children = time.process_time() - self._own, _children_cpu() - self._children
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        got = dict(zip(TIMED, self.counters, strict=True))
        workers = got["decode"] + got["convert"]
        main = got["set-up"] + got["tensor"] + got["cnn"] + got["write"]
        self.seconds = got | {"workers, other": children - workers, "main, other": own - main}
        self.seconds = {stage: self.seconds[stage] for stage, _, _ in STAGES} | {"total": own + children}


class _TimedSession:
    """An ONNX Runtime session whose ``run`` is timed; everything else is the session's."""

    def __init__(self, session: Any, run: Callable[..., Any]) -> None:
        self._session, self.run = session, run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def real_main(args: argparse.Namespace, console: Console, tmp: Path) -> tuple[dict[str, Any], str]:
    """The clips of benchmarks/real, per runtime: end to end with its CPU split, the CNN alone, decoding
    alone; the seed's loop. Returns the numbers and the RESULTS.md section they make."""
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
    load = os.getloadavg()[0]
    start = time.perf_counter()
    for p in sample:
        decode_video(p, frames, size)
    decode_rate = len(sample) * frames / (time.perf_counter() - start)
    seed_net = create_backbone(part.backbone)
    seed_rate = len(sample) * frames / seed_extractor(sample, seed_net, frames, size, tmp / "seed.h5", True)
    nets = {runtime: create_backbones(settings, runtime=runtime)[0] for runtime in args.runtimes}  # exported once
    cnn_rate = {
        runtime: len(sample) * frames / backbone_alone(sample, nets[runtime], frames, size, batch)
        for runtime in args.runtimes
    }
    walls: dict[str, float] = {}
    splits: dict[str, dict[str, float]] = {}
    for rep in range(args.repeats):  # interleaved, best of N: the machine is shared
        for runtime in args.runtimes:
            with CpuSplit() as split:
                start = time.perf_counter()
                extract(real_config(manifest, tmp / f"ours_{runtime}_{rep}", runtime))
                wall = time.perf_counter() - start
            if wall < walls.get(runtime, float("inf")):
                walls[runtime], splits[runtime] = wall, split.seconds
    numbers: dict[str, Any] = {
        "(b) seed extractor, multi-scale (torch)": {"fps": seed_rate},
        "(d) decoding alone, 1 process": {"fps": decode_rate},
    }
    for runtime in args.runtimes:
        numbers[runtime] = {"(c) CNN alone": cnn_rate[runtime], "(a) end to end, both files": n_frames / walls[runtime]}
    numbers["cpu_split_seconds"] = splits
    setup = (
        f"{len(paths)} clips of benchmarks/real x {frames} frames, {part.backbone} at {size} px "
        f"(experiments/demo.yaml's extraction: whole clips, both files), CNN batch {batch}; the CNN alone, "
        f"decoding alone and the seed's loop (torch, multi-scale) on the first {len(sample)} clips; end to end "
        f"best of {args.repeats}, runtimes interleaved. {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {version('onnxruntime')}, decode workers "
        f"{decode_workers(None)}; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        f"Code: {args.label}."
    )
    rates = rate_rows(numbers, args.runtimes, seed_rate, decode_rate)
    stages = split_rows(splits, args.runtimes, n_frames)
    notes = split_notes(splits, numbers, args.runtimes, n_frames)
    for title, (header, body) in (("throughput", rates), ("CPU split", stages)):
        table = Table(title=f"{title}: {setup}" if title == "throughput" else title)
        for col in header:
            table.add_column(col, justify="left" if col in ("runtime", "variant", "stage", "where") else "right")
        for row in body:
            table.add_row(*row)
        console.print(table)
    for note in notes:
        console.print(f"- {note}")
    command = shlex.join(["python", "benchmarks/extraction.py", *sys.argv[1:]])
    return numbers, section(f"{REAL_TITLE}, {args.label}", command, setup, [rates, stages], notes)


def rate_rows(
    numbers: dict[str, Any], runtimes: list[str], seed_rate: float, decode_rate: float
) -> tuple[list[str], list[list[str]]]:
    """The throughput table: each runtime's end to end and CNN alone, against the seed, the CNN and torch."""
    header = ["runtime", "variant", "frames/s", "vs seed (b)", "vs CNN alone (c)", f"vs {runtimes[0]}"]
    body = [
        ["torch", "(b) seed extractor, multi-scale", f"{seed_rate:.1f}", "1.00x", "", ""],
        ["", "(d) decoding alone, 1 process", f"{decode_rate:.1f}", "", "", ""],
    ]
    for runtime in runtimes:
        cnn = numbers[runtime]["(c) CNN alone"]
        for variant, rate in numbers[runtime].items():
            base = numbers[runtimes[0]][variant]
            body.append(
                [
                    runtime,
                    variant,
                    f"{rate:.1f}",
                    f"{rate / seed_rate:.2f}x",
                    f"{rate / cnn:.0%}",
                    f"{rate / base:.2f}x",
                ]
            )
    return header, body


def split_rows(
    splits: dict[str, dict[str, float]], runtimes: list[str], n_frames: int
) -> tuple[list[str], list[list[str]]]:
    """The CPU split table: per stage and runtime, CPU seconds, milliseconds per frame and share of the whole."""
    header = ["stage", "where"] + [f"{r}: {c}" for r in runtimes for c in ("CPU s", "ms/frame", "share")]
    body = []
    for stage, where, what in (*STAGES, ("total", "both", "")):
        row = [f"{stage}: {what}" if what else stage, where]
        for runtime in runtimes:
            seconds, total = splits[runtime][stage], splits[runtime]["total"]
            row += [f"{seconds:.2f}", f"{1000 * seconds / n_frames:.2f}", f"{seconds / total:.0%}"]
        body.append(row)
    return header, body


def split_notes(
    splits: dict[str, dict[str, float]], numbers: dict[str, Any], runtimes: list[str], n_frames: int
) -> list[str]:
    """What the split means: the bound the CPU alone sets, and how many decoders one CNN needs."""
    cores = os.cpu_count() or 1
    notes = [
        "CPU time is counted in the processes that do the work, during the end-to-end run itself (`CpuSplit`): "
        "each stage function timed by `time.process_time` in its own process (every thread of it), the decoding "
        "workers' counters summed in shared memory; each side's rest is its total (this process's CPU, and its "
        "reaped workers' from `getrusage`) less its timed stages, so the stages add up to the whole. ms/frame: "
        "per sampled frame (clips x T). Under load CPU time moves much less than the frames/s above, except where "
        "threads spin-wait: torch's OpenMP threads burn more CPU the more they wait for a core."
    ]
    for runtime in runtimes:
        s = {k: 1000 * v / n_frames for k, v in splits[runtime].items()}  # ms of CPU per frame
        decoding = s["decode"] + s["convert"] + s["workers, other"]
        end = numbers[runtime]["(a) end to end, both files"]
        bound = 1000 * cores / s["total"]
        notes.append(
            f"{runtime}: {s['total']:.2f} ms of CPU per frame, so {cores} cores allow at most {bound:.1f} frames/s; "
            f"end to end reached {end:.1f} ({end / bound:.0%} of it). Decoding (decode, convert, workers' rest) is "
            f"{decoding:.2f} ms per frame, the CNN {s['cnn']:.2f}: one decoding process keeps up with a CNN that runs "
            f"up to {1000 / decoding:.0f} frames/s, and a device whose CNN runs R frames/s needs "
            f"R x {decoding / 1000:.4f} decoding processes (cores)."
        )
    return notes


def section(
    title: str, command: str, setup: str, tables: list[tuple[list[str], list[list[str]]]], notes: list[str]
) -> str:
    """A RESULTS.md section: the title, dated today, the command, what was measured, the tables and notes."""
    lines = [f"{title} — {datetime.date.today().isoformat()}", "", f"`{command}` — {setup}", ""]
    for header, body in tables:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        lines.append("")
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_section(path: Path, title: str, text: str) -> None:
    """Replace the section of ``path`` that starts with ``title`` (up to the next ``## ``), or append ``text``."""
    old = path.read_text() if path.is_file() else ""
    start = old.find(title + " — ")
    if start < 0:
        path.write_text(old.rstrip("\n") + "\n\n" + text)
        return
    end = old.find("\n## ", start + len(title))
    path.write_text(old[:start] + text + (old[end:] if end >= 0 else ""))


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
    parser.add_argument("--results", type=Path, default=None, help="write the tables as a dated section of this file")
    parser.add_argument(
        "--label", default="this checkout", help="which code was measured: named in the section (and its title)"
    )
    args = parser.parse_args()
    console = Console(width=120)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    if args.real:
        numbers, text = real_main(args, console, tmp)
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2))
        if args.results:
            write_section(args.results, f"{REAL_TITLE}, {args.label}", text)
            console.print(f"wrote its section into {args.results}")
        return
    args.videos = args.videos or 24
    generate(
        tmp / "data",
        videos_per_class=max(3, args.videos // 4 * 5 // 3 + 1),  # at least one per split
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
    generated_rows: list[list[str]] = []
    generated_notes: list[str] = []
    load = os.getloadavg()[0]
    runtime = resolve_runtime("auto", torch.device("cpu"))  # what (a) runs the CNN with
    for name in args.backbones:
        backbone = create_backbone(name, pretrained=name in REAL_WEIGHTS)
        alone = backbone  # (c) in the runtime (a) runs
        if runtime == "onnxruntime":
            plain = create_backbone(name, pretrained=name in REAL_WEIGHTS, channels_last=False)
            alone = onnx_backbone(name, plain, args.image_size, pretrained=name in REAL_WEIGHTS)
        times: dict[str, list[float]] = {k: [] for k in ("c", "b", "multi", "single", "both")}
        for rep in range(args.repeats):  # interleaved, best of N: the machine is shared and noisy
            times["c"].append(backbone_alone(videos, alone, args.frames, args.image_size, batch))
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
            row = [name, variant, f"{t:.1f}", f"{n_frames / t:.0f}", f"{t_b / t:.2f}x", f"{t_c / t:.0%}"]
            table.add_row(*row)
            generated_rows.append(row)
        generated_notes.append(
            f"{name}: multi-scale costs {t_a_multi / t_a_single - 1:+.1%} over single-scale; "
            f"ours (both files) is {t_b / t_a_both:.2f}x the seed"
        )
        console.print(generated_notes[-1])
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    if args.results:
        header = ["backbone", "variant", "seconds", "frames/s", "vs seed (b)", "vs backbone (c)"]
        body = [[str(c) for c in row] for row in generated_rows]
        setup = (
            f"{len(videos)} generated videos x {args.frames} frames at {args.image_size} px, CNN batch {batch} (the "
            f"seed's loop: 24, torch); (a) and (c) run by {runtime} (runtime auto); "
            f"best of {args.repeats}, interleaved. {os.cpu_count()} cores, torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {version('onnxruntime')}; load "
            f"average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Code: {args.label}."
        )
        command = shlex.join(["python", "benchmarks/extraction.py", *sys.argv[1:]])
        title = f"{GENERATED_TITLE}, {args.label}"
        write_section(args.results, title, section(title, command, setup, [(header, body)], generated_notes))
        console.print(f"wrote its section into {args.results}")


if __name__ == "__main__":
    main()
