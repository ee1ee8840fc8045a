"""The feature files as training data: a torch ``Dataset`` with temporal augmentation, and the splits.

Features load into memory when they fit (``in_memory="auto"``: under a quarter of
the available RAM) and are read lazily otherwise: one HDF5 chunk per video, with
the file opened once per worker process (h5py handles must not cross a fork).

``open_splits`` is what ``train(cfg)`` reads (train and val required, test optional), refusing a
missing or empty split and files made differently (THE compatibility rule); ``split_loader``
batches one split, seeded, sharded across ranks under torchrun.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from research import distributed
from research.config import TrainConfig
from research.errors import FeatureFileError, UserError
from research.features.compat import check_compatible
from research.features.hdf5 import feature_filename, read_attrs

LAYOUT = ("features", "labels", "num_frames")  # the datasets every feature file holds (seed 000)


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
    """``(features [T, D] float32, num_frames, label)`` per video of one feature file."""

    def __init__(self, path: str | Path, in_memory: str = "auto", augment: Augment | None = None) -> None:
        self.path = Path(path)
        self.attrs: dict[str, Any] = read_attrs(self.path)  # a damaged or non-HDF5 file: FeatureFileError
        try:
            with h5py.File(self.path, "r") as f:
                self._open(f, in_memory)
        except OSError as err:  # a chunk that does not decompress
            raise self._damaged(f"is damaged ({err})") from None
        self.in_memory = self.features is not None
        self.augment = augment if augment is not None and augment.active else None
        self._file: h5py.File | None = None
        self._pid = -1

    def _open(self, f: h5py.File, in_memory: str) -> None:
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
        nbytes = int(np.prod(self.shape)) * 4
        if in_memory == "yes" or (in_memory == "auto" and nbytes < available_memory_bytes() // 4):
            self.features = torch.from_numpy(f["features"][:])
            self._refuse_nonfinite(self.features.numpy(), 0)
        else:  # read lazily: scan once, a few videos at a time
            for start in range(0, self.shape[0], 64):
                self._refuse_nonfinite(f["features"][start : start + 64], start)

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

    def __getstate__(self) -> dict:  # h5py handles do not pickle; workers reopen
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
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
        splits[split] = FeatureDataset(path, cfg.in_memory, augment if split == "train" else None)
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
