"""Temporal models behind one registry and one contract.

Every model is built as ``create_model(name, feature_dim=D, num_classes=C, **own_args)``
and maps ``(features [B, T, D], num_frames [B]) -> logits [B, C]``, ignoring the
padding after ``num_frames``. A family takes only its own keyword arguments, with
their defaults in its constructor (``model_arguments(name)`` lists them); a config
gives them under ``model_args.<name>``. ``model.config`` (every argument, defaults
filled in) is what a checkpoint stores to rebuild it.

    from research.models import create_model, list_models, model_arguments
    model = create_model("transformer", feature_dim=1280, num_classes=4, hidden_size=256)

Add a family: a module here with a class decorated by ``@register_model("name")``,
whose ``__init__(self, feature_dim, num_classes, ...)`` gives every other argument a
default, imported below. Tests are parametrised over ``list_models()``.
"""

from research.models import linear, mean_pool, netvlad, recurrent, transformer  # noqa: F401  (they register)
from research.models.registry import (
    attention_width,
    check_model_args,
    count_parameters,
    create_model,
    drop_retired,
    list_models,
    model_arguments,
    register_model,
    resolve_model_args,
)

__all__ = [
    "attention_width",
    "check_model_args",
    "count_parameters",
    "create_model",
    "drop_retired",
    "list_models",
    "model_arguments",
    "register_model",
    "resolve_model_args",
]
