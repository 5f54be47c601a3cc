"""ONNX Runtime, CPU execution provider, intra-op threads set explicitly, one inter-op thread."""
from __future__ import annotations

import numpy as np

from edgeopt.backends.base import Runner, RunnerUnsupported, runtime_error


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    formats = ("onnx",)

    def load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        for key, value in self.artifact.meta.get("onnxruntime_session_config", {}).items():
            opts.add_session_config_entry(key, value)  # a recipe's own, e.g. ort_w4a8's weight folding
        try:
            self.session = ort.InferenceSession(str(self.artifact.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            if "NOT_IMPLEMENTED" in str(exc):  # e.g. "Could not find an implementation for ConvInteger(10)"
                raise RunnerUnsupported(f"onnxruntime {ort.__version__} CPU: {str(exc).strip()}") from exc
            raise
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: batch})[0].astype(np.float32, copy=False)
        except Exception as exc:
            raise runtime_error(self, exc) from exc

    def close(self) -> None:
        self.session = None

    @staticmethod
    def describe() -> dict:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}
