"""``torch.compile`` (Inductor) on a ``torch.export`` program, e.g. a PT2E INT8 model.

Loading never unpickles: ``torch.export.load`` falls back to ``torch.load(weights_only=False)`` for
payloads it cannot read safely, and that fallback is refused here.  Compilation happens on the
first run of each new batch shape, so the first call is slow; the suite reports it as
``first_run_ms`` next to the steady-state latency.
"""
from __future__ import annotations

import contextlib

import torch

from edgeopt.backends.base import RunnerError
from edgeopt.backends.torch_eager import TorchRunner


class UnsafeArtifact(RunnerError):
    """The artifact needs arbitrary code to be unpickled to load."""


@contextlib.contextmanager
def _weights_only_loads():
    """Within the block, ``torch.load`` refuses ``weights_only=False`` (and defaults to True)."""
    real = torch.load

    def guarded(*args, weights_only=None, **kwargs):
        if weights_only is False:
            raise UnsafeArtifact("the torch.export archive holds a pickled payload (torch.load weights_only=False); "
                                 "refusing to unpickle it")
        return real(*args, weights_only=True, **kwargs)

    torch.load = guarded
    try:
        yield
    finally:
        torch.load = real


def load_program(path) -> torch.export.ExportedProgram:
    # PT2E graphs call torch.ops.quantized_decomposed.*, registered by this module (no torchao needed to run).
    import torch.ao.quantization.fx._decomposed  # noqa: F401

    with _weights_only_loads():
        return torch.export.load(str(path))


class TorchCompileRunner(TorchRunner):
    """Runs like PyTorch eager; loading and compiling differ."""

    name = "torch_compile"
    formats = ("torch_export",)

    def load(self) -> None:
        torch.set_num_threads(self.threads)  # before compiling: Inductor's CPU kernels take it at code generation
        self.module = torch.compile(load_program(self.artifact.path).module(), backend="inductor")
