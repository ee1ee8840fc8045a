"""A temporal Transformer encoder over frame features."""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from research.models.layers import (
    AttentionPooling,
    input_projection,
    masked_mean,
    mlp_head,
    padding_mask,
    sinusoidal_positions,
)
from research.models.registry import register_model


@register_model("transformer")
class TemporalTransformer(nn.Module):
    """Input projection, positions (``sinusoidal`` | ``learned``), pre-norm encoder layers,
    then ``cls`` token, ``attention`` or ``mean`` pooling, and an MLP head."""

    attention_width_per_hidden = 1

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        hidden_size: int = 256,
        num_layers: int = 2,
        num_heads: int = 4,
        dropout: float = 0.1,
        classifier_dropout: float = 0.3,
        positions: str = "sinusoidal",
        pooling: str = "cls",
        max_len: int = 512,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
        if positions not in ("sinusoidal", "learned") or pooling not in ("cls", "attention", "mean"):
            raise ValueError("positions: sinusoidal | learned; pooling: cls | attention | mean")
        self.pooling = pooling
        self.input_proj = input_projection(feature_dim, hidden_size, dropout)
        table = sinusoidal_positions(max_len + 1, hidden_size)
        if positions == "learned":
            self.positions = nn.Parameter(table.clone() * 0.02)
        else:
            self.register_buffer("positions", table, persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden_size)) if pooling == "cls" else None
        layer = nn.TransformerEncoderLayer(
            hidden_size, num_heads, ff_mult * hidden_size, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        # No nested-tensor fast path: identical numerics in train and eval, padded or not.
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(hidden_size), enable_nested_tensor=False
        )
        self.attn_pool = AttentionPooling(hidden_size) if pooling == "attention" else None
        self.classifier = mlp_head(hidden_size, [hidden_size], num_classes, classifier_dropout)

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        b, t, _ = features.shape
        mask = padding_mask(num_frames, t)
        x = self.input_proj(features)
        if self.cls is not None:
            x = torch.cat([repeat(self.cls, "1 1 h -> b 1 h", b=b), x], dim=1)
            mask = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        x = x + self.positions[: x.shape[1]]
        x = self.encoder(x, src_key_padding_mask=~mask)
        if self.cls is not None:
            pooled = x[:, 0]
        elif self.attn_pool is not None:
            pooled = self.attn_pool(x, mask)
        else:
            pooled = masked_mean(x, mask)
        return self.classifier(pooled)
