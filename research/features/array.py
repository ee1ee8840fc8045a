"""Extraction as one job array through the launcher: every split cut into N shards, one task each, then the join.

``extract_array(cfg, launch)`` is what the pipeline calls instead of ``extract(cfg)`` when its jobs do not run
serially: N tasks ``extract.py --shard K/N`` (``research.features.extraction.extract`` with ``shard`` set, each
writing ``OUT_DIR/shards/{split}_features*.shard000K-of-000N.h5``) go to ``research.launcher.run_jobs`` as one
list (a local pool, or one Slurm array), and this process joins each split's shards into the files one process
writes (``research.features.shards.join_shards``). Nothing is started when every final file is already the
one these settings and inputs give (the rule ``extract`` applies, ``check_existing``).

A task's key is the whole config with its shard and every split's inputs fingerprint: a task finished for the
same settings and the same videos is re-used without starting a process; one for other videos runs again, and
``extract`` itself resumes from its committed parts. The join takes exactly this run's N shard files, so shards
of another count left in the folder by an earlier run never mix in. Serial, a frame index (one feature per
listed instant has no shards) or a config that names its own shard runs ``extract(cfg)`` as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from research.config import ExtractConfig, LaunchConfig
from research.data.inputs import identities, inputs_fingerprint, open_collection
from research.distributed import Shard
from research.errors import ensure_dir
from research.features.extraction import check_existing, extract, file_records
from research.features.hdf5 import feature_filename
from research.features.settings import FeatureSettings
from research.features.shards import SHARDS_DIR, join_shards, shard_path
from research.files import folder_lock
from research.launcher import Job, Plan, Where, job_key, plan, run_jobs

log = logging.getLogger(__name__)

# Fields that change no feature: where a run is tracked, how often it commits, how many decoders feed it, and
# overwrite (which removes the tasks' results instead: every task runs).
NOT_DETERMINING = (
    "experiment",
    "tracking_uri",
    "log_mlflow",
    "flush_every",
    "flush_mb",
    "flush_seconds",
    "num_workers",
    "overwrite",
)
DECODERS_MAX = 8  # as extraction's own default: decoders beyond 8 keep no CNN busier


def extract_task(cfg: ExtractConfig, where: Where) -> dict[str, Any]:
    """One array task: ``extract(cfg)`` for its shard on ``where``'s device, its decoders from its own cores."""
    decoders = cfg.num_workers
    if decoders is None:  # one per core of this task but one (the CNN's), at most DECODERS_MAX
        decoders = max(0, min(DECODERS_MAX, (where.threads or 1) - 1))
    results = extract(dataclasses.replace(cfg, device=where.device_for(cfg.device), num_workers=decoders))
    keys = ("status", "videos", "skipped", "partial")
    return {split: {k: r[k] for k in keys} for split, r in results["splits"].items()}


def task_count(how: Plan, launch: LaunchConfig, videos: int) -> int:
    """``launch.extract_tasks``, else the jobs that can run at once (``how``: the launch's plan), at most ``videos``
    (the largest split's)."""
    if launch.extract_tasks is not None:
        return launch.extract_tasks
    at_once = launch.slurm_array_parallelism if how.launcher == "slurm" else len(how.slots)
    return max(1, min(at_once, videos))


def extract_array(cfg: ExtractConfig, launch: LaunchConfig) -> dict[str, Any]:
    """Every configured split extracted as shard tasks through ``launch`` and joined; ``{file: status}``.

    ``extract(cfg)``'s results when it runs as it is (serial, a frame index, a config naming its shard)."""
    how = plan(launch)
    if cfg.frame_index or cfg.shard or how.launcher == "serial":
        return extract(cfg)
    settings = FeatureSettings.from_config(cfg)
    collection = open_collection(cfg)  # a bad annotation row or data root: one line, before any task starts
    out_dir = Path(cfg.out_dir)
    splits = {split: entries for split, entries in collection.entries.items() if entries}
    stamps = {split: identities(entries) for split, entries in splits.items()}
    finals = {
        (split, kind): (out_dir / feature_filename(split, kind), made_from)
        for split in splits
        for kind, made_from in file_records(settings, cfg, split, collection.mapping).items()
    }
    if not cfg.overwrite and all(check_existing(path, m, stamps[s]) for (s, _), (path, m) in finals.items()):
        names = ", ".join(path.name for path, _ in finals.values())
        log.info("features: %s already extracted from these inputs, re-using", names)
        return {str(path): "re-used" for path, _ in finals.values()}

    count = task_count(how, launch, max(len(entries) for entries in splits.values()))
    inputs = {split: inputs_fingerprint(s) for split, s in stamps.items()}
    determining = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_DETERMINING}
    records = {f"{split}/{kind}": made_from for (split, kind), (_, made_from) in finals.items()}  # the weights' too
    jobs = []
    for k in range(count):
        shard = Shard(k, count)
        task_cfg = dataclasses.replace(cfg, shard=f"{k}/{count}")
        result = out_dir / SHARDS_DIR / f"extract.{shard.tag}.json"
        if cfg.overwrite:  # recompute means every task runs, whatever finished before
            result.unlink(missing_ok=True)
        key = job_key("extract", determining, records, shard.tag, inputs)
        jobs.append(Job(f"extract-{shard.tag}", key, extract_task, task_cfg, result))
    joined: dict[str, Any] = {}
    # the folder's final files are this process's to write, as extract's: no plain extraction writes them meanwhile
    with folder_lock(ensure_dir(out_dir), "extraction", ".extract.lock"):
        run_jobs(jobs, launch, name="extract")
        for (split, kind), (path, made_from) in finals.items():
            if not cfg.overwrite and check_existing(path, made_from, stamps[split]):
                joined[str(path)] = "re-used"
                continue
            shards = [shard_path(out_dir, split, kind, Shard(k, count)) for k in range(count)]
            rows = join_shards(path, shards)
            log.info("%s: joined from %d shards, %d videos", path.name, count, rows)
            joined[str(path)] = "joined"
    return joined


__all__ = ["extract_array", "extract_task", "task_count"]
