"""Peak resident memory of loading an artifact and running inference, measured in a fresh interpreter.

The probe runs ``python -m edgeopt.memory`` in a new process, so it starts from an empty address
space and imports only the runtime it measures: its peak RSS is what a deployment process running
only this model needs.  ``runtime_rss_mb`` is the resident size after importing the runtime and
before loading the model; ``peak_rss_mb`` is the kernel's high-water mark (``ru_maxrss``) after
loading the artifact and running it ``runs`` times.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgeopt.artifact import Artifact


class MemoryProbeError(RuntimeError):
    """The probe process could not measure; the message carries its reason."""


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status in MB: VmRSS (now) or VmHWM (peak of this process image)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise MemoryProbeError(f"/proc/self/status has no {field}: peak RSS needs Linux")


def _reference(obj) -> str | None:
    """``module:qualname`` of an importable callable, or None."""
    if obj is None:
        return None
    qualname = getattr(obj, "__qualname__", "")
    if not qualname or "<" in qualname:
        raise MemoryProbeError(f"{obj!r} is not importable by name (a lambda or a local function); "
                               "define the model factory at module level to measure its memory")
    return f"{obj.__module__}:{qualname}"


def _resolve(reference: str):
    module, _, qualname = reference.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def peak_rss(artifact: Artifact, backend: str, threads: int, input_shape: tuple[int, ...], runs: int = 3,
             timeout: float = 600) -> dict:
    """Measure ``backend`` loading ``artifact`` and running ``runs`` batches of zeros of ``input_shape``."""
    request = {"model": artifact.model, "variant": artifact.variant, "format": artifact.format,
               "path": str(artifact.path), "factory": _reference(artifact.factory), "backend": backend,
               "threads": threads, "shape": list(input_shape), "runs": runs, "meta": artifact.meta}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([p for p in sys.path if p]))
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeopt.memory", json.dumps(request)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise MemoryProbeError(f"memory probe for {artifact.id} on {backend} timed out after {timeout:.0f}s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise MemoryProbeError(f"memory probe for {artifact.id} on {backend} died "
                               f"(exit {proc.returncode}): {tail[0]}") from None
    if "unsupported" in result:
        from edgeopt.backends import RunnerUnsupported

        raise RunnerUnsupported(result["unsupported"])
    if "error" in result:
        raise MemoryProbeError(f"memory probe for {artifact.id} on {backend} failed: {result['error']}")
    return result


def _probe(request: dict) -> dict:
    from edgeopt.backends import runner_class

    cls = runner_class(request["backend"])
    cls.describe()  # imports the runtime library
    factory = _resolve(request["factory"]) if request["factory"] else None
    artifact = Artifact(request["model"], request["variant"], request["format"], Path(request["path"]), key="",
                        recipe=None, factory=factory, meta=request.get("meta", {}))
    before = _status_mb("VmRSS")
    batch = np.zeros(request["shape"], dtype=np.float32)
    with cls(artifact, threads=request["threads"]) as runner:
        for _ in range(request["runs"]):
            runner.run(batch)
    peak = _status_mb("VmHWM")
    return {"runtime_rss_mb": round(before, 1), "peak_rss_mb": round(peak, 1), "model_rss_mb": round(peak - before, 1)}


if __name__ == "__main__":
    from edgeopt.backends import RunnerUnsupported

    try:
        print(json.dumps(_probe(json.loads(sys.argv[1]))))
    except RunnerUnsupported as exc:
        print(json.dumps({"unsupported": str(exc)}))
    except Exception as exc:  # reported to the parent as data, never as a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
