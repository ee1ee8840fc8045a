"""The feature files as training data: a torch ``Dataset`` with temporal augmentation, and the splits.

Features load into memory when they fit (``in_memory="auto"``: under a quarter of
the available RAM) and are read lazily otherwise. Lazily, training reads (``lazy_reading="copy"``) an
uncompressed training copy of the features made once next to the file (``NAME.h5.uncompressed``, keyed on the
file's content digest, kept under ``copy_budget_gb``: ``research.data.copies``), memory-mapped: a row is a view
of mapped pages, not a gzip chunk inflated under the GIL (benchmarks/lazy_reads.py, 30,000 clips of 18 x 1280
on 2 cores: the gzip file 1.7 % of in-memory clips/s, the copy 68-73 %). ``lazy_reading="direct"`` reads the
file itself: one HDF5 chunk per video, with the
file opened once per worker process (h5py handles must not cross a fork). Either way the sampler and
the order are those of in-memory training: the same seed gives the same batches.

A file that records ``all_finite=True`` (written by the extraction) is trusted; one without the
attribute is scanned for NaN and infinity at open (lazily: in blocks, or while its copy is made).

``open_splits`` is what ``train(cfg)`` reads (train and val required, test optional), refusing a
missing or empty split and files made differently (THE compatibility rule); ``split_loader``
batches one split, seeded, sharded across ranks under torchrun.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from research import distributed
from research.config import TrainConfig
from research.data.copies import GB, KEY_ATTR, copy_key, hold, make_room, open_copy, training_copy_path
from research.errors import FeatureFileError, UserError
from research.features.compat import check_compatible
from research.features.hdf5 import feature_filename, read_attrs
from research.features.writing import writing
from research.files import exclusive

LAYOUT = ("features", "labels", "num_frames")  # the datasets every feature file holds (seed 000)
# TrainConfig settings that change how rows are read (and what is kept on disk for it), never which
READING_ONLY = {"num_workers", "lazy_reading", "copy_budget_gb"}
SCAN_ROWS = 64  # rows decompressed at a time by the finiteness scan and the copy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augment:
    """Random temporal crop (keep >= ``crop`` of the real frames) and per-frame dropout."""

    crop: float = 1.0
    frame_dropout: float = 0.0

    @property
    def active(self) -> bool:
        return self.crop < 1.0 or self.frame_dropout > 0.0

    def __call__(self, features: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, int]:
        n = num_frames
        keep = torch.arange(n)
        if self.crop < 1.0 and n > 1:
            length = int(torch.randint(max(1, int(np.ceil(self.crop * n))), n + 1, ()).item())
            start = int(torch.randint(0, n - length + 1, ()).item())
            keep = keep[start : start + length]
        if self.frame_dropout > 0.0 and len(keep) > 1:
            kept = keep[torch.rand(len(keep)) >= self.frame_dropout]
            keep = kept if len(kept) else keep[:1]
        out = torch.zeros_like(features)
        out[: len(keep)] = features[keep]  # real frames first, zero padding after: the file's convention
        return out, len(keep)


def available_memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


class FeatureDataset(Dataset):
    """``(features [T, D] float32, num_frames, label)`` per video of one feature file.

    ``lazy_reading`` applies when the features are not held in memory: ``copy`` reads an uncompressed
    copy made once next to the file (training: see the module's docstring), ``direct`` the file itself
    (the default here, for callers that read a file once or only its ids)."""

    def __init__(
        self,
        path: str | Path,
        in_memory: str = "auto",
        augment: Augment | None = None,
        lazy_reading: str = "direct",
        copy_budget_gb: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.attrs: dict[str, Any] = read_attrs(self.path)  # a damaged or non-HDF5 file: FeatureFileError
        self.copy_path: Path | None = None  # the uncompressed copy read instead of the file, if any
        self._copy_key = ""  # the file's content digest the copy was made from
        self._hold: IO[bytes] | None = None  # open while this dataset reads the copy: no process removes it
        self.copy_budget_gb = copy_budget_gb  # None: no bound (callers that read a file once)
        try:
            with h5py.File(self.path, "r") as f:
                self._open(f, in_memory, lazy_reading)
        except OSError as err:  # a chunk that does not decompress
            raise self._damaged(f"is damaged ({err})") from None
        self.in_memory = self.features is not None
        self.augment = augment if augment is not None and augment.active else None
        self._file: h5py.File | None = None
        self._rows: np.ndarray | None = None
        self._pid = -1

    def _open(self, f: h5py.File, in_memory: str, lazy_reading: str) -> None:
        missing = [name for name in LAYOUT if name not in f] + ["feature_dim"] * ("feature_dim" not in self.attrs)
        if missing:
            raise self._damaged(f"is not a complete feature file (no {', '.join(missing)})")
        self.labels = f["labels"][:].astype(np.int64)
        ids = f["video_ids"][:] if "video_ids" in f else range(len(self.labels))  # seed files have none
        self.video_ids = [v.decode() if isinstance(v, bytes) else str(v) for v in ids]
        self.num_frames = f["num_frames"][:].astype(np.int64)
        self.shape = f["features"].shape
        if not len(self.labels) == len(self.num_frames) == self.shape[0]:
            raise self._damaged(f"is incomplete: {self.shape[0]} feature rows, {len(self.labels)} labels")
        self.features = None
        recorded = self.attrs.get("all_finite")  # written with the features; absent in older and seed files
        if recorded is False:  # refused as when scanned, naming the first bad video
            self._scan(f)
            raise self._damaged("records non-finite features (all_finite=False) but none were found")
        scanned = recorded is True
        nbytes = int(np.prod(self.shape)) * 4
        if in_memory == "yes" or (in_memory == "auto" and nbytes < available_memory_bytes() // 4):
            self.features = torch.from_numpy(f["features"][:])
            if not scanned:
                self._refuse_nonfinite(self.features.numpy(), 0)
        elif lazy_reading == "copy" and self.shape[0]:
            self._use_training_copy(f, scanned)
        elif not scanned:  # read lazily: scan once, a few videos at a time
            self._scan(f)

    def _scan(self, f: h5py.File) -> None:
        for start in range(0, self.shape[0], SCAN_ROWS):
            self._refuse_nonfinite(self._read_block(f, start), start)

    def _read_block(self, f: h5py.File, start: int) -> np.ndarray:
        try:
            return f["features"][start : start + SCAN_ROWS]
        except OSError as err:  # a chunk that does not decompress
            raise self._damaged(f"is damaged ({err})") from None

    def _use_training_copy(self, f: h5py.File, scanned: bool) -> None:
        """Read from the uncompressed copy next to the file: made now (and scanned while made) when missing
        or made from other content (the file's digest: a joined file's changed shard included), by one process
        at a time (trials, members and ranks opening the same file wait for the first), after older copies
        make room under ``copy_budget_gb``. A copy that does not fit, or cannot be written (full disk,
        read-only folder), leaves the file read directly, with a warning."""
        copy, key = training_copy_path(self.path), copy_key(self.path)
        held = self._hold_copy(copy, key)
        if held is None:
            nbytes = int(np.prod(self.shape)) * f["features"].dtype.itemsize
            if not make_room(copy, nbytes, self.copy_budget_gb):
                log.warning(
                    "%s: no training copy: its %.1f GB do not fit train.copy_budget_gb (%g GB) beside the copies "
                    "in use; reading the file directly (slower: raise copy_budget_gb, or python -m "
                    "research.commands.features clean)",
                    self.path,
                    nbytes / GB,
                    self.copy_budget_gb,
                )
                if not scanned:
                    self._scan(f)
                return
            try:
                with exclusive(copy.with_name(copy.name + ".lock"), wait=True):
                    held = self._hold_copy(copy, key)
                    if held is None:  # not made while this one waited
                        self._write_training_copy(f, copy, key, scanned)
            except OSError as err:  # writing the copy failed (reading the file raises FeatureFileError)
                log.warning("%s: no training copy (%s); reading the file directly (slower)", self.path, err)
                if not scanned:
                    self._scan(f)
                return
            held = held or self._hold_copy(copy, key)
            if held is None:
                log.warning("%s: its training copy does not read back; reading the file directly", self.path)
                return
        self._hold, self.copy_path, self._copy_key = held, copy, key
        weakref.finalize(self, held.close)  # the hold ends with this dataset (closed, not left to the collector)

    def _hold_copy(self, copy: Path, key: str) -> IO[bytes] | None:
        """The copy held for reading (``copies.hold``) when it is there and made from this content, else None."""
        held = hold(copy)
        if held is not None and open_copy(copy, key, self.shape) is None:
            held.close()
            return None
        return held

    def _write_training_copy(self, f: h5py.File, copy: Path, key: str, scanned: bool) -> None:
        """The features uncompressed and contiguous (memory-mappable), the rows scanned on the way unless
        the file records them finite; the copy records the content digest of the file it was made from."""
        log.info("%s: writing its uncompressed training copy %s (once)", self.path, copy.name)
        with writing(copy) as out:
            rows = out.create_dataset("features", self.shape, f["features"].dtype)  # contiguous: no chunks
            for start in range(0, self.shape[0], SCAN_ROWS):
                block = self._read_block(f, start)
                if not scanned:
                    self._refuse_nonfinite(block, start)
                rows[start : start + len(block)] = block
            out.attrs.update({"source": self.path.name, KEY_ATTR: key, "all_finite": True})

    def _damaged(self, what: str) -> FeatureFileError:
        return FeatureFileError(f"{self.path} {what}: extract it again (extract.py --overwrite)")

    def _refuse_nonfinite(self, rows: np.ndarray, start: int) -> None:
        """Features with NaN or infinity train a model of NaNs (and score it): refused, naming the first video."""
        if not len(rows):
            return
        bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(1)
        if bad.any():
            row = start + int(np.argmax(bad))
            raise FeatureFileError(
                f"{self.path} holds non-finite features (NaN or infinity), first in video {self.video_ids[row]!r} "
                f"(row {row}): extract it again (extract.py --overwrite), or leave that video out"
            )

    @property
    def feature_dim(self) -> int:
        return int(self.attrs["feature_dim"])

    @property
    def category_mapping(self) -> dict[str, int]:
        return dict(self.attrs.get("category_mapping", {}))

    @property
    def classes(self) -> list[str]:
        """Class names in label order."""
        return [c for c, _ in sorted(self.category_mapping.items(), key=lambda kv: kv[1])]

    @property
    def num_classes(self) -> int:
        return max(len(self.category_mapping), int(self.labels.max()) + 1 if len(self.labels) else 0)

    def __len__(self) -> int:
        return len(self.labels)

    def _read(self, i: int) -> torch.Tensor:
        if self.features is not None:
            return self.features[i]
        if self.copy_path is not None:
            if self._rows is None:  # mapped once; forked workers share the map (spawned ones map it again)
                self._rows = open_copy(self.copy_path, self._copy_key, self.shape)
                if self._rows is None:
                    raise FeatureFileError(
                        f"{self.copy_path} changed while training read it (the feature file was replaced?): train again"
                    )
            return torch.from_numpy(self._rows[i])
        if self._file is None or self._pid != os.getpid():  # one handle per worker process
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return torch.from_numpy(self._file["features"][i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        features, n = self._read(i), int(self.num_frames[i])
        if self.augment is not None:
            features, n = self.augment(features, n)
        return features, n, int(self.labels[i])

    def plain_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(features, num_frames)`` in file order, never augmented (input statistics, probes)."""
        for start in range(0, len(self), batch_size):
            rows = range(start, min(start + batch_size, len(self)))
            yield torch.stack([self._read(i) for i in rows]), torch.as_tensor(self.num_frames[start : rows.stop])

    def __getstate__(self) -> dict:  # h5py handles do not pickle; workers reopen (the parent holds the copy)
        state = dict(self.__dict__)
        state["_file"], state["_rows"], state["_pid"], state["_hold"] = None, None, -1, None
        return state


def split_path(features_dir: str | Path, split: str, multi_scale: bool) -> Path:
    return Path(features_dir) / feature_filename(split, "multi" if multi_scale else "single")


# ----------------------------------------------------------------- the splits


def open_splits(cfg: TrainConfig) -> dict[str, FeatureDataset]:
    """train/val(/test) datasets; refuses empty splits and files that were made differently."""
    augment = Augment(cfg.aug_crop, cfg.aug_frame_dropout)
    splits: dict[str, FeatureDataset] = {}
    for split in ("train", "val", "test"):
        path = split_path(cfg.features_dir, split, cfg.multi_scale)
        if not path.is_file():
            if split == "test":
                continue
            kind = "multi-scale" if cfg.multi_scale else "single-scale"
            raise UserError(f"{kind} {split} features not found: {path} (run extract.py first, or pass --features-dir)")
        augmented = augment if split == "train" else None
        splits[split] = FeatureDataset(path, cfg.in_memory, augmented, cfg.lazy_reading, cfg.copy_budget_gb)
        if split != "test" and not len(splits[split]):
            raise UserError(
                f"{path} holds no videos: training needs a non-empty {split} split "
                f"(add videos under DATA/{split}/ and extract again)"
            )
    ref = splits["train"]
    for ds in splits.values():
        check_compatible(ref.attrs, ds.attrs, str(ref.path), str(ds.path))
    return splits


def split_loader(
    ds: FeatureDataset, cfg: TrainConfig, shuffle: bool, ctx: distributed.Context, device: torch.device, seed: int
) -> DataLoader:
    """Batches of one split: shuffled (and sharded under torchrun) for training, in order otherwise."""
    sampler = (
        DistributedSampler(ds, ctx.world_size, ctx.rank, shuffle=shuffle, seed=seed)
        if ctx.distributed and shuffle
        else None
    )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
