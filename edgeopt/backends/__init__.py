"""One runner per runtime.  ``runner_class(name)`` imports a backend (and its library) only when asked."""
from __future__ import annotations

import importlib

from edgeopt.backends.base import Runner, RunnerError, RunnerUnavailable, RunnerUnsupported  # noqa: F401

# backend name -> (module, class); the module imports its runtime lazily.
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("edgeopt.backends.torch_eager", "TorchRunner"),
    "torchscript": ("edgeopt.backends.torchscript", "TorchScriptRunner"),
    "torch_compile": ("edgeopt.backends.torch_compile", "TorchCompileRunner"),
    "onnxruntime": ("edgeopt.backends.onnxruntime", "OnnxRuntimeRunner"),
    "opencv": ("edgeopt.backends.opencv", "OpenCVRunner"),
    "opencv_classic": ("edgeopt.backends.opencv", "OpenCVClassicRunner"),
    "openvino": ("edgeopt.backends.openvino", "OpenVINORunner"),
    "executorch": ("edgeopt.backends.executorch", "ExecuTorchRunner"),
}


def runner_class(name: str) -> type[Runner]:
    try:
        module, cls = BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), cls)


def backends_for(fmt: str) -> list[str]:
    """Backends that accept artifacts of this format."""
    return [name for name in BACKENDS if fmt in runner_class(name).formats]
