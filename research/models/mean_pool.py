"""The classic strong baseline: the masked mean of frame features, then an MLP."""

from __future__ import annotations

import torch
from torch import nn

from research.models.layers import masked_mean, mlp_head, padding_mask
from research.models.registry import register_model


@register_model("mean_pool")
class MeanPoolModel(nn.Module):
    """Order-blind: if a temporal model cannot beat this, time did not help."""

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.2,
        classifier_dropout: float = 0.4,
    ) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(dropout)
        self.head = mlp_head(feature_dim, [hidden_size] * max(num_layers, 1), num_classes, classifier_dropout)

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(features, padding_mask(num_frames, features.shape[1]))
        return self.head(self.input_dropout(pooled))
