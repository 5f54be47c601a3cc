"""TorchScript (deprecated upstream; contained here): ``torch.jit.load`` needs no Python class, no pickle."""
from __future__ import annotations

import warnings

import torch

from edgeopt.backends.torch_eager import TorchRunner


class TorchScriptRunner(TorchRunner):
    """Runs like PyTorch eager; only loading differs."""

    name = "torchscript"
    formats = ("torchscript",)

    def load(self) -> None:
        torch.set_num_threads(self.threads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
            self.module = torch.jit.load(str(self.artifact.path), map_location="cpu").eval()
