"""Temporal models behind one registry and one contract.

Every model is built as ``create_model(name, feature_dim=D, num_classes=C,
hidden_size=..., num_layers=..., num_heads=..., dropout=..., classifier_dropout=...,
**extras)`` and maps ``(features [B, T, D], num_frames [B]) -> logits [B, C]``,
ignoring the padding after ``num_frames``. ``model.config`` is what a checkpoint
stores to rebuild it.

    from research.models import create_model, list_models
    model = create_model("transformer", feature_dim=1280, num_classes=4, hidden_size=256)

Add a family: a module here with a class decorated by ``@register_model("name")``,
imported below. Tests are parametrised over ``list_models()``.
"""

from research.models import linear, mean_pool, netvlad, recurrent, transformer  # noqa: F401  (they register)
from research.models.registry import attention_width, count_parameters, create_model, list_models, register_model

__all__ = ["attention_width", "count_parameters", "create_model", "list_models", "register_model"]
