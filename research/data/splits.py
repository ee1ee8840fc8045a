"""The training splits of a features folder: opened, checked against each other, batched.

``open_splits`` is what ``train(cfg)`` reads (train and val required, test optional), refusing a
missing or empty split and files made differently (THE compatibility rule); ``split_loader``
batches one split, seeded, sharded across ranks under torchrun.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler

from research import distributed
from research.checkpoints import check_compatible
from research.config import TrainConfig
from research.data.dataset import Augment, FeatureDataset, split_path
from research.errors import UserError


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
