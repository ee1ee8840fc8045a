"""NetVLAD pooling with context gating: the YouTube-8M winners' learnable pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from research.models.layers import mlp_head, padding_mask
from research.models.registry import register_model


class ContextGating(nn.Module):
    """``x * sigmoid(W x + b)``: re-weights features by their context (Miech et al., 2017)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.gate(x))


@register_model("netvlad")
class NetVLADModel(nn.Module):
    """Frames are softly assigned to ``clusters`` centres; residuals are summed per cluster
    over real frames, normalised, projected to ``hidden_size``, context-gated, classified.
    Order-blind like ``mean_pool``, but it keeps a distribution rather than one mean."""

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        hidden_size: int = 256,
        dropout: float = 0.2,
        classifier_dropout: float = 0.4,
        clusters: int = 16,
        reduce_dim: int = 128,
    ) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Linear(feature_dim, reduce_dim), nn.LayerNorm(reduce_dim), nn.Dropout(dropout))
        self.assign = nn.Linear(reduce_dim, clusters)
        self.centres = nn.Parameter(torch.randn(clusters, reduce_dim) * 0.1)
        self.project = nn.Sequential(
            nn.Linear(clusters * reduce_dim, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU()
        )
        self.gating = ContextGating(hidden_size)
        self.classifier = mlp_head(hidden_size, [], num_classes, classifier_dropout)
        self.classifier.insert(0, nn.Dropout(classifier_dropout))

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(num_frames, features.shape[1]).to(features.dtype)
        x = self.reduce(features)  # [B, T, d]
        soft = torch.softmax(self.assign(x), dim=-1) * mask.unsqueeze(-1)  # [B, T, K], zero on padding
        vlad = torch.einsum("btk,btd->bkd", soft, x) - soft.sum(1).unsqueeze(-1) * self.centres  # [B, K, d]
        vlad = F.normalize(F.normalize(vlad, dim=-1).flatten(1), dim=-1)  # intra- then global L2 norm
        return self.classifier(self.gating(self.project(vlad)))
