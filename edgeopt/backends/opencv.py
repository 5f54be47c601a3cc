"""OpenCV DNN on the ONNX file, CPU target.

``engine`` picks OpenCV 5's DNN engine: ``"new"`` (the 5.x graph engine), ``"classic"`` (the 4.x
engine) or ``"auto"`` (new, falling back to classic when the new parser rejects the file).  Backend
``opencv`` is ``"auto"``, what ``cv2.dnn.readNetFromONNX`` does when not told; backend
``opencv_classic`` forces the classic engine.  They differ in what they run (OpenCV 5.0, measured):
the new engine runs FP16 ONNX but not QDQ INT8; the classic engine runs QDQ INT8 but rejects FP16.
On OpenCV 4.x, which has one engine, both are that engine; OpenCV 5.1 removed the classic engine, so there
``opencv_classic`` is unavailable (a skip with the reason, never the new engine under the classic name).
"""
from __future__ import annotations

import numpy as np

from edgeopt.backends.base import Runner, RunnerUnavailable, runtime_error

#: cv2.dnn names of each engine, newest first: OpenCV 5.1 renamed the new engine ENGINE_OPENCV and removed the classic.
ENGINES = {"auto": ("ENGINE_AUTO",), "new": ("ENGINE_NEW", "ENGINE_OPENCV"), "classic": ("ENGINE_CLASSIC",)}


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
        engine = next((getattr(cv2.dnn, n) for n in ENGINES[self.engine] if hasattr(cv2.dnn, n)), None)
        if engine is None and hasattr(cv2.dnn, "ENGINE_AUTO"):  # an OpenCV 5 without this engine
            offered = sorted(n for n in dir(cv2.dnn) if n.startswith("ENGINE_"))
            raise RunnerUnavailable(f"OpenCV {cv2.__version__} has no {self.engine} DNN engine (cv2.dnn offers "
                                    f"{', '.join(offered)}): {self.name} cannot run on this OpenCV")
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
