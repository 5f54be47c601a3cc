"""ExecuTorch's runtime (its Python bindings) on a ``.pte`` program, the XNNPACK delegate's threadpool pinned.

The program is batch 1 (see edgeopt/recipes/executorch.py), so a batch runs image by image.
"""
from __future__ import annotations

import numpy as np

from edgeopt.backends.base import Runner, runtime_error


class ExecuTorchRunner(Runner):
    name = "executorch"
    formats = ("pte",)

    def load(self) -> None:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._unsafe_reset_threadpool(self.threads)  # XNNPACK's pool; "unsafe" only while a method runs
        self.threadpool = portable_lib._threadpool_get_thread_count()
        self.method = Runtime.get().load_program(self.artifact.path).load_method("forward")

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        try:
            outs = [self.method.execute([torch.from_numpy(np.ascontiguousarray(batch[i:i + 1]))])[0]
                    for i in range(len(batch))]
        except Exception as exc:
            raise runtime_error(self, exc) from exc
        return np.concatenate([out.numpy() for out in outs]).astype(np.float32, copy=False).reshape(len(batch), -1)

    def close(self) -> None:
        self.method = None

    @staticmethod
    def describe() -> dict:
        from importlib import metadata

        from executorch.runtime import Runtime

        Runtime.get()  # loads the runtime library (the memory probe's baseline)
        return {"executorch": metadata.version("executorch")}
