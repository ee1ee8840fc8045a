"""Which runtime runs the frozen CNN: torch itself, or ONNX Runtime on an exported copy of it.

The CNN is the slow part of CPU extraction, and ONNX Runtime ran the same networks 2.5-3.8x faster
than torch eager on this 2-core CPU with features equal to float rounding (benchmarks/RESULTS.md).

- ``resolve_runtime``: ``auto`` is ONNX Runtime on CPU when it is installed, torch elsewhere (on CUDA
  torch keeps its autocast path; ONNX Runtime's CUDA / TensorRT providers are untested and refused).
- ``OnnxBackbone``: a callable standing where ``FrameBatcher`` calls a torch backbone,
  ``[B, 3, H, W]`` float tensor in, ``[B, D]`` float tensor out.
- ``torch_threads_for``: torch's own threads cut to one while only ONNX Runtime networks run (they would only
  spin between small ops, taking cores from the CNN and the decoders).
- ``exported_model``: the torch backbone exported once (TorchScript exporter, opset ``OPSET``) into
  ``<torch hub>/onnx/``, under a key made of everything that determines the graph: the backbone's name,
  a digest of its actual weights (so another file at the same path, or new weights, is another key),
  the input size, the opset and the versions of torch, onnx and ONNX Runtime. Untrained networks
  (``--random-weights``) are exported in memory and never cached.

Whether files from two runtimes may be mixed: ``TOLERANCE`` is the largest difference accepted between
a runtime's features and torch's (tests/test_runtime.py measures it for every offline backbone; measured
differences were ~1e-5, the size of float rounding between two orders of summation, and far below any
effect on a classifier), so the runtime is recorded in feature files but not compared by
``research.features.compat``: files made by torch and by ONNX Runtime are compatible (docs/extraction.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import warnings
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from research.errors import ConfigError
from research.features.settings import RUNTIMES
from research.files import replaced_atomically

OPSET = 17  # the opset measured in benchmarks/RESULTS.md; part of the export key
TOLERANCE = 1e-4  # max abs difference from torch's features a runtime must stay within (tested per backbone)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The runtime a setting means on ``device``: ``auto`` -> ONNX Runtime on CPU (when installed), torch on GPUs."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r} is not one of {list(RUNTIMES)}")
    if runtime == "auto":
        return "onnxruntime" if device.type == "cpu" and onnxruntime_available() else "torch"
    if runtime == "onnxruntime":
        if device.type != "cpu":
            raise ConfigError(
                f"runtime: onnxruntime runs on the CPU here; on {device} use runtime: torch (ONNX Runtime's "
                "CUDA and TensorRT providers are untested in this project)"
            )
        if not onnxruntime_available():
            raise ConfigError("runtime: onnxruntime needs the onnxruntime and onnx packages: run `make setup`")
    return runtime


def runtime_label(runtime: str) -> str:
    """What a feature file records: the runtime and its version (``torch 2.14.1``, ``onnxruntime 1.32.0``)."""
    return f"{runtime} {_version(runtime)}"


def weights_digest(module: nn.Module) -> str:
    """sha256 of every parameter and buffer, by name: the weights a network actually holds."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_key(name: str, module: nn.Module, image_size: int) -> str:
    """Everything that determines an exported graph, digested: the cache file's name."""
    parts = [
        name,
        type(module).__qualname__,
        weights_digest(module),
        f"{image_size}px",
        f"opset{OPSET}",
        *(f"{p}={_version(p)}" for p in ("torch", "onnx", "onnxruntime")),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def export_dir() -> Path:
    """Beside the weights: ``<torch hub>/onnx/`` (``$TORCH_HOME/hub/onnx``)."""
    return Path(torch.hub.get_dir()) / "onnx"


def _export(module: nn.Module, image_size: int, target: Any) -> None:
    """The TorchScript exporter (``dynamo=False``: needs no network and no onnxscript), batch axis dynamic."""
    module = module.to(memory_format=torch.contiguous_format)  # in place: the caller's module is not used after
    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, on every call
        torch.onnx.export(
            module,
            (example,),
            target,
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        )


def exported_model(name: str, module: nn.Module, image_size: int, cache: bool = True) -> Path | bytes:
    """The ONNX file of ``module`` at ``image_size``: from the cache, exported into it on first use (or, with
    ``cache=False``, bytes made now)."""
    if not cache:
        buffer = io.BytesIO()
        _export(module, image_size, buffer)
        return buffer.getvalue()
    path = export_dir() / f"{name.replace('/', '_')}-{image_size}px-{export_key(name, module, image_size)}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp:  # a killed export leaves no half file under the key
            _export(module, image_size, str(tmp))
    return path


class OnnxBackbone:
    """An exported backbone run by ONNX Runtime on the CPU; called like the torch module it stands for."""

    uses_channels_last = False  # the exported graph takes plain NCHW

    def __init__(self, model: Path | bytes, spec: Any, threads: int) -> None:
        import onnxruntime as ort  # imported here: only runs that use it pay for it

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no busy-waiting between batches: the decoding workers share these cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = str(model) if isinstance(model, Path) else model
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.spec = spec

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        images = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(["features"], {"images": images})[0])


@contextlib.contextmanager
def torch_threads_for(backbones: Sequence[Any]) -> Iterator[None]:
    """torch's intra-op threads in this process while ``backbones`` run: one when none is a torch module.

    With every CNN in ONNX Runtime (its own thread pool), torch here only does small ops on per-frame
    features (the temporal scales, the finiteness check); on its OpenMP threads each of them costs more in
    spin-waiting than in arithmetic (the main process's rest of extraction: 1.2 ms of CPU per frame with 2
    threads, 0.2 with one, benchmarks/RESULTS.md, issue 50) and takes cores from the CNN and the decoding
    workers. Restored on exit.
    """
    if any(isinstance(b, nn.Module) for b in backbones):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def onnx_backbone(name: str, module: nn.Module, image_size: int, pretrained: bool) -> OnnxBackbone:
    """``module`` (a frozen backbone from ``create_backbone``) exported, or found exported, and loaded."""
    model = exported_model(name, module, image_size, cache=pretrained)
    return OnnxBackbone(model, getattr(module, "spec", None), torch.get_num_threads())


__all__ = [
    "OPSET",
    "RUNTIMES",
    "TOLERANCE",
    "OnnxBackbone",
    "export_dir",
    "export_key",
    "exported_model",
    "onnx_backbone",
    "onnxruntime_available",
    "resolve_runtime",
    "runtime_label",
    "torch_threads_for",
]
