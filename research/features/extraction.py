"""``extract(cfg)``: videos -> sampled frames -> frozen CNN -> scales -> HDF5 files, resumable.

Per split:

1. scan the inputs (``research.data.inputs``): every video's identity and stamp;
2. decide: a finished file made from the same settings and the same inputs is
   re-used; one made differently is refused with what changed (``--overwrite`` or
   another ``--out-dir``); otherwise the work left is every input not yet committed
   under this settings' work folder (keyed by identity and stamp, never position);
3. a ``DataLoader`` whose workers decode whole videos (``research.video.decode``) while the
   main process runs the CNN, frames of consecutive videos packed into full batches
   (``research.features.frames``), each frame through the CNN once even for multi-scale;
4. rows committed to crash-safe part files, assembled into
   ``{split}_features.h5`` / ``{split}_features_multiscale.h5`` in input order.

A killed run resumes from its committed parts and gives the file a clean run
gives, also when videos were added, removed or replaced in between. Bad inputs are
skipped, counted and listed; truncated ones are recorded as partial.

Two ways over several processes: torchrun's ranks share each split round-robin and rank 0
assembles the files; ``cfg.shard`` (``--shard K/N``) makes this process an independent array task
that extracts block K of N of every split into shard files of its own (``research.features.shards``),
which ``python -m research.commands.features join`` joins into the files one process writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.rule import Rule
from rich.table import Table

from research import distributed, tracking
from research.backbones.loading import create_backbones
from research.backbones.runtime import resolve_runtime, runtime_label, torch_threads_for
from research.config import ExtractConfig, to_flat_dict
from research.data.annotations import AnnotationError
from research.data.inputs import (
    Collection,
    Entry,
    Listing,
    diff_inputs,
    identities,
    inputs_fingerprint,
    open_collection,
)
from research.errors import StaleWorkError, UserError, ensure_dir
from research.features.compat import describe, feature_differences
from research.features.frames import FrameBatcher, auto_batch_size, decoded_videos, precision, video_features
from research.features.hdf5 import feature_filename, read_attrs, stamps_in_file, summary
from research.features.settings import FeatureSettings, file_record, fingerprint
from research.features.shards import shard_attrs, shard_path
from research.features.writing import PartWriter, Row, assemble, done_videos
from research.files import disk_errors, folder_lock, write_text_atomic

log = logging.getLogger(__name__)
console = Console(stderr=True)


def file_records(
    settings: FeatureSettings, cfg: ExtractConfig, split: str, mapping: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Per output kind, everything that determines that file's numbers (its attributes and work key)."""
    data_dir = str(Path(cfg.data_dir).resolve())
    return {kind: file_record(settings, kind, split, data_dir, mapping) for kind in cfg.outputs}


def file_attrs(made_from: dict[str, Any], stamps: dict[str, str]) -> dict[str, Any]:
    """HDF5 attributes: the seed's names where it has one, plus the settings and both fingerprints."""
    attrs = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in made_from.items()}
    attrs["clip_seconds"] = -1.0 if made_from["clip_seconds"] is None else made_from["clip_seconds"]
    return attrs | {
        "settings": json.dumps(made_from, sort_keys=True),
        "settings_fingerprint": fingerprint(made_from),
        "inputs_fingerprint": inputs_fingerprint(stamps),
    }


def check_existing(
    path: Path, made_from: dict[str, Any], stamps: dict[str, str], listing: Listing | None = None
) -> bool:
    """True when ``path`` is a finished file made from these settings and these inputs; refuse other files.

    ``listing``: a shard's whole split as listed, which must also be the one the shard file was cut from."""
    if not path.is_file():
        return False
    attrs = read_attrs(path)
    how = "Pass --overwrite to recompute it, or choose another --out-dir."
    if "settings" not in attrs:
        raise StaleWorkError(
            f"{path} was written without a record of its settings and inputs (an older version). {how}"
        )
    changed = feature_differences(attrs["settings"], made_from, keys=None)
    if changed:
        raise StaleWorkError(f"{path} was extracted differently: {describe(changed, 'file', 'this run')}. {how}")
    if attrs.get("inputs_fingerprint") != inputs_fingerprint(stamps):
        raise StaleWorkError(
            f"{path} was extracted from other inputs: since then {diff_inputs(stamps_in_file(path), stamps)}. {how}"
        )
    if listing is not None and attrs.get("collection_fingerprint") != listing.fingerprint:
        raise StaleWorkError(
            f"{path} is a shard of another listing: the split had {attrs.get('collection_videos')} videos, now "
            f"{listing.videos}, or they were listed in another order or with other labels, so the shards' blocks "
            f"moved. {how}"
        )
    return True


# ------------------------------------------------------------------------ one split


def _progress(enabled: bool) -> Progress:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.0f} frames/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, disable=not enabled, transient=False)


NON_FINITE = "its features are not finite (NaN or inf from the CNN): corrupt frames or a broken backbone"


def run_cnn(
    cfg: ExtractConfig,
    settings: FeatureSettings,
    todo: list[Entry],
    writer: PartWriter,
    backbones: list[torch.nn.Module],
    device: torch.device,
    label: str,
) -> dict[str, Any]:
    """Decode ``todo`` in workers, run the CNN, commit rows and skips; returns counts and throughput."""
    loader = decoded_videos(todo, settings, cfg.num_workers, pin_memory=device.type == "cuda")
    batch_size = cfg.batch_size or auto_batch_size(device, max(settings.image_sizes))
    batcher = FrameBatcher(backbones, settings, device, batch_size, cfg.amp)
    skipped: list[dict[str, str]] = []
    start = time.perf_counter()
    with torch_threads_for(backbones), _progress(distributed.context().is_main) as progress:
        task = progress.add_task(label, total=len(todo), fps=0.0)
        try:
            for item, feats in video_features(loader, batcher, cfg.outputs):
                entry = todo[item["i"]]
                if feats is not None and not all(bool(torch.isfinite(f).all()) for f in feats.values()):
                    item, feats = item | {"error": NON_FINITE}, None  # never a row of NaN: the video is listed
                if item.get("fatal"):  # finished videos are committed by the finally below
                    raise AnnotationError(f"{entry.origin or entry.relpath}: {entry.relpath}: {item['error']}")
                if feats is None:
                    log.warning("skipping %s: %s", entry.relpath, item["error"])
                    skipped.append({"path": entry.relpath, "reason": item["error"]})
                    writer.skip(entry.video_id, entry.stamp, entry.relpath, item["error"])
                else:
                    arrays = {kind: f.numpy() for kind, f in feats.items()}
                    writer.add(
                        Row(
                            entry.video_id,
                            entry.stamp,
                            entry.relpath,
                            entry.label,
                            item["n_frames"],
                            item["listed_frames"],
                            arrays,
                        )
                    )
                progress.update(task, advance=1, fps=batcher.frames_done / (time.perf_counter() - start))
        finally:
            writer.flush()  # finished videos survive Ctrl-C and errors
    elapsed = time.perf_counter() - start
    return {
        "frames": batcher.frames_done,
        "seconds": elapsed,
        "frames_per_s": batcher.frames_done / elapsed if elapsed else 0.0,
        "skipped_now": skipped,
    }


def sequence_length(settings: FeatureSettings, kind: str, listing: Listing) -> int:
    """``max_frames`` of a split's file: T (or the multi-scale length), or longer for seed tensors with their
    own T. The whole split's (its ``Listing``): every shard of it has the same."""
    return max(settings.sequence_length(kind, t) for t in {settings.frames, *listing.frames})


def part_writer(cfg: ExtractConfig, folder: Path) -> PartWriter:
    """Where and how often this process commits its rows (``flush_every``, ``flush_mb``, ``flush_seconds``)."""
    return PartWriter(folder, cfg.flush_every, int(cfg.flush_mb * 2**20), cfg.flush_seconds)


def targets_of(cfg: ExtractConfig, split: str, shard: distributed.Shard | None) -> list[Path]:
    """The files a split's extraction writes, per output kind: the split's files, or this shard's."""
    out_dir = Path(cfg.out_dir)
    if shard is None:
        return [out_dir / feature_filename(split, kind) for kind in cfg.outputs]
    return [shard_path(out_dir, split, kind, shard) for kind in cfg.outputs]


def extract_split(
    cfg: ExtractConfig,
    settings: FeatureSettings,
    split: str,
    entries: list[Entry],
    listing: Listing,
    backbones: list[torch.nn.Module],
    device: torch.device,
    mapping: dict[str, int],
    shard: distributed.Shard | None = None,
) -> dict[str, Any]:
    """Extract what is left of one split (this rank's share), then assemble its files on rank 0.

    ``shard``: this process is array task K of N, and ``entries`` its block of the split (``listing``: the
    whole split as listed): it extracts them alone (no barrier has another process to wait for) and
    assembles that block's shard files, in a work folder of its own."""
    ctx = distributed.context()
    out_dir = Path(cfg.out_dir)
    made_from = file_records(settings, cfg, split, mapping)
    work = out_dir / ".work" / f"{split}-{fingerprint(made_from)}{'' if shard is None else '-' + shard.tag}"
    if cfg.overwrite and ctx.is_main and work.exists():
        shutil.rmtree(work)
    distributed.barrier()
    if ctx.is_main:
        ensure_dir(work, "work folder")
        write_text_atomic(work / "settings.json", json.dumps(made_from, indent=2, sort_keys=True))
    distributed.barrier()
    mine = distributed.shard(entries, ctx) if shard is None else entries
    done = done_videos(work)
    todo = [e for e in mine if (e.video_id, e.stamp) not in done]
    current = sum((e.video_id, e.stamp) in done for e in entries)  # of what this process is asked to have
    if done:
        log.info("%s: resuming, %d of %d videos already committed", split, current, len(entries))
    label = f"{split} (rank {ctx.rank})" if ctx.distributed else split if shard is None else f"{split} ({shard.tag})"
    parts = work / (f"rank{ctx.rank:03d}" if shard is None else "parts")
    result = {"split": split, "status": "extracted"} | run_cnn(
        cfg, settings, todo, part_writer(cfg, parts), backbones, device, label
    )
    distributed.barrier()
    if ctx.is_main:
        stamps = identities(entries)
        order = [(e.video_id, e.stamp) for e in entries]
        for kind, target in zip(cfg.outputs, targets_of(cfg, split, shard), strict=True):
            # what ran the CNN, recorded but not compared: runtimes' features agree within runtime.TOLERANCE
            attrs = file_attrs(made_from[kind], stamps) | {
                "runtime": runtime_label(resolve_runtime(cfg.runtime, device))
            }
            if shard is not None:  # and how it ran, which the join compares across shards
                attrs |= shard_attrs(shard, listing, precision(cfg.amp, device), device.type)
            length = sequence_length(settings, kind, listing)
            result["videos"] = assemble(work, target, kind, attrs, settings.feature_dim, length, order)
        final = read_attrs(target)
        result |= {"skipped": final["num_skipped"], "partial": final["num_partial"]}
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):  # not empty: another shard's (or split's) work is still there
            work.parent.rmdir()
    distributed.barrier()
    return result


# ---------------------------------------------------------------------- all splits


def write_configuration_analysis(cfg: ExtractConfig, settings: FeatureSettings, device: torch.device) -> Path:
    """Seed 000's ``configuration_analysis.json``: preprocessing info and per-file statistics."""
    out_dir = Path(cfg.out_dir)
    files = {}
    for split in cfg.splits:
        for kind in cfg.outputs:
            path = out_dir / feature_filename(split, kind)
            if path.is_file():
                info = summary(path)
                info.pop("attrs")
                files[path.name] = info
    record = settings.record("multi")
    doc = {
        "preprocessing_info": {
            "frames_per_video": settings.frames,
            "image_size": [[p.image_size, p.image_size] for p in settings.parts]
            if settings.fused
            else [settings.image_size, settings.image_size],
            "processing_mode": "gpu" if device.type == "cuda" else "cpu",
            "clip_duration": settings.clip_seconds,
            "sampling": settings.sampling,
            "sampling_per_subcategory": record["sampling_per_subcategory"],
            "normalization": record["normalization"],
        },
        "feature_extraction": {
            "backbone": settings.backbone,
            "weights": settings.weights,
            "feature_dim": settings.feature_dim,
            "parts": [p.record() for p in settings.parts],
            "scales": record["scales"],
        },
        "files": files,
    }
    return write_text_atomic(out_dir / "configuration_analysis.json", json.dumps(doc, indent=2))


def summary_table(results: dict[str, Any], shard: distributed.Shard | None = None) -> Table:
    title = "extraction" if shard is None else f"extraction, shard {shard.index} of {shard.count} (index from 0)"
    table = Table(title=title, title_justify="left")
    for col in ("split", "status", "videos", "skipped", "partial", "seconds", "frames/s"):
        table.add_column(col, justify="left" if col in ("split", "status") else "right")
    for split, r in results["splits"].items():
        timing = [f"{r['seconds']:.0f}", f"{r['frames_per_s']:.0f}"] if "seconds" in r else ["", ""]
        table.add_row(split, r["status"], str(r["videos"]), str(r["skipped"]), str(r["partial"]), *timing)
    return table


def extract(cfg: ExtractConfig) -> dict[str, Any]:
    """Extract (or re-use) every configured split; returns per-split counts and throughput.

    One job writes into an output folder at a time (a second is refused, naming the holder);
    a full disk is one ``UserError`` naming the folder, and the next run resumes. Raises
    ``UserError`` when no split yields a single video.
    """
    shard = distributed.Shard.parse(cfg.shard) if cfg.shard else None
    if shard is not None and distributed.context().distributed:
        raise UserError("--shard runs one independent task: start it with python, not under torchrun")
    ctx = distributed.init("cuda" if distributed.device_for(cfg.device).type == "cuda" else "cpu")
    device = distributed.device_for(cfg.device, ctx)
    settings = FeatureSettings.from_config(cfg)
    data_dir = Path(cfg.data_dir)
    # a bad annotation row or data root: one line, before any work; a shard stats its own block alone
    collection = open_collection(cfg, None if shard is None else shard.block)
    out_dir = ensure_dir(cfg.out_dir)
    # rank 0 holds the lock for the whole torchrun job (its other ranks wait at the first barrier); the
    # tasks of an array share the folder, each holding a lock of its own shard
    if shard is not None:
        lock = folder_lock(out_dir, f"extraction of shard {shard.index}/{shard.count}", f".extract.{shard.tag}.lock")
    else:
        lock = folder_lock(out_dir, "extraction", ".extract.lock") if ctx.is_main else contextlib.nullcontext()
    with disk_errors(out_dir), lock:
        return _extract(cfg, settings, ctx, device, data_dir, collection, shard)


def _extract(
    cfg: ExtractConfig,
    settings: FeatureSettings,
    ctx: distributed.Context,
    device: torch.device,
    data_dir: Path,
    collection: Collection,
    shard: distributed.Shard | None = None,
) -> dict[str, Any]:
    mapping, entries = collection.mapping, collection.entries
    splits = list(entries)
    if collection.annotations is None:
        for missing in sorted(set(cfg.splits) - set(splits)):
            log.warning("no %s/ folder under %s; skipping that split", missing, data_dir)

    results: dict[str, Any] = {"splits": {}, "mapping": mapping}
    pending = []
    for split in splits:
        stamps = identities(entries[split])  # the whole split's, or this shard's block's
        targets = targets_of(cfg, split, shard)
        made_from = file_records(settings, cfg, split, mapping).values()
        cut_from = None if shard is None else collection.listings[split]
        if not cfg.overwrite and all(
            check_existing(t, m, stamps, cut_from) for t, m in zip(targets, made_from, strict=True)
        ):
            attrs = read_attrs(targets[0])
            log.info("%s: %s already extracted from these inputs, re-using", split, ", ".join(t.name for t in targets))
            results["splits"][split] = {
                "split": split,
                "status": "re-used",
                "videos": attrs["num_videos"],
                "skipped": attrs["num_skipped"],
                "partial": attrs.get("num_partial", 0),
            }
        else:
            pending.append(split)
    if pending:
        runtime = resolve_runtime(cfg.runtime, device)
        backbones = create_backbones(settings, device=device, runtime=runtime)
        log.info(
            "backbone %s (%d-d) on %s, run by %s; classes %s",
            settings.backbone,
            settings.feature_dim,
            device,
            runtime_label(runtime),
            mapping,
        )
        with tracking.start_run(
            cfg.experiment,
            run_name=f"extract-{cfg.backbone}" + ("" if shard is None else f"-{shard.tag}"),
            uri=cfg.tracking_uri,
            tags={"backbone": cfg.backbone, "data_dir": cfg.data_dir},
            enabled=ctx.is_main and cfg.log_mlflow,
        ) as run:
            if run is not None:
                tracking.log_params(to_flat_dict(cfg) | {"amp": cfg.amp and device.type == "cuda"})
            for split in pending:
                if ctx.is_main:
                    console.print(Rule(f"[bold]extract {split}"))
                listing = collection.listings[split]
                res = extract_split(cfg, settings, split, entries[split], listing, backbones, device, mapping, shard)
                results["splits"][split] = res
                if run is not None:
                    keys = ("videos", "skipped", "partial", "frames_per_s", "seconds")
                    tracking.log_metrics({f"{split}_{k}": res[k] for k in keys})
            if ctx.is_main and shard is None:  # of the final files: a shard has none (the join makes them)
                analysis = write_configuration_analysis(cfg, settings, device)
                results["configuration_analysis"] = str(analysis)
                if run is not None:
                    tracking.log_artifact(analysis)
                    results["mlflow_run_id"] = run.info.run_id
    if ctx.is_main:
        console.print(summary_table(results, shard))
        if shard is not None:  # an empty block is no error: N may exceed a split's videos
            return results
        if not any(r["videos"] for r in results["splits"].values()):
            skipped = sum(r["skipped"] for r in results["splits"].values())
            raise UserError(
                f"no video could be extracted from {data_dir}: {skipped} input(s) skipped (reasons listed above)"
            )
    return results


__all__ = ["check_existing", "extract", "file_records"]
