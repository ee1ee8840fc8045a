"""The checkpoint format: what a member holds, how it is written, read and rebuilt.

A checkpoint (``best_ensemble_model_{seed}.pt``) holds only tensors and plain data, so
``torch.load(..., weights_only=True)`` reads it and it cannot run code:

    model_state   the weights
    model         {name, kwargs}: ``create_model(name, **kwargs)`` rebuilds the architecture
    features      what the model was trained on, under the feature file's attribute names
                  (``FEATURE_KEYS``: backbone, weights, frames, image size, sampling, scales,
                  classes, ...) plus the training file's path
    feature_dim, num_classes, category_mapping   (also top level: seed-style readers use them)
    config, metrics, seed, epoch, mlflow_run_id
    calibration   the temperature fitted on the validation split after training, with the
                  split's ECE/NLL/Brier before and after (``research.engine.calibration``);
                  applied wherever the member's probabilities are used (1 where absent)

Whether a checkpoint fits a feature file is ``research.features.compat``'s one rule.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from research.distributed import unwrap_model
from research.errors import CheckpointError
from research.features.compat import feature_record
from research.files import disk_errors, replaced_atomically
from research.models import create_model, drop_retired

log = logging.getLogger(__name__)


def checkpoint_name(seed: int) -> str:
    return f"best_ensemble_model_{seed}.pt"


# ----------------------------------------------------------------- the format


def make_checkpoint(
    model: nn.Module,
    config: Any,
    feature_attrs: Mapping[str, Any],
    feature_file: Path,
    metrics: Mapping[str, float],
    epoch: int,
    run_id: str | None,
) -> dict[str, Any]:
    """A checkpoint dict from a trained model and the attributes of the file it trained on."""
    module = unwrap_model(model)
    record = feature_record(feature_attrs)
    return {
        "model_state": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
        "model": {"name": module.config["name"], "kwargs": module.config["kwargs"]},
        "feature_dim": int(record["feature_dim"]),
        "num_classes": int(module.config["kwargs"]["num_classes"]),
        "category_mapping": record.get("category_mapping", {}),
        "features": record | {"file": str(Path(feature_file).resolve())},
        "config": dataclasses.asdict(config),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "seed": getattr(config, "seed", None),
        "epoch": epoch,
        "mlflow_run_id": run_id,
    }


def checkpoint_features(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint's model expects, under ``FEATURE_KEYS`` (older checkpoints kept some keys top level)."""
    record = dict(checkpoint.get("features", {}))
    for key in ("feature_dim", "category_mapping"):
        record.setdefault(key, checkpoint.get(key))
    return {k: v for k, v in feature_record(record).items() if v is not None} | {"file": record.get("file")}


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinity."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """Write atomically: a crash leaves the previous file or the new one, never half of one; two processes
    never share a temporary file; weights with NaN or infinity are never written (nor replace good ones)."""
    bad = nonfinite_tensors(obj.get("model_state", {}))
    if bad:
        raise CheckpointError(f"refusing to write {path}: non-finite weights in {', '.join(bad[:3])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised in memory first: torch.save writing straight to a full disk fails with a RuntimeError that
    # has lost the errno; a plain write keeps it, and disk_errors makes it one line that says what to do.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with disk_errors(path.parent), replaced_atomically(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as plain data; ``weights_only`` so a file cannot execute code. Anything that is not
    one of our checkpoints (another program's ``.pt``, damaged, or with non-finite weights) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a checkpoint this project wrote: it holds Python objects, and loading them could run "
            "code, so it is refused (our checkpoints hold only tensors and plain data). Re-train it with train.py."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError) as err:  # torch's text, zip or key errors
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint: it is damaged, or not a file torch.save wrote "
            f"({type(err).__name__}: {err})"
        ) from None
    missing = _missing_parts(ckpt)
    if missing:
        raise CheckpointError(
            f"{path} is not a checkpoint this project wrote (no {', '.join(missing)}); give a "
            "best_ensemble_model_{seed}.pt written by train.py"
        )
    bad = nonfinite_tensors(ckpt["model_state"])
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or infinity in {', '.join(bad[:3])}): its training diverged; "
            "re-train it (e.g. with a lower lr) with --overwrite"
        )
    return ckpt


def _missing_parts(ckpt: Any) -> list[str]:
    """What a checkpoint of ours must hold and ``ckpt`` does not."""
    if not isinstance(ckpt, dict):
        return [f"mapping of parts, only a {type(ckpt).__name__}"]
    model = ckpt.get("model")
    needed = {
        "model_state (a mapping of tensors)": isinstance(ckpt.get("model_state"), Mapping)
        and all(torch.is_tensor(v) for v in ckpt["model_state"].values()),
        "model {name, kwargs}": isinstance(model, Mapping)
        and isinstance(model.get("name"), str)
        and isinstance(model.get("kwargs"), Mapping),
        "feature_dim": isinstance(ckpt.get("feature_dim"), int),
        "category_mapping": isinstance(ckpt.get("category_mapping"), Mapping),
    }
    return [name for name, present in needed.items() if not present]


def checkpoint_temperature(checkpoint: Mapping[str, Any]) -> float:
    """The member's calibration temperature (1 for a checkpoint written before calibration existed)."""
    return float(checkpoint.get("calibration", {}).get("temperature", 1.0))


def build_model(checkpoint: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from a checkpoint's recorded name and kwargs, weights loaded.

    Checkpoints from before issue #21 carry the old shared contract's arguments for every family;
    those a family does not take are dropped (``drop_retired``), any other unknown one is an error.
    """
    name = checkpoint["model"]["name"]
    model = create_model(name, **drop_retired(name, checkpoint["model"]["kwargs"]))
    try:
        model.load_state_dict(checkpoint["model_state"])
    except RuntimeError as err:  # weights of another shape than the recorded architecture
        first = str(err).strip().splitlines()[-1].strip()
        raise CheckpointError(f"a checkpoint's weights do not fit its {name} architecture: {first}") from None
    return model
