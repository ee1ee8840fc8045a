"""Recurrent families: the seed's ``SuperEnhancedTemporalModel`` and a lighter BiGRU."""

from __future__ import annotations

import torch
from torch import nn

from research.models.layers import AttentionPooling, input_projection, mlp_head, packed_rnn, padding_mask
from research.models.registry import register_model


@register_model("super_enhanced")
class SuperEnhancedTemporalModel(nn.Module):
    """Seed 003, layer for layer (baseline sizes in brackets; they are the defaults below):

    input projection Linear(D -> H [768]) + LayerNorm + ReLU + Dropout [0.2];
    BiLSTM, L [4] layers, hidden H -> 2H [1536]; multi-head self-attention, heads [12]
    on 2H, residual + LayerNorm; attention pooling over real frames; classifier
    2H -> classifier_dims [768, 512, 256] -> C with LayerNorm and Dropout [0.4].
    About 64 M parameters at the baseline sizes with D = 1280.
    """

    attention_width_per_hidden = 2  # attention runs on the BiLSTM output, 2 * hidden_size

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        hidden_size: int = 768,  # seed 003: Linear(1280->768); BiLSTM hidden_dim=768 (-> 1536 bidirectional)
        num_layers: int = 4,  # seed 003: 4 BiLSTM layers
        num_heads: int = 12,  # seed 003: 12 heads, embed_dim=1536
        dropout: float = 0.2,  # seed 003: input projection Dropout(0.2)
        classifier_dropout: float = 0.4,  # seed 003: classifier Dropout(0.4)
        classifier_dims: tuple[int, ...] | list[int] = (768, 512, 256),  # seed 003: 1536->768->512->256->C
        lstm_dropout: float | None = None,
    ) -> None:
        super().__init__()
        width = 2 * hidden_size
        if width % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the attention width 2*hidden_size={width}")
        self.input_proj = input_projection(feature_dim, hidden_size, dropout)
        # Dropout between LSTM layers is not in the seed's table; we reuse the input dropout.
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=(dropout if lstm_dropout is None else lstm_dropout) if num_layers > 1 else 0.0,
        )
        self.attention = nn.MultiheadAttention(width, num_heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(width)
        self.pool = AttentionPooling(width)
        self.classifier = mlp_head(width, list(classifier_dims), num_classes, classifier_dropout)

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(num_frames, features.shape[1])
        x = packed_rnn(self.lstm, self.input_proj(features), num_frames)
        attended, _ = self.attention(x, x, x, key_padding_mask=~mask, need_weights=False)
        x = self.attention_norm(x + attended)
        return self.classifier(self.pool(x, mask))


@register_model("gru")
class BiGRUModel(nn.Module):
    """A lighter recurrent baseline: input projection, BiGRU, attention pooling, MLP head."""

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.2,
        classifier_dropout: float = 0.4,
    ) -> None:
        super().__init__()
        self.input_proj = input_projection(feature_dim, hidden_size, dropout)
        self.gru = nn.GRU(
            hidden_size,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.pool = AttentionPooling(2 * hidden_size)
        self.classifier = mlp_head(2 * hidden_size, [hidden_size], num_classes, classifier_dropout)

    def forward(self, features: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(num_frames, features.shape[1])
        x = packed_rnn(self.gru, self.input_proj(features), num_frames)
        return self.classifier(self.pool(x, mask))
