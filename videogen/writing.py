"""Writing a dataset: the videos, ``manifest.csv``, ``generator.json``; re-using one made the same way.

The layout is the seed's input layout ``ROOT/{split}/{category}/{subcategory}/NAME.mp4`` (H.264,
yuv420p, written with PyAV), with a ``manifest.csv`` of every video and the parameters that
generated it, and a ``generator.json`` of everything that determines the dataset (``ensure``
re-uses a dataset only when it matches, and otherwise refuses unless told to overwrite).

The same arguments give byte-identical files: every video has its own RNG seeded from (seed,
split, category, subcategory, index), and x264 runs single-threaded.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from rich.progress import Progress

from research.errors import UserError
from videogen.catalogue import CATALOG, CATEGORIES, subcategories
from videogen.difficulty import apply_overlays, overlay_params
from videogen.drawing import Frames, font

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
RESOLUTIONS = ((320, 240), (256, 256), (352, 288), (426, 240), (300, 200), (240, 180), (362, 228))  # heights % 4 == 0
FPS_CHOICES = (15, 20, 24, 25, 30)  # the real-footage clips' rates, in equal shares
# Bumped whenever the same arguments would draw different videos; recorded in generator.json, so a
# dataset made by an older generator is never mistaken for the current one (``ensure`` checks it).
# 2: per-video difficulty, overlays, compression; 3: every confuser certain at difficulty 1;
# 4: lifelike renderers; 5: board games draw their mouse pointer; 6: ray-traced 3-D worlds.
GENERATOR_VERSION = 6


@dataclass(frozen=True)
class VideoJob:
    split: str
    category: str
    subcategory: str
    index: int
    seed: int
    min_seconds: float
    max_seconds: float
    difficulty: tuple[float, float] = (0.0, 1.0)  # each video draws its own level uniformly from this range

    @property
    def relpath(self) -> str:
        return f"{self.split}/{self.category}/{self.subcategory}/{self.subcategory}_{self.index:04d}.mp4"


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar YUV 4:2:0 as one ``[H*3/2, W]`` array, in integers.

    Exact integer arithmetic (the classic fixed-point formula) rather than swscale or
    floats, so the encoder's input is bit-identical on every run and machine.
    """
    x = rgb.astype(np.uint16)
    h, w = x.shape[:2]
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16  # <= 56228: fits uint16
    # Chroma from 2x2 block sums (4x the mean), in int32 for the signed coefficients.
    blocks = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]).astype(np.int32)
    rs, gs, bs = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    planes = np.concatenate([y, u.reshape(h // 4, w), v.reshape(h // 4, w)])
    return np.clip(planes, 0, 255).astype(np.uint8)


def _yuv_frame(planes: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame over our own buffer, followed by zeroed slack.

    x264 reads past the picture (rows up to the next multiple of 16, SIMD overreads);
    with ffmpeg-allocated frames those bytes are uninitialised heap, which leaked into
    the bitstream and broke byte-identical output. Zero-copy over a buffer with
    zeros after the planes makes every byte the encoder can read deterministic.
    """
    slack = 32 * planes.shape[1] + 4096
    buffer = np.zeros(planes.size + slack, np.uint8)
    view = buffer[: planes.size].reshape(planes.shape)
    view[:] = planes
    return av.VideoFrame.from_numpy_buffer(view, format="yuv420p")


def write_video(path: Path, frames: Frames, width: int, height: int, fps: int, qp: int = 26) -> int:
    """Encode RGB frames to H.264/yuv420p, byte-identically for identical frames.

    Byte-identical output needed three things, each found by a failing test: our own
    integer RGB->YUV conversion (swscale/numpy-float results varied with memory
    alignment), frames over our own zero-padded buffer (x264 reads past the picture),
    and single-threaded constant-QP x264 without mbtree/AQ, whose float rate control
    gave different decisions once torch had run in the same process.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    count = 0
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "veryfast",
            "qp": str(qp),
            "threads": "1",
            "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0:aq-mode=0",
        }
        stream.codec_context.thread_count = 1  # parallelism is over videos, not inside one
        for frame in frames:
            yuv = _yuv_frame(rgb_to_yuv420p(frame))
            for packet in stream.encode(yuv):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return count


def make_video(job: VideoJob, root: Path) -> dict:
    """Render and encode one video; returns its manifest row."""
    sub = next(s for s in CATALOG if s.category == job.category and s.name == job.subcategory)
    key = [job.seed, SPLITS.index(job.split), CATEGORIES.index(job.category), CATALOG.index(sub), job.index]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    fps = int(rng.choice(FPS_CHOICES))
    seconds = float(rng.uniform(job.min_seconds, job.max_seconds))
    n_frames = max(round(seconds * fps), 1)
    lo, hi = job.difficulty
    difficulty = float(lo + (hi - lo) * rng.uniform())
    params = sub.sample_params(rng, difficulty)
    overlays = overlay_params(rng, difficulty, job.category)
    rendered = sub.render(rng, width, height, n_frames, params)
    frames = (np.ascontiguousarray(f, dtype=np.uint8) for f in apply_overlays(rendered, rng, overlays, width, height))
    written = write_video(root / job.relpath, frames, width, height, fps, qp=overlays["qp"])
    return {
        "path": job.relpath,
        "split": job.split,
        "category": job.category,
        "label": CATEGORIES.index(job.category),
        "subcategory": job.subcategory,
        "difficulty": round(difficulty, 4),
        "width": width,
        "height": height,
        "fps": fps,
        "frames": written,
        "seconds": round(written / fps, 3),
        "params": json.dumps(params | {"overlays": overlays}, sort_keys=True),
    }


def plan_jobs(
    videos_per_class: int,
    seed: int,
    fractions: tuple[float, float, float],
    min_seconds: float,
    max_seconds: float,
    difficulty: tuple[float, float] = (0.0, 1.0),
) -> list[VideoJob]:
    """Split each class's videos over train/val/test (each at least one), round-robin over its subcategories.

    The round-robin runs across the splits, so even a tiny set covers every subcategory
    once it has as many videos per class as the class has subcategories.
    """
    if not 0 <= difficulty[0] <= difficulty[1] <= 1:
        raise UserError(f"difficulty range {difficulty}: needs 0 <= LO <= HI <= 1")
    if videos_per_class < len(SPLITS):
        raise UserError(f"videos_per_class={videos_per_class}: at least {len(SPLITS)} are needed, one per split")
    counts = [max(1, round(videos_per_class * f)) for f in fractions[1:]]
    counts.insert(0, videos_per_class - sum(counts))
    if counts[0] < 1:
        raise UserError(f"videos_per_class={videos_per_class} leaves no training videos with fractions {fractions}")
    most = max(len(subcategories(c)) for c in CATEGORIES)
    if videos_per_class < most:
        log.warning("%d videos per class cannot cover all %d subcategories of every class", videos_per_class, most)
    jobs = []
    for category in CATEGORIES:
        subs = subcategories(category)
        k = 0  # the class's video counter across splits
        for split, count in zip(SPLITS, counts, strict=True):
            for i in range(count):
                jobs.append(
                    VideoJob(split, category, subs[k % len(subs)].name, i, seed, min_seconds, max_seconds, difficulty)
                )
                k += 1
    return jobs


def generate(
    out: str | Path,
    videos_per_class: int = 40,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    min_seconds: float = 3.0,
    max_seconds: float = 12.0,
    difficulty: tuple[float, float] = (0.0, 1.0),
    workers: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Write the dataset, ``manifest.csv`` and ``generator.json`` under ``out``; returns the manifest rows."""
    root = Path(out)
    recipe = generator_settings(videos_per_class, seed, fractions, min_seconds, max_seconds, difficulty)
    jobs = plan_jobs(videos_per_class, seed, fractions, min_seconds, max_seconds, tuple(difficulty))
    workers = workers or os.cpu_count() or 1
    rows: list[dict] = []
    with ProcessPoolExecutor(workers) as pool, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating videos", total=len(jobs))
        for row in pool.map(make_video, jobs, [root] * len(jobs), chunksize=1):
            rows.append(row)
            bar.advance(task)
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "generator.json").write_text(json.dumps(recipe, indent=2))
    return rows


def generator_settings(
    videos_per_class: int,
    seed: int,
    fractions: tuple[float, float, float],
    min_seconds: float,
    max_seconds: float,
    difficulty: tuple[float, float],
) -> dict:
    """Everything that determines a generated dataset (written to ``generator.json``)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "videos_per_class": videos_per_class,
        "seed": seed,
        "fractions": [float(f) for f in fractions],
        "seconds": [float(min_seconds), float(max_seconds)],
        "difficulty": [float(d) for d in difficulty],
    }


def read_generator_settings(root: str | Path) -> dict | None:
    path = Path(root) / "generator.json"
    return json.loads(path.read_text()) if path.is_file() else None


def read_manifest(root: str | Path) -> list[dict]:
    with (Path(root) / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def ensure(
    out: str | Path, wanted: dict, overwrite: bool = False, workers: int | None = None, progress: bool = True
) -> list[dict]:
    """``generate`` the dataset ``wanted`` describes (``generator_settings``), or re-use ``out`` if its
    ``generator.json`` says it was made exactly so; a dataset made otherwise is refused (``overwrite``:
    deleted and drawn again). Returns the manifest rows."""
    root = Path(out)
    if (root / "manifest.csv").is_file():
        recorded = read_generator_settings(root)
        if recorded == wanted:
            rows = read_manifest(root)
            log.info("dataset: re-using %s (%d videos)", root, len(rows))
            return rows
        if not overwrite:
            changed = sorted(k for k in wanted if (recorded or {}).get(k) != wanted[k])
            raise UserError(
                f"{root} was generated differently ({', '.join(changed)} differ from this run"
                f"{'; no generator.json: an older generator' if recorded is None else ''}). "
                "Pass --overwrite to generate it again, or write it elsewhere."
            )
        shutil.rmtree(root)
    start = time.perf_counter()
    n, seed, seconds = wanted["videos_per_class"], wanted["seed"], wanted["seconds"]
    fractions, difficulty = tuple(wanted["fractions"]), tuple(wanted["difficulty"])
    rows = generate(root, n, seed, fractions, *seconds, difficulty, workers, progress)
    log.info("dataset: %d videos in %.0f s -> %s", len(rows), time.perf_counter() - start, root)
    return rows


def contact_sheet(root: str | Path, out: str | Path, thumb: int = 128) -> Path:
    """One middle frame per subcategory (its first video in any split), in a grid: categories × subcategories."""
    root = Path(root)
    per_cat = max(len(subcategories(c)) for c in CATEGORIES)
    label_w = 130
    sheet = Image.new("RGB", (label_w + per_cat * (thumb + 4), len(CATEGORIES) * (thumb + 18)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, category in enumerate(CATEGORIES):
        y = r * (thumb + 18)
        draw.text((4, y + thumb // 2), category, font=font(13, bold=True), fill=(0, 0, 0))
        for c, sub in enumerate(subcategories(category)):
            videos = sorted(root.glob(f"*/{category}/{sub.name}/*.mp4"))  # a small set may lack some subcategories
            x = label_w + c * (thumb + 4)
            draw.text((x, y + thumb + 2), sub.name, font=font(11), fill=(60, 60, 60))
            if not videos:
                continue
            with av.open(str(videos[0])) as container:
                stream = container.streams.video[0]
                frames = list(container.decode(stream))
            sheet.paste(frames[len(frames) // 2].to_image().resize((thumb, thumb)), (x, y))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out
