"""One side of an A/B latency gate: a process that loads cases and times them on command.

Run as a script (``python .../edgeopt/gate/worker.py``) so that the ``edgeopt`` it imports is the one on its
``PYTHONPATH``: a worktree of the base commit, or the head's checkout.  Each side thus times its own runner code,
its own artifacts and (with another interpreter) its own runtime versions; a slowdown anywhere in a side's code
shows.  It uses only the oldest stable API (``Workbench``, ``runner_class``), and nothing of the package's gate.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout; anything else the libraries print
goes to stderr.  Commands: ``load`` (model, variant, backend) -> ``{"ok": true, "call_s": ...}`` or
``{"error": ...}``; ``time`` (case, calls) -> per-call seconds; ``reference`` (calls) -> per-call seconds of a fixed
pure-Python workload; ``slowdown`` (backend -> fraction, for cases loaded next: measuring the gate itself);
``unload``; ``describe``; ``quit``.
"""
from __future__ import annotations

import json
import os
import sys
import time


def _slowdown(run, fraction: float):
    """``run`` slowed by exactly ``fraction`` of each call's own duration (a busy spin, like extra work)."""
    if fraction <= 0:
        return run

    def slowed(x):
        start = time.perf_counter()
        out = run(x)
        until = start + (time.perf_counter() - start) * (1.0 + fraction)
        while time.perf_counter() < until:
            pass
        return out
    return slowed


def _reference_workload() -> int:
    # Fixed interpreter work, no library: tells whether the two sides' processes run at the same speed.
    total = 0
    for i in range(2000):
        total += i * i % 7
    return total


def _aligned(x, boundary: int = 4096):
    """``x`` copied to a page-aligned buffer: where numpy happened to put the input moved a side's latency by ~2%."""
    import numpy as np

    raw = np.empty(x.nbytes + boundary, dtype=np.uint8)
    offset = (-raw.ctypes.data) % boundary
    out = raw[offset:offset + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


def _timed(fn, arg, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(arg)
        out.append(time.perf_counter() - start)
    return out


class Side:
    def __init__(self, data_dir: str | None, threads: int, slowdown: dict[str, float]):
        from edgeopt.workbench import Workbench

        self.wb = Workbench(data_dir=data_dir, threads=threads)
        self.threads, self.slowdown = threads, slowdown
        self.loaded: dict[str, tuple] = {}

    def load(self, model: str, variant: str, backend: str) -> dict:
        from edgeopt.backends import runner_class

        case = f"{model}-{variant}-{backend}"
        runner = runner_class(backend)(self.wb.artifact(model, variant), threads=self.threads).__enter__()
        x = _aligned(self.wb.sample_input(model))
        run = _slowdown(runner.run, self.slowdown.get(backend, self.slowdown.get("*", 0.0)))
        start = time.perf_counter()
        run(x)  # first call: compilation or allocation, never timed
        first = time.perf_counter() - start
        self.loaded[case] = (runner, run, x)
        return {"ok": True, "first_call_s": first, "artifact": str(self.wb.artifact(model, variant).path)}

    def time(self, case: str, calls: int) -> list[float]:
        _, run, x = self.loaded[case]
        return _timed(run, x, calls)

    def unload(self, case: str) -> None:
        runner = self.loaded.pop(case)[0]
        runner.__exit__(None, None, None)


def main() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints cannot corrupt the protocol
    sys.stdout = sys.stderr
    if os.environ.get("EDGEOPT_GATE_CPU"):  # both sides on one core: they never meet a faster or busier other core
        os.sched_setaffinity(0, {int(os.environ["EDGEOPT_GATE_CPU"])})
    sys.path.append(os.getcwd())  # after PYTHONPATH: the side's own edgeopt comes first
    for name in filter(None, os.environ.get("EDGEOPT_GATE_MODELS", "").split(",")):
        __import__(name)  # the user's modules that register models, as `edgeopt --models-from`
    slowdown = json.loads(os.environ.get("EDGEOPT_GATE_SLOWDOWN", "{}"))
    side = Side(os.environ.get("EDGEOPT_DATA") or None, int(os.environ.get("EDGEOPT_GATE_THREADS", "1")), slowdown)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "quit":
                break
            if op == "load":
                answer = side.load(cmd["model"], cmd["variant"], cmd["backend"])
            elif op == "time":
                answer = {"times": side.time(cmd["case"], int(cmd["calls"]))}
            elif op == "reference":
                answer = {"times": _timed(lambda _: _reference_workload(), None, int(cmd["calls"]))}
            elif op == "slowdown":
                side.slowdown = {str(k): float(v) for k, v in cmd["fractions"].items()}
                answer = {"ok": True}
            elif op == "unload":
                side.unload(cmd["case"])
                answer = {"ok": True}
            elif op == "describe":
                import edgeopt
                from edgeopt.pytest_plugin import runtime_versions

                answer = {"python": sys.executable, "edgeopt": os.path.dirname(edgeopt.__file__),
                          "runtimes": runtime_versions(), "pid": os.getpid()}
            else:
                answer = {"error": f"unknown command {op!r}"}
        except Exception as exc:  # reported to the controller, which decides what a failure means
            text = str(exc).strip().splitlines()
            answer = {"error": f"{type(exc).__name__}: {text[0] if text else ''}"}
        protocol.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
