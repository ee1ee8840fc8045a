"""The linear probe: masked temporal pooling, standardised, one linear layer.

What the frozen-feature literature (and the YouTube-8M starter code) reports first:
if a temporal model cannot beat a linear classifier on pooled features, its extra
capacity bought nothing. Pooling is the masked mean of the real frames, optionally
with their standard deviation and maximum (``pooling=[mean, std, max]``, or the
string ``"mean+std+max"``), which
give a linear model some notion of how much a video changes over time.

Inputs are standardised with the training set's statistics: ``fit_standardizer``
is called by ``train()`` before the first epoch (any model may define it), and the
statistics are buffers, so a checkpoint carries them.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from research.models.layers import padding_mask
from research.models.registry import register_model

POOLINGS = ("mean", "std", "max")


def masked_pool(features: torch.Tensor, num_frames: torch.Tensor, pooling: list[str]) -> torch.Tensor:
    """``[B, T, D]`` -> ``[B, len(pooling) * D]`` over the real frames only."""
    mask = padding_mask(num_frames, features.shape[1])[..., None]
    count = mask.sum(1).clamp_min(1).to(features.dtype)
    mean = (features * mask).sum(1) / count
    out = []
    for name in pooling:
        if name == "mean":
            out.append(mean)
        elif name == "std":
            var = (((features - mean[:, None]) * mask) ** 2).sum(1) / count
            out.append(var.clamp_min(0).sqrt())
        else:
            out.append(features.masked_fill(~mask, float("-inf")).amax(1).clamp_min(-1e4))
    return torch.cat(out, dim=1)


@register_model("linear")
class LinearProbe(nn.Module):
    """Pooled, standardised features -> dropout -> one ``nn.Linear``: no width, depth or heads."""

    def __init__(
        self, feature_dim: int, num_classes: int, dropout: float = 0.0, pooling: list[str] | str = "mean"
    ) -> None:
        super().__init__()
        # "mean+std" is the same as [mean, std]: a string is what an Optuna categorical can hold
        self.pooling = pooling.split("+") if isinstance(pooling, str) else list(pooling or ["mean"])
        unknown = sorted(set(self.pooling) - set(POOLINGS))
        if unknown or not self.pooling:
            raise ValueError(f"pooling must be a non-empty list from {POOLINGS}, got {self.pooling}")
        width = feature_dim * len(self.pooling)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    @torch.no_grad()
    def fit_standardizer(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Mean and std of the pooled training features (one pass, float64 sums)."""
        total, total_sq, n = None, None, 0
        for features, num_frames in batches:
            pooled = masked_pool(features.float(), num_frames, self.pooling).double()
            total = pooled.sum(0) if total is None else total + pooled.sum(0)
            total_sq = (pooled**2).sum(0) if total_sq is None else total_sq + (pooled**2).sum(0)
            n += pooled.shape[0]
        if not n:
            return
        mean = total / n
        std = (total_sq / n - mean**2).clamp_min(0).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float().clamp_min(1e-3))  # constant dimensions stay finite

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        pooled = masked_pool(features.float(), num_frames, self.pooling)
        return self.classifier(self.dropout((pooled - self.mean) / self.std))
