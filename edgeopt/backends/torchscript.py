"""TorchScript (deprecated upstream; contained here): ``torch.jit.load`` needs no Python class, no pickle."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from edgeopt.backends.base import Runner, runtime_error


class TorchScriptRunner(Runner):
    name = "torchscript"
    formats = ("torchscript",)

    def load(self) -> None:
        torch.set_num_threads(self.threads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
            self.module = torch.jit.load(str(self.artifact.path), map_location="cpu").eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(batch)).float().numpy()
        except Exception as exc:
            raise runtime_error(self, exc) from exc

    @staticmethod
    def describe() -> dict:
        return {"torch": torch.__version__}
