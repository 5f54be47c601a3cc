"""PyTorch eager: rebuilds the network from the model's code and loads the state-dict artifact (weights only)."""
from __future__ import annotations

import numpy as np
import torch

from edgeopt.backends.base import Runner, runtime_error


class TorchRunner(Runner):
    name = "torch"
    formats = ("torch",)

    def load(self) -> None:
        torch.set_num_threads(self.threads)
        self.module = self.artifact.load_module()

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(batch)).float().numpy()
        except Exception as exc:
            raise runtime_error(self, exc) from exc

    @staticmethod
    def describe() -> dict:
        return {"torch": torch.__version__}
