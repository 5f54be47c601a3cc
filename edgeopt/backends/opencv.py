"""OpenCV DNN on the ONNX file, CPU target.

``engine`` picks OpenCV 5's DNN engine: ``"new"`` (the 5.x graph engine), ``"classic"`` (the 4.x
engine) or ``"auto"`` (new, falling back to classic when the new parser rejects the file).  Backend
``opencv`` is ``"auto"``, what ``cv2.dnn.readNetFromONNX`` does when not told; backend
``opencv_classic`` forces the classic engine.  They differ in what they run (OpenCV 5.0, measured):
the new engine runs FP16 ONNX but not QDQ INT8; the classic engine runs QDQ INT8 but rejects FP16.
On OpenCV 4.x, which has one engine, both are that engine.
"""
from __future__ import annotations

import numpy as np

from edgeopt.backends.base import Runner, runtime_error

ENGINES = {"auto": "ENGINE_AUTO", "new": "ENGINE_NEW", "classic": "ENGINE_CLASSIC"}


class OpenCVRunner(Runner):
    name = "opencv"
    formats = ("onnx",)

    def __init__(self, artifact, threads: int = 1, engine: str = "auto"):
        super().__init__(artifact, threads)
        if engine not in ENGINES:
            raise ValueError(f"unknown OpenCV DNN engine {engine!r}; expected one of {', '.join(ENGINES)}")
        self.engine = engine

    def load(self) -> None:
        import cv2

        cv2.setNumThreads(self.threads)
        engine = getattr(cv2.dnn, ENGINES[self.engine], None)
        if engine is None:  # OpenCV 4.x: a single engine
            self.net = cv2.dnn.readNetFromONNX(str(self.artifact.path))
        else:
            self.net = cv2.dnn.readNetFromONNX(str(self.artifact.path), engine)
        if self.engine == "classic" or engine is None:  # the new engine has only its own CPU path
            self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            self.net.setInput(np.ascontiguousarray(batch))
            out = self.net.forward()
        except Exception as exc:
            raise runtime_error(self, exc) from exc
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)

    def close(self) -> None:
        self.net = None

    @staticmethod
    def describe() -> dict:
        import cv2

        return {"opencv": cv2.__version__}


class OpenCVClassicRunner(OpenCVRunner):
    name = "opencv_classic"

    def __init__(self, artifact, threads: int = 1):
        super().__init__(artifact, threads, engine="classic")
