"""Every stage after extraction at a collection's size: wall time and peak memory per stage, N = 10^4 .. 10^6 clips.

    OMP_NUM_THREADS=1 python benchmarks/scale.py --clips 10000 100000 1000000 --frames 2 --out /tmp/scale_bench
    OMP_NUM_THREADS=1 python benchmarks/scale.py --clips 10000 100000 1000000 --frames 2 --one-group-per-clip \
        --stages split difference headline --out /tmp/scale_bench_per_clip
    OMP_NUM_THREADS=1 python benchmarks/scale.py --clips 3000 10000 --out /tmp/scale_bench   # the "before" run

(issue 40; the table and each stage's growth exponent go to ``OUT/scale.md``; ``--append-results
benchmarks/RESULTS.md --label after`` also appends them there as a dated section). 10^6 clips of the demo's
16 frames would need ~90 GB per feature-file copy: ``--frames 2`` (4 where ~60 GB are free) writes fewer
frames per clip, the same at every size so that the growth exponents compare like with like, and the table
says so. Before a size is written, the free disk is checked against what its stages write (~4.4 feature
files, gzip saving what it saves on the real file, and the pooled means kept beside them: ~10 GB at 10^6); a
size that does not fit is refused in one line (exit 1).

For each N it fabricates a collection's extracted features, as extraction writes them: one single-scale file
``all_features.h5`` (the project's own layout: ``create_layout`` under ``writing``, gzip 4, one chunk per clip,
the attributes of the real file with this file's frames, ids and fingerprints) and an annotation CSV
(``path,class,group``). Rows are the real rows of ``features/demo/all_features.h5`` (efficientnet_lite0
features of benchmarks/real's 381 clips, made by ``make demo``) times ``1 + 0.1 * noise``: each drawn group
copies one real source (its class, its clips), so a group's clips look alike, as a source's do. Without that
file the rows come from a fixed random basis (the table says so). Group sizes have a long tail (lognormal,
median 5 clips, sigma 1.5, at most N/50); ``--one-group-per-clip`` writes no group column instead (a
Kinetics-like list: the pipeline then makes each clip its own group).

Then every stage runs as ``research.commands.pipeline`` runs it, each in a fresh process (``--stage``), so
that its peak RSS (``os.wait4``'s ``ru_maxrss``) is its own; a stage past ``--limit`` seconds is killed and
recorded as ``> limit``:

- ``split``: ``pipeline.split_by_group`` (groups, balanced grouped split, the train/val/test files, split.json):
  from 10^4 clips (``cv.headline_cv_below``) the pipeline splits once instead of cross-validating;
- ``train``: one member's job (``members.run_member_jobs``, serially), one epoch, of a small registered model
  (``mean_pool``, hidden 128: the baseline's 64 M parameters on CPU are a compute question, not a scale one),
  batch 64, single-scale;
- ``probe``: ``classifier.fit_split_probe`` (issue 49: the grid of C walked with warm starts on a subsample of at
  most 50 000 train clips and scored on val, one warm-started fit on all of train, the temperature), from the
  pooled means of train and val, computed here unless kept beside the files; the notes under the table give its
  fits, evaluations and passes over the data; the probe is kept (pickled) for the next stages, as the pipeline
  keeps it in memory;
- ``choice``: ``pipeline.choose_on_validation`` with that probe (the member scored on val with TTA, the probe's
  val probabilities, the grouped difference): nothing fitted again;
- ``difference``: ``metrics.grouped_bootstrap_difference`` on the train+val clips, ``cv.bootstrap`` resamples (two
  fabricated prediction vectors: its cost does not depend on their values);
- ``headline``: ``metrics.grouped_bootstrap_interval`` on every clip (the interval every row of a CV carries);
- ``intervals``: ``bootstrap_interval`` and ``calibration_scores`` (its ECE interval) on the test part's
  probabilities (fabricated), as every report row computes them;
- ``evaluate``: ``evaluation.evaluate`` whole (the member with TTA, the probe, every row with its intervals,
  the reliability plot, predictions.csv), re-using the choice's validation scores and the probe;
- ``predictions``: ``predictions.write_predictions`` of the test part alone.

Seconds are the stage's own (after the imports); peak RSS includes the interpreter with the project imported
(torch, torchvision, scikit-learn, matplotlib): the row ``imports`` is that alone, a process that does nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the stages measure this checkout's code, not whichever one is installed
REAL_FEATURES = ROOT / "features" / "demo" / "all_features.h5"
FIXED = ("fabricate",)  # the row before the stages: the collection written
STAGES = (
    "imports",
    "split",
    "train",
    "probe",
    "choice",
    "difference",
    "headline",
    "intervals",
    "evaluate",
    "predictions",
)
FEATURE_DIM = 1280  # efficientnet_lite0's, the demo's
NOISE = 0.1  # multiplicative: a fabricated row is a real row times 1 + 0.1 * N(0, 1)
BLOCK = 512  # clips fabricated and written at a time
# Feature files written per size, in pools: the pool and the split's copy (the choice reads val: no folds).
DISK_FACTOR = 1 + 1
# The pooled means kept beside the feature files (``classifier.pooled_file``): the pool's and the split's train,
# val and test parts' (5 grouped folds, val 0.2 of the rest), float64 up to 1 GB a file and float32 above.
MEANS_SHARES = (1.0, 0.64, 0.16, 0.2)
MEANS_FLOAT64_BYTES = 2**30  # classifier.MEANS_FLOAT64_BYTES (not imported: the parent process stays light)
DISK_MARGIN = 5 << 30  # left free for everyone else


# ------------------------------------------------------------------ the collection


@dataclasses.dataclass
class Basis:
    """The rows fabricated clips copy: real features (or a fixed random basis), their labels and sources."""

    features: np.ndarray  # [R, T, D] float32
    labels: np.ndarray  # [R]
    sources: list[str]  # each row's source (what a drawn group copies)
    attrs: dict[str, Any]
    what: str


def real_basis(source: Path) -> Basis:
    """The demo's extracted rows, or (no such file) 381 rows of a fixed random basis over 20 sources."""
    import h5py

    from research.features.hdf5 import read_attrs

    if source.is_file():
        with h5py.File(source, "r") as f:
            features, labels = f["features"][()], f["labels"][()].astype(np.int64)
            ids = [v.decode() for v in f["video_ids"][()]]
        sources = [vid.split("/")[3] if vid.count("/") >= 4 else vid for vid in ids]
        return Basis(features, labels, sources, read_attrs(source), f"real rows of {source.relative_to(ROOT)}")
    rng = np.random.default_rng(0)
    sources = [f"source{i % 20:02d}" for i in range(381)]
    labels = np.array([i % 20 % 4 for i in range(381)], np.int64)
    centres = rng.gamma(1.0, 0.5, (20, 1, FEATURE_DIM)).astype(np.float32)
    features = np.maximum(centres[[i % 20 for i in range(381)]] + rng.normal(0, 0.2, (381, 16, FEATURE_DIM)), 0)
    attrs = {
        "backbone": "efficientnet_lite0",
        "category_mapping": {c: i for i, c in enumerate(("animation", "flat_content", "gaming", "natural_content"))},
        "multi_scale": False,
        "scales": [1.0],
        "frames_per_video": 16,
        "image_size": 224,
        "settings": {"backbone": "efficientnet_lite0", "frames_per_video": 16, "multi_scale": False},
    }
    return Basis(features.astype(np.float32), labels, sources, attrs, "a fixed random basis (no features/demo)")


def group_sizes(clips: int, rng: np.random.Generator, one_per_clip: bool) -> list[int]:
    """Sizes summing to ``clips``: lognormal (median 5, sigma 1.5) capped at clips/50, or all 1."""
    if one_per_clip:
        return [1] * clips
    cap = max(1, clips // 50)
    sizes: list[int] = []
    total = 0
    while total < clips:
        size = int(min(cap, max(1, math.ceil(rng.lognormal(math.log(5), 1.5)))))
        size = min(size, clips - total)
        sizes.append(size)
        total += size
    return sizes


def fabricate(work: Path, clips: int, frames: int, one_per_clip: bool, seed: int) -> dict[str, Any]:
    """Write ``work/features/all_features.h5`` and ``work/annotations.csv`` (see the module's docstring)."""
    from research.data.inputs import inputs_fingerprint
    from research.features.joined import own_attrs
    from research.features.settings import fingerprint
    from research.features.writing import create_layout, row_attrs, writing

    basis = real_basis(REAL_FEATURES)
    rng = np.random.default_rng(seed)
    classes = [c for c, _ in sorted(basis.attrs["category_mapping"].items(), key=lambda kv: kv[1])]
    by_source: dict[str, list[int]] = {}
    for row, src in enumerate(basis.sources):
        by_source.setdefault(src, []).append(row)
    names = sorted(by_source)
    entries: list[tuple[str, int, str, int]] = []  # (video id, label, group, real row)
    for g, size in enumerate(group_sizes(clips, rng, one_per_clip)):
        src = names[int(rng.integers(len(names)))]
        rows = rng.choice(by_source[src], size)
        label = int(basis.labels[rows[0]])
        group = f"{src}_{g:07d}"
        entries += [
            (f"videos/all/{classes[label]}/{group}/{group}_{k:04d}", label, group, int(r)) for k, r in enumerate(rows)
        ]
    entries.sort()  # extraction writes its inputs in sorted order
    with open(work / "annotations.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "class"] + ([] if one_per_clip else ["group"]))
        for vid, label, group, _ in entries:
            writer.writerow([f"{vid}.mp4", classes[label]] + ([] if one_per_clip else [group]))

    frame_index = np.linspace(0, basis.features.shape[1] - 1, frames).round().astype(np.int64)
    ids = [e[0] for e in entries]
    settings = dict(basis.attrs.get("settings", {}))
    settings |= {"frames_per_video": frames, "data_dir": str(work / "videos"), "split": "all"}
    # the basis may be a join over shards (make demo extracts as an array): this file holds its own features
    attrs = {k: v for k, v in own_attrs(basis.attrs).items() if k not in ("num_videos", "max_frames", "feature_dim")}
    attrs |= {
        "frames_per_video": frames,
        "data_dir": str(work / "videos"),
        "split": "all",
        "settings": settings,
        "settings_fingerprint": fingerprint(settings),
        "inputs_fingerprint": inputs_fingerprint(dict.fromkeys(ids, "fabricated")),
    }
    attrs = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in attrs.items()}
    target = work / "features" / "all_features.h5"
    real_rows = np.array([e[3] for e in entries])
    with writing(target) as f:
        ds = create_layout(f, clips, frames, FEATURE_DIM)
        for start in range(0, clips, BLOCK):
            rows = real_rows[start : start + BLOCK]
            block = basis.features[rows][:, frame_index]
            block *= 1 + NOISE * rng.standard_normal(block.shape, np.float32)
            ds["features"][start : start + len(rows)] = block
        ds["labels"][:] = np.array([e[1] for e in entries], np.int64)
        ds["num_frames"][:] = frames
        ds["decoded_frames"][:] = frames
        ds["video_ids"][:] = ids
        ds["paths"][:] = [f"{vid}.mp4" for vid in ids]
        ds["stamps"][:] = ["fabricated"] * clips
        f.attrs.update(attrs | row_attrs(clips, frames, FEATURE_DIM, [], {}, []))
    return {"basis": basis.what, "groups": len({e[2] for e in entries}), "bytes": target.stat().st_size}


def write_config(work: Path, frames: int) -> Path:
    """The pipeline's config for the fabricated collection: the demo's choices, a small model, one epoch."""
    text = f"""\
extract:
  data_dir: {work / "videos"}
  annotations: {work / "annotations.csv"}
  columns: {{label: class}}
  out_dir: {work / "features"}
  splits: [all]
  outputs: [single]
  backbone: efficientnet_lite0
  frames: {frames}
  log_mlflow: false
train:
  features_dir: {work / "features" / "by_group"}
  out_dir: {work / "runs"}
  multi_scale: false
  model: mean_pool
  model_args: {{mean_pool: {{hidden_size: 128, dropout: 0.175}}}}
  epochs: 1
  batch_size: 64
  warmup_epochs: 0
  keep: last
  device: cpu
  ensemble: scale
  log_mlflow: false
evaluate:
  out_dir: {work / "outputs"}
  probe: true
  device: cpu
  log_mlflow: false
cv:
  group_by: group
  folds: 5
  val_fraction: 0.2
  seeds: [1]
"""
    path = work / "config.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the stages


def fabricated_predictions(labels: np.ndarray, num_classes: int, right: float, seed: int) -> np.ndarray:
    """Predictions right on a share ``right`` of the clips, another class elsewhere (intervals' inputs)."""
    rng = np.random.default_rng(seed)
    wrong = (labels + rng.integers(1, num_classes, len(labels))) % num_classes
    return np.where(rng.random(len(labels)) < right, labels, wrong)


def fabricated_probabilities(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(num_classes), len(labels))
    probs[np.arange(len(labels)), labels] += 1.0
    return probs / probs.sum(1, keepdims=True)


def run_stage(stage: str, work: Path) -> dict[str, Any]:
    """One stage on ``work``'s collection, as the pipeline runs it; returns what it made (for the log)."""
    from research.commands import pipeline
    from research.config import CVConfig, EvalConfig, ExtractConfig, TrainConfig, load_config
    from research.data.dataset import FeatureDataset, split_path
    from research.data.splits import video_groups

    config = work / "config.yaml"
    extract_cfg = load_config(ExtractConfig, "extract", config)
    train_cfg = load_config(TrainConfig, "train", config)
    eval_cfg = load_config(EvalConfig, "evaluate", config)
    cv = load_config(CVConfig, "cv", config)
    by_group = Path(train_cfg.features_dir)
    record_path = by_group / "split.json"
    pool = split_path(extract_cfg.out_dir, "all", False)
    checkpoint = Path(train_cfg.out_dir) / "best_ensemble_model_1.pt"

    def split_record() -> dict[str, Any]:
        return json.loads(record_path.read_text())

    def labels_of(path: Path) -> np.ndarray:
        import h5py

        with h5py.File(path, "r") as f:
            return f["labels"][()].astype(np.int64)

    if stage == "split":
        record = pipeline.split_by_group(extract_cfg, train_cfg, cv, "all")
        return {name: part["clips"] for name, part in record["splits"].items()}
    if stage == "train":
        from research.config import LaunchConfig
        from research.engine.members import MemberJob, run_member_jobs

        job = MemberJob(dataclasses.replace(train_cfg, seed=1), {}, (), str(work / "job_1.json"))
        (result,) = run_member_jobs([job], LaunchConfig(launcher="serial"), "scale")
        return {"checkpoint": result["checkpoint"]}
    if stage == "probe":
        import pickle

        from research.engine.classifier import fit_split_probe

        train, val = split_path(by_group, "train", False), split_path(by_group, "val", False)
        kept = all(any(p.parent.glob(f"{p.name}.means-*.npy")) for p in (train, val))
        fitted = fit_split_probe(train, val)
        (work / "probe.pkl").write_bytes(pickle.dumps(fitted))
        return fitted.summary() | {"means": "kept beside the files" if kept else "computed here"}
    if stage == "choice":
        import pickle

        members_cfg = dataclasses.replace(eval_cfg, checkpoints=[str(checkpoint)], probe=True)
        fitted = pickle.loads((work / "probe.pkl").read_bytes())
        validation, choice = pipeline.choose_on_validation(members_cfg, extract_cfg, train_cfg, cv, fitted)
        (work / "validation.pkl").write_bytes(pickle.dumps(validation))
        return {"chosen": choice["chosen"], "val_clips": choice["clips"]}
    if stage in ("difference", "headline"):
        from research.engine.metrics import grouped_bootstrap_difference, grouped_bootstrap_interval

        ds = FeatureDataset(pool, in_memory="no")
        groups = video_groups(ds, cv, extract_cfg)
        num_classes = ds.num_classes
        if stage == "headline":
            preds = fabricated_predictions(ds.labels, num_classes, 0.7, 1)
            return grouped_bootstrap_interval(ds.labels, preds, groups, num_classes, cv.bootstrap)
        record = split_record()
        dev_videos = set(record["splits"]["train"]["videos"]) | set(record["splits"]["val"]["videos"])
        dev = np.array([i for i, vid in enumerate(ds.video_ids) if vid in dev_videos])
        y = ds.labels[dev]
        recipe, probe = (fabricated_predictions(y, num_classes, right, seed) for right, seed in ((0.7, 1), (0.75, 2)))
        return grouped_bootstrap_difference(y, recipe, probe, [groups[i] for i in dev], num_classes, cv.bootstrap)
    if stage == "intervals":
        from research.engine.calibration import calibration_scores
        from research.engine.metrics import bootstrap_interval

        labels = labels_of(split_path(by_group, "test", False))
        num_classes = int(labels.max()) + 1
        probs = fabricated_probabilities(labels, num_classes, 3)
        return {
            "macro_f1_95": bootstrap_interval(labels, probs.argmax(1), num_classes),
            "ece_95": calibration_scores(probs, labels).get("ece_95"),
        }
    if stage == "evaluate":
        import pickle

        from research.engine.evaluation import evaluate

        members_cfg = dataclasses.replace(eval_cfg, checkpoints=[str(checkpoint)], probe=True)
        validation = pickle.loads((work / "validation.pkl").read_bytes())  # as run_pipeline passes it on
        report = evaluate(members_cfg, validation=validation)
        return {"videos": report["num_videos"], "rows": list(report["rows"])}
    if stage == "predictions":
        from research.engine import predictions

        test = split_path(by_group, "test", False)
        labels = labels_of(test)
        classes = split_record()["classes"]
        probs = fabricated_probabilities(labels, len(classes), 4)
        out = predictions.write_predictions(
            work / "predictions", predictions.feature_file_rows(test, probs, classes), classes
        )
        return {"rows": len(labels), "bytes": out.stat().st_size}
    raise SystemExit(f"scale.py: unknown stage {stage!r} (one of {', '.join(STAGES)})")


# ------------------------------------------------------------------ timing a stage


@dataclasses.dataclass
class Timing:
    """One stage at one size: its own wall and CPU seconds and peak RSS, or why there are none."""

    seconds: float | None
    cpu_seconds: float | None
    rss_mb: float | None
    status: str  # "ok", "> limit", "failed (exit N)", "killed (signal N)"

    def cell(self, limit: float) -> str:
        if self.status == "> limit":
            return f"> {limit:g} s"
        if self.status != "ok":
            return self.status
        return f"{self.seconds:.1f} s (cpu {self.cpu_seconds:.1f} s), {self.rss_mb:,.0f} MB"


def timed(command: list[str], limit: float, log_path: Path, result_path: Path) -> Timing:
    """Run ``command`` in a new process (its own session), killed after ``limit`` s; its peak RSS from
    ``wait4`` (this child's alone), its seconds from the JSON it writes to ``result_path``."""
    result_path.unlink(missing_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + limit
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # the stage and anything it started
            os.wait4(child.pid, 0)
            return Timing(None, None, None, "> limit")
        time.sleep(0.2)
    child.returncode = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    if child.returncode < 0:
        return Timing(None, None, rss_mb, f"killed (signal {-child.returncode})")
    if child.returncode or not result_path.is_file():
        return Timing(None, None, rss_mb, f"failed (exit {child.returncode})")
    measured = json.loads(result_path.read_text())
    return Timing(measured["seconds"], measured["cpu_seconds"], rss_mb, "ok")


def child(stage: str, work: Path) -> None:
    """``--stage``: one stage (or ``fabricate``) in this process; writes ``work/timings/STAGE.json``."""
    from research.cli import setup_logging

    setup_logging(verbose=False)
    spec = json.loads((work / "spec.json").read_text())
    if stage != "fabricate":  # the imports are every stage's fixed cost (5-20 s on a loaded machine): not timed
        import research.commands.pipeline
        import research.engine.evaluation
        import research.engine.predictions  # noqa: F401

    start, cpu_start = time.perf_counter(), time.process_time()
    if stage == "imports":
        made = {}
    elif stage == "fabricate":
        made = fabricate(work, spec["clips"], spec["frames"], spec["one_group_per_clip"], spec["seed"])
        write_config(work, spec["frames"])
    else:
        made = run_stage(stage, work)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    out = work / "timings" / f"{stage}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "made": made}, default=str))


# ------------------------------------------------------------------ the table


def growth(sizes: list[int], cells: dict[int, Timing], limit: float) -> str:
    """The slope of log CPU seconds against log N between consecutive sizes (1 = linear, 2 = quadratic).

    CPU seconds, not wall: on a shared machine the wall time of one size can be inflated by others' load
    and the next one's not; a stage's CPU time hardly moves with the load. (Past the limit: wall, a bound.)"""
    slopes = []
    for a, b in itertools.pairwise(sizes):
        ta, tb = cells[a], cells[b]
        if ta.cpu_seconds and tb.cpu_seconds and ta.cpu_seconds > 0.05:
            slopes.append(f"{math.log(tb.cpu_seconds / ta.cpu_seconds) / math.log(b / a):.2f}")
        elif ta.seconds and tb.status == "> limit":
            slopes.append("> " + f"{math.log(limit / ta.seconds) / math.log(b / a):.2f}")
        else:
            slopes.append("-")
    return ", ".join(slopes) if slopes else "-"


def means_bytes(clips: int) -> int:
    """Disk the kept pooled means of one size take (``MEANS_SHARES``)."""
    total = 0
    for share in MEANS_SHARES:
        numbers = int(clips * share) * FEATURE_DIM
        total += numbers * (8 if numbers * 8 <= MEANS_FLOAT64_BYTES else 4)
    return total


def probe_note(work: Path) -> str:
    """What the probe stage did, counted: its C, fits, evaluations and passes over the train and val means."""
    path = work / "timings" / "probe.json"
    if not path.is_file():
        return ""
    made = json.loads(path.read_text())["made"]
    full = made["subsample_clips"] < made["train_clips"]
    return (
        f"; probe: C = {made['c']:g}, {made['fits']} fits ({made['fits'] - full} on {made['subsample_clips']:,} of "
        f"{made['train_clips']:,} train clips{', 1 on all of them, warm-started' if full else ''}), "
        f"{made['iterations']:,} L-BFGS iterations, {made['evaluations']:,} evaluations, "
        f"{made['passes_over_rows']:.1f} passes over the train means (rows read / train clips) and "
        f"{made['val_passes']} over val's; means {made['means']}"
    )


def markdown(results: dict[int, dict[str, Timing]], notes: dict[int, str], args: argparse.Namespace) -> str:
    sizes = sorted(results)
    head = "| stage | " + " | ".join(f"N = {n:,}" for n in sizes) + " | growth exponent (CPU) |"
    lines = [head, "|---" * (len(sizes) + 2) + "|"]
    for stage in FIXED + tuple(args.stages):
        cells = {n: results[n].get(stage, Timing(None, None, None, "not run")) for n in sizes}
        row = [cells[n].cell(args.limit) for n in sizes]
        lines.append(
            f"| {stage} | " + " | ".join(row) + f" | {growth(sizes, cells, args.limit) if stage not in FIXED else ''} |"
        )
    lines.append("")
    lines += [f"- N = {n:,}: {notes[n]}" for n in sizes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main


def compressed_share(source: Path) -> float:
    """What gzip leaves of the features (the real file's size over its raw bytes; ~0.5), plus a fifth for
    safety; 1 (nothing saved) for the random basis."""
    if not source.is_file():
        return 1.0
    import h5py

    with h5py.File(source, "r") as f:
        raw = int(np.prod(f["features"].shape)) * 4
    return min(1.0, 1.2 * source.stat().st_size / max(raw, 1))


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[10_000], help="collection sizes N (clips)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (the demo's 16; fewer at 10^6)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/scale_bench"), help="work folder (a disk with room)")
    parser.add_argument("--one-group-per-clip", action="store_true", help="no group column: every clip its own group")
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds a stage may take before it is killed")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to run, in order")
    parser.add_argument("--seed", type=int, default=0, help="the collection's draw")
    parser.add_argument("--keep", action="store_true", help="keep each size's files (default: removed once timed)")
    parser.add_argument("--append-results", type=Path, help="append the table as a dated section to this file")
    parser.add_argument("--label", default="", help="the section's label, e.g. 'before'")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage in this process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage is None and (min(args.clips) < 100 or args.frames < 1 or args.limit <= 0):
        parser.error("--clips needs at least 100 clips per size, --frames at least 1, --limit more than 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stage:
        child(args.stage, args.work)
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "scale.log"
    results: dict[int, dict[str, Timing]] = {}
    notes: dict[int, str] = {}
    refused: list[int] = []  # sizes the disk has no room for
    for clips in sorted(args.clips):
        work = args.out / f"n{clips}{'_per_clip' if args.one_group_per_clip else ''}"
        features = clips * args.frames * FEATURE_DIM * 4 * DISK_FACTOR * compressed_share(REAL_FEATURES)
        needed = int(features) + means_bytes(clips)
        shutil.rmtree(work, ignore_errors=True)
        free = free_bytes(args.out)
        if needed + DISK_MARGIN > free:
            console.print(
                f"scale.py: N = {clips:,} at {args.frames} frames may write {needed / 1e9:.1f} GB and {args.out} "
                f"has {free / 1e9:.1f} GB free (keeping {DISK_MARGIN / 1e9:.0f} GB): not run; use fewer --frames",
                highlight=False,
            )
            refused.append(clips)
            break
        work.mkdir(parents=True)
        spec = {"clips": clips, "frames": args.frames, "one_group_per_clip": args.one_group_per_clip, "seed": args.seed}
        (work / "spec.json").write_text(json.dumps(spec))
        results[clips] = {}
        for stage in FIXED + tuple(args.stages):
            command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--work", str(work)]
            limit = math.inf if stage == "fabricate" else args.limit  # the collection is made, however long
            timing = timed(command, limit, log_path, work / "timings" / f"{stage}.json")
            results[clips][stage] = timing
            console.print(f"N = {clips:,}  {stage:<12} {timing.cell(args.limit)}", highlight=False)
            if stage == "fabricate" and timing.status != "ok":
                break
        fabricated = work / "timings" / "fabricate.json"
        made = json.loads(fabricated.read_text())["made"] if fabricated.is_file() else {}
        size = made.get("bytes", 0)
        notes[clips] = (
            f"{made.get('groups', '?'):,} groups, {args.frames} frames x {FEATURE_DIM} per clip, feature file "
            f"{size / 1e9:.2f} GB ({made.get('basis', '?')} x (1 + {NOISE} noise))"
            if made
            else "not fabricated"
        ) + probe_note(work)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not results:
        return 1
    table = markdown(results, notes, args)
    sizes = sorted(results)
    view = Table(title=f"every stage after extraction (wall and CPU seconds, peak RSS), {args.frames} frames per clip")
    for col in ("stage", *(f"N = {n:,}" for n in sizes)):
        view.add_column(col)
    for stage in FIXED + tuple(args.stages):
        view.add_row(
            stage, *(results[n].get(stage, Timing(None, None, None, "not run")).cell(args.limit) for n in sizes)
        )
    console.print(view)
    groups = "one group per clip (no group column)" if args.one_group_per_clip else "long-tailed groups"
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    command = f"{threads}python benchmarks/scale.py " + " ".join(
        a for a in sys.argv[1:] if not a.startswith("--append") and a != str(args.append_results)
    )
    caption = (
        f"`{command}` — {groups}; {args.frames} frames per clip"
        + (" (fewer than the demo's 16: disk)" if args.frames < 16 else "")
        + f"; stage limit {args.limit:g} s; {os.cpu_count()} cores, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}."
        + "".join(f" N = {n:,}: not run, too little free disk." for n in refused)
    )
    (args.out / "scale.md").write_text(caption + "\n\n" + table)
    (args.out / "scale.json").write_text(
        json.dumps({n: {s: dataclasses.asdict(t) for s, t in r.items()} for n, r in results.items()}, indent=1)
    )
    console.print(f"wrote {args.out / 'scale.md'}")
    if args.append_results:
        label = f" — {args.label}" if args.label else ""
        title = (
            f"## Scale: every stage after extraction (`benchmarks/scale.py`, issue 40){label} — {datetime.date.today()}"
        )
        with open(args.append_results, "a") as fh:
            fh.write(f"\n{title}\n\n{caption}\n\n{table}")
    failed = [f"{stage} at N = {n:,}" for n, r in results.items() for stage, t in r.items() if "failed" in t.status]
    if failed:  # a run past the limit or killed for memory is a measurement; a stage that broke is not
        console.print(f"scale.py: {', '.join(failed)} failed: see {log_path}", highlight=False)
    return 1 if failed or refused else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as err:  # an --out that cannot be written, a disk that filled up meanwhile: one line
        sys.exit(f"scale.py: {err}")
