"""Layers every temporal model shares: padding masks, masked pooling, the MLP head.

Feature files are zero-padded to ``max_frames``; ``num_frames`` says how many rows
of each sequence are real. Every model must give the same logits whatever padding
follows the real frames, so everything that mixes time steps goes through a mask.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


def padding_mask(num_frames: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B]`` lengths -> ``[B, T]`` bool, True where a frame is real."""
    steps = torch.arange(max_len, device=num_frames.device)
    return steps[None, :] < num_frames[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames: ``[B, T, D]`` -> ``[B, D]``."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class AttentionPooling(nn.Module):
    """The seed's attention pooling: a linear score per frame, softmax over real frames, weighted sum."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = rearrange(self.score(x), "b t 1 -> b t").masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, x)


def mlp_head(in_dim: int, hidden_dims: list[int], num_classes: int, dropout: float) -> nn.Sequential:
    """Linear + LayerNorm + ReLU + Dropout per hidden width, then the class logits (seed 003)."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, num_classes))
    return nn.Sequential(*layers)


def input_projection(feature_dim: int, hidden_size: int, dropout: float) -> nn.Sequential:
    """The seed's input block: Linear(D -> H) + LayerNorm + ReLU + Dropout."""
    return nn.Sequential(nn.Linear(feature_dim, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU(), nn.Dropout(dropout))


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The Transformer paper's fixed positions, ``[length, dim]``."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table


def packed_rnn(rnn: nn.RNNBase, x: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """Run an RNN over the real frames only (packed), zero at padded steps: ``[B, T, H]``."""
    packed = nn.utils.rnn.pack_padded_sequence(x, num_frames.cpu().clamp_min(1), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out
