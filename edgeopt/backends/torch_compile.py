"""``torch.compile`` (Inductor) on a ``torch.export`` program, e.g. a PT2E INT8 model.

Compiled with Inductor's ``freezing`` (weights become constants) and, when torchao is installed, its
x86 passes that fold each dequantize -> conv/linear -> quantize chain into one oneDNN INT8 kernel
(weights prepacked).  Without both the Q/DQ pairs ran as separate float ops, no faster than eager FP32;
with them (batch 1, 1 thread) EfficientNet-Lite0 went 13.3 -> 6.0 ms, SimpleCNN 0.45 -> 0.29 ms.

Loading never unpickles: ``torch.export.load`` falls back to ``torch.load(weights_only=False)`` for
payloads it cannot read safely, and that fallback is refused here.  Compilation happens on the
first run of each new batch shape, so the first call is slow; the suite reports it as
``first_run_ms`` next to the steady-state latency.
"""
from __future__ import annotations

import contextlib

import torch
import torch._inductor.config

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


def _register_torchao_int8_passes() -> None:
    """torchao's x86 Inductor passes register on import of its quantizer module; without torchao, nothing to do."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    except ImportError:
        pass


class TorchCompileRunner(TorchRunner):
    """Runs like PyTorch eager; loading and compiling differ."""

    name = "torch_compile"
    formats = ("torch_export",)

    def load(self) -> None:
        torch.set_num_threads(self.threads)  # before compiling: Inductor's CPU kernels take it at code generation
        _register_torchao_int8_passes()
        # Compilation happens at each new batch shape's first run, so freezing stays on while the runner is open
        # (torch.compile's ``options={"freezing": True}`` did not reach the INT8 weight-prepack passes).
        self.module = torch.compile(load_program(self.artifact.path).module(), backend="inductor")
        self._freezing = torch._inductor.config.patch(freezing=True)
        self._freezing.__enter__()

    @staticmethod
    def describe() -> dict:
        from importlib import metadata

        try:
            torchao = metadata.version("torchao")
        except metadata.PackageNotFoundError:
            torchao = "absent"
        return {"torch": torch.__version__, "torchao": torchao}

    def close(self) -> None:
        if getattr(self, "_freezing", None) is not None:
            self._freezing.__exit__(None, None, None)
            self._freezing = None
        super().close()
