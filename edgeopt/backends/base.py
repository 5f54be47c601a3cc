"""The runner protocol, after Polygraphy: load in ``__enter__``, ``run(batch) -> logits``, free in ``__exit__``.

A runner never times itself and sets its runtime's thread count explicitly.  Errors from the
runtime are re-raised as :class:`RunnerError` carrying the runtime's own message.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from edgeopt.artifact import Artifact


class RunnerError(RuntimeError):
    """The runtime could not load or run an artifact; the message is the runtime's reason."""


class RunnerUnsupported(RunnerError):
    """The runtime itself reports that it does not implement something the artifact uses (a capability
    gap of this runtime version, e.g. ConvInteger on older ONNX Runtime CPU builds), not a defect."""


class RunnerUnavailable(RunnerError):
    """This backend does not exist in the installed runtime version at all (e.g. an engine a release removed)."""


class Runner:
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]

    def __init__(self, artifact: Artifact, threads: int = 1):
        if artifact.format not in self.formats:
            raise RunnerError(f"{self.name} runs {'/'.join(self.formats)} artifacts, not {artifact.format}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.artifact = artifact
        self.threads = threads

    def load(self) -> None:
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW batch -> float32 logits (N, classes)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        try:
            self.load()
        except RunnerError:
            raise
        except Exception as exc:
            raise RunnerError(f"{self.name} could not load {self.artifact.path.name}: {_first_line(exc)}") from exc
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def describe() -> dict:
        """Runtime name and version, for reports and machine info."""
        return {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def runtime_error(runner: Runner, exc: BaseException) -> RunnerError:
    return RunnerError(f"{runner.name} failed running {runner.artifact.id}: {_first_line(exc)}")
