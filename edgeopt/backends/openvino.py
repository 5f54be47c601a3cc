"""OpenVINO on the CPU plugin: the suite's ONNX files (FP32, FP16, QDQ INT8, NNCF's INT8).

Threads are pinned like the other runtimes (``INFERENCE_NUM_THREADS``, one stream, the latency hint), and the
inference precision is pinned to f32: on a CPU with AVX-512 BF16 (Zen 4, Sapphire Rapids) the plugin would
otherwise run an "FP32" model in bf16 and call it FP32.  INT8 layers of a QDQ or NNCF model still run in INT8.
"""
from __future__ import annotations

import numpy as np

from edgeopt.backends.base import Runner, RunnerUnsupported, runtime_error


class OpenVINORunner(Runner):
    name = "openvino"
    formats = ("onnx",)

    def load(self) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32", "ENABLE_HYPER_THREADING": False}
        try:
            model = core.read_model(str(self.artifact.path))
        except RuntimeError as exc:  # the ONNX frontend lists the operators it has no translator for
            if "OpConversionFailure" in str(exc) or "No conversion rule" in str(exc):
                raise RunnerUnsupported(f"openvino {_version()}: {_reason(exc)}") from exc
            raise
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            out = self.request.infer([np.ascontiguousarray(batch)])
        except Exception as exc:
            raise runtime_error(self, exc) from exc
        return np.asarray(out[self.compiled.output(0)], dtype=np.float32).reshape(len(batch), -1)

    def close(self) -> None:
        self.request = self.compiled = None

    @staticmethod
    def describe() -> dict:
        """Also loads the CPU plugin (a runtime cost the memory probe must not charge to the model)."""
        import openvino as ov

        return {"openvino": _version(), "openvino_cpu": ov.Core().get_property("CPU", "FULL_DEVICE_NAME")}


def _version() -> str:
    from importlib import metadata

    return metadata.version("openvino")  # ov.__version__ carries the build hash and branch


def _reason(exc: BaseException) -> str:
    """The frontend's summary ("-- No conversion rule found for operations: com.microsoft.QGemm"), one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = [line.lstrip("- ") for line in lines if line.startswith("-- ") and ":" in line and "with a message" not in line]
    return "; ".join(summary) or (lines[-1] if lines else type(exc).__name__)
