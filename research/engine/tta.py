"""Temporal test-time augmentation (four views of a feature sequence) and the one inference loop.

The seed averages "four temporal augmentation modes" without naming them. Ours
are views under which a video's *content class* should not change, so a model
that leans on one accidental temporal cue is corrected by the others:

- ``identity``: the sequence as extracted;
- ``reverse``: real frames in reverse order (a slide deck, a game or a landscape is
  the same kind of content played backwards; recurrent models read it differently);
- ``stride2``: every second real frame (double playback speed, the direction the
  seed's own 0.85x scale explores);
- ``center``: the central 80 % of the real frames (drops intros, outros and fades,
  which often look like another class).

Each view is a pure function ``(features [B, T, D], num_frames [B]) -> (features,
num_frames)`` that reads only real frames and writes the view's frames first,
zero padding after (the feature files' convention), so padding never leaks in.

``predict`` is the single inference loop (validation in training, members in
evaluation, ablations, cross-validation): probabilities over a loader, plain or
averaged over views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from research.config import TTA_DEFAULT_MODES as DEFAULT_MODES  # named where configs can check them without torch

View = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _take(
    features: torch.Tensor, start: torch.Tensor, step: int, length: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames ``start + step * t`` for ``t < length`` (per sample), zeros after."""
    t = features.shape[1]
    steps = torch.arange(t, device=features.device)
    index = (start[:, None] + step * steps[None, :]).clamp(0, t - 1)
    valid = steps[None, :] < length[:, None]
    out = torch.gather(features, 1, index[..., None].expand(-1, -1, features.shape[2]))
    return out * valid[..., None].to(features.dtype), length


def identity(features: torch.Tensor, num_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _take(features, torch.zeros_like(num_frames), 1, num_frames)


def reverse(features: torch.Tensor, num_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _take(features, num_frames - 1, -1, num_frames)


def stride2(features: torch.Tensor, num_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _take(features, torch.zeros_like(num_frames), 2, (num_frames + 1) // 2)


def center(
    features: torch.Tensor, num_frames: torch.Tensor, fraction: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor]:
    length = torch.clamp(torch.round(num_frames.to(torch.float32) * fraction).to(num_frames.dtype), min=1)
    return _take(features, (num_frames - length) // 2, 1, length)


VIEWS: dict[str, View] = {"identity": identity, "reverse": reverse, "stride2": stride2, "center": center}


def get_views(modes: list[str] | tuple[str, ...] = DEFAULT_MODES) -> list[View]:
    unknown = [m for m in modes if m not in VIEWS]
    if unknown or not modes:
        raise ValueError(f"unknown TTA mode(s) {unknown}; choose from {sorted(VIEWS)}")
    return [VIEWS[m] for m in modes]


@torch.inference_mode()
def tta_probabilities(
    model: torch.nn.Module, features: torch.Tensor, num_frames: torch.Tensor, views: list[View]
) -> torch.Tensor:
    """Mean of the softmax over the views: ``[B, C]``."""
    probs = [torch.softmax(model(*view(features, num_frames)).float(), dim=1) for view in views]
    return torch.stack(probs).mean(0)


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    device: torch.device,
    views: list[View] | None = None,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``[N, C]`` and labels ``[N]`` over ``(features, num_frames, labels)`` batches.

    ``views``: average over these temporal views (TTA); None = the sequence as it is.
    ``amp``: bf16 autocast on CUDA (ignored elsewhere).
    """
    model.eval().to(device)
    probs, labels = [], []
    for features, num_frames, y in batches:
        features = features.to(device, non_blocking=True)
        num_frames = num_frames.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            if views:
                p = tta_probabilities(model, features, num_frames, views)
            else:
                p = torch.softmax(model(features, num_frames).float(), dim=1)
        probs.append(p.float().cpu())
        labels.append(torch.as_tensor(y))
    if not probs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()
