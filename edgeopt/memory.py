"""Peak resident memory of loading an artifact and running inference, measured in a fresh child process.

The child is spawned (not forked), so it starts with an empty address space: its peak RSS is what a
deployment process running only this model would need.  ``runtime_rss_mb`` is the resident size
after importing the runtime and before loading the model; ``peak_rss_mb`` is the kernel's high-water
mark (``ru_maxrss``) after loading and running.
"""
from __future__ import annotations

import multiprocessing as mp
import resource

import numpy as np

from edgeopt.artifact import Artifact


def _current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(conn, artifact: Artifact, backend: str, threads: int, shape: tuple[int, ...], runs: int) -> None:
    try:
        from edgeopt.backends import runner_class

        cls = runner_class(backend)
        cls.describe()  # imports the runtime library
        before = _current_rss_mb()
        batch = np.zeros(shape, dtype=np.float32)
        with cls(artifact, threads=threads) as runner:
            for _ in range(runs):
                runner.run(batch)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send({"runtime_rss_mb": round(before, 1), "peak_rss_mb": round(peak, 1)})
    except BaseException as exc:  # report, never hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def peak_rss(artifact: Artifact, backend: str, threads: int, input_shape: tuple[int, ...], runs: int = 3,
             timeout: float = 600) -> dict:
    """Run ``runs`` inferences on a zero batch of ``input_shape`` in a spawned child; return its memory figures."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, artifact, backend, threads, tuple(input_shape), runs))
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise RuntimeError(f"memory probe for {artifact.id} on {backend} timed out after {timeout:.0f}s")
        result = parent.recv()
    except EOFError:
        raise RuntimeError(f"memory probe for {artifact.id} on {backend} died (exit code {proc.exitcode})") from None
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    if "error" in result:
        raise RuntimeError(f"memory probe for {artifact.id} on {backend} failed: {result['error']}")
    return result
