"""Same-runner A/B latency gate: two worker processes (base, head), timed in interleaved rounds.

Each side is its own process (:mod:`edgeopt.gate.worker`) running its own code (a worktree of the base commit, or
the head's checkout), its own artifacts and, if given, its own interpreter (a tox env with other runtime versions).
For each case both sides load and warm up, then take turns in rounds of a few milliseconds, in random order per
round, so that both meet the same phases of the machine's drift; :mod:`edgeopt.gate.stats` decides from the
per-round ratios.  Nothing here shares a process with a runtime, so a base and a head that cannot (two versions of
ONNX Runtime) are timed the same way as two commits.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.gate import stats

WORKER = Path(__file__).with_name("worker.py")


class GateError(RuntimeError):
    """A side could not start or answer; the message says which and where its log is."""


@dataclass(frozen=True)
class Side:
    """Where one side's code, interpreter and artifacts come from."""
    label: str
    code: Path | None = None       # directory holding the ``edgeopt`` package to use; None: this process's
    python: str = sys.executable
    cache: Path | None = None      # EDGEOPT_CACHE of the side (its artifacts); None: the default
    slowdown: dict = field(default_factory=dict)  # backend -> fraction, for measuring the gate itself
    models_from: tuple[str, ...] = ()  # modules that register user models (imported from the working directory)


@dataclass(frozen=True)
class Timing:
    seconds_per_case: float = 1.6   # both sides together; plain pytest-benchmark spends ~1 s per case
    round_seconds: float = 0.010    # one side's share of a round: short against the drift's phases of seconds
    warmup_seconds: float = 0.2
    min_rounds: int = 20
    max_rounds: int = 400
    reference_calls: int = 3
    loads: int = 6                  # loads of each case per side, the rounds split between them


def _no_aslr():
    """A function for the child to call before exec: no address-space randomisation (LLVM's benchmarking advice).

    Measured here (docs/gate.md): with a random layout per process the unchanged FP32 torch case's gate ratio had
    sd 0.017 across runs, as each process pair kept its own steady offset; with a fixed layout, 0.006.  Resolved
    in the parent, since a forked child of a threaded process must not load libraries.  None off Linux.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        personality = ctypes.CDLL(None, use_errno=True).personality
    except (OSError, AttributeError):
        return None
    return lambda: personality(0x0040000)  # ADDR_NO_RANDOMIZE, as `setarch -R`


def _layout_env(env: dict[str, str], argv: list[str], block: int = 4096) -> dict[str, str]:
    """``env`` padded so that argv + environment fill a whole number of ``block`` bytes on the new process's stack.

    The stack starts below them, so two sides whose paths differ in length (a worktree, a tox env) get the same
    stack alignment, which otherwise moves a process's speed by itself (Mytkowicz et al., ASPLOS 2009).
    """
    env = {k: v for k, v in env.items() if k != "EDGEOPT_GATE_PAD"}
    used = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in env.items()) + sum(len(a.encode()) + 1 for a in argv)
    used += len("EDGEOPT_GATE_PAD=".encode()) + 1 + len(argv[0].encode()) + 1  # the pad itself; exec's file name
    return {**env, "EDGEOPT_GATE_PAD": "x" * (-used % block)}


class Worker:
    def __init__(self, side: Side, log_dir: Path, threads: int, data_dir: str | None, cwd: Path | None = None):
        env = dict(os.environ, EDGEOPT_GATE_THREADS=str(threads), EDGEOPT_GATE_SLOWDOWN=json.dumps(side.slowdown),
                   CI="1", PYTHONHASHSEED="0")  # no progress bars; the same dict layouts on both sides
        if hasattr(os, "sched_getaffinity") and threads == 1:
            # Measured here: two unpinned sides differed by 7.6% on a pure-Python reference workload (vCPUs of a
            # shared VM run at different speeds); on one core they take turns on the same hardware.
            env["EDGEOPT_GATE_CPU"] = str(max(os.sched_getaffinity(0)))
        if data_dir:
            env["EDGEOPT_DATA"] = str(data_dir)
        env["EDGEOPT_GATE_MODELS"] = ",".join(side.models_from)
        if side.cache:
            env["EDGEOPT_CACHE"] = str(side.cache)
        if side.code:
            env["PYTHONPATH"] = os.pathsep.join([str(side.code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # malloc's large blocks on transparent huge pages: where 4 KiB pages fall in the caches changed from one load
        # to the next (measured: the within-load spread of FP32 torch halved); a no-op where THP is off.
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), "glibc.malloc.hugetlb=1"]))
        argv = [side.python, str(WORKER)]
        env = _layout_env(env, argv)
        log_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^\w.-]+", "_", side.label)  # a label may hold a path
        self.side, self.log = side, log_dir / f"worker-{safe}.log"
        self._log_fh = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._log_fh, text=True, bufsize=1, env=env,
                                         cwd=str(cwd or Path.cwd()),
                                         preexec_fn=_no_aslr())
        except OSError as exc:
            raise GateError(f"{side.label}: cannot start {side.python}: {exc}") from None

    def ask(self, **cmd) -> dict:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise GateError(f"{self.side.label} worker ended unexpectedly (exit {self.proc.poll()}); see {self.log}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
            except GateError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log_fh.close()


def _alternate(workers: list[Worker], rng: random.Random, order: tuple[int, ...] | None = None, **cmd) -> list[dict]:
    if order is None:
        order = tuple(rng.sample(range(len(workers)), len(workers)))
    answers: list[dict] = [{}] * len(workers)
    for i in order:
        answers[i] = workers[i].ask(**cmd)
    return answers


def _load(workers: list[Worker], case: tuple[str, str, str], load_s: list[float]) -> list[dict]:
    model, variant, backend = case
    loaded = []
    for i, w in enumerate(workers):
        t0 = time.perf_counter()
        loaded.append(w.ask(op="load", model=model, variant=variant, backend=backend))
        load_s[i] += time.perf_counter() - t0
    return loaded


def _unload(workers: list[Worker], loaded: list[dict], case_id: str) -> None:
    for w, a in zip(workers, loaded):
        if not a.get("error"):
            w.ask(op="unload", case=case_id)


def _warm(workers: list[Worker], rng: random.Random, case_id: str, seconds: float) -> list[list[float]]:
    warm: list[list[float]] = [[], []]
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(warm[0]) < 5:
        for i, a in enumerate(_alternate(workers, rng, op="time", case=case_id, calls=1)):
            warm[i] += a["times"]
    return warm


def time_case(workers: list[Worker], case: tuple[str, str, str], timing: Timing, rng: random.Random,
              plain: bool = False) -> dict:
    """Interleaved rounds of one case on both sides; raw per-call times of every round are kept.

    The rounds are split over ``timing.loads`` loads of the case per side: where a load puts the runtime's
    buffers shifts its speed by a steady 2-4% now and then (docs/gate.md), and rounds paired within one load
    would read that as a real difference; averaged over several loads it shrinks.
    """
    case_id = "-".join(case)
    load_s = [0.0, 0.0]
    loaded = _load(workers, case, load_s)
    errors = [a.get("error") for a in loaded]
    if any(errors):
        _unload(workers, loaded, case_id)
        return {"case": case_id, "errors": dict(zip(("base", "head"), errors))}
    try:
        warm = _warm(workers, rng, case_id, timing.warmup_seconds)
        call_s = max(sorted(w)[len(w) // 2] for w in warm)
        calls = max(1, min(1000, round(timing.round_seconds / call_s)))
        rounds = int(timing.seconds_per_case / (2 * calls * call_s + 1e-4))
        pairs = -(-max(timing.min_rounds, min(timing.max_rounds, rounds)) // 2)
        samples: list[list[list[float]]] = [[], []]
        reference: list[list[float]] = [[], []]
        first: list[int] = []
        for segment in range(timing.loads):
            if segment:
                _unload(workers, loaded, case_id)
                loaded = _load(workers, case, load_s)
                if any(a.get("error") for a in loaded):
                    raise GateError(f"{case_id}: a reload failed: {[a.get('error') for a in loaded]}")
                _warm(workers, rng, case_id, timing.warmup_seconds / 4)
            for _ in range(pairs * segment // timing.loads, pairs * (segment + 1) // timing.loads):
                # Rounds in pairs, base first in one and head first in the other: the side that runs second was
                # measured 1-7% slower here (the other side's calls have just evicted its caches), and a random
                # order left that imbalance in the median.  A balanced pair cancels it; stats.compare tests pairs.
                for order in rng.sample([(0, 1), (1, 0)], 2):
                    for i, a in enumerate(_alternate(workers, rng, order, op="time", case=case_id, calls=calls)):
                        samples[i].append(a["times"])
                    for i, a in enumerate(_alternate(workers, rng, order, op="reference",
                                                     calls=timing.reference_calls)):
                        reference[i].append(a["times"])
                    first.append(order[0])
        out = {"case": case_id, "calls_per_round": calls, "load_s": load_s, "loads": timing.loads,
               "first": [("base", "head")[f] for f in first],
               "samples_s": {"base": samples[0], "head": samples[1]},
               "reference_ratio": float(stats.round_medians(reference[1]).mean()
                                        / stats.round_medians(reference[0]).mean())}
        if plain:
            out["plain_s"] = {label: _plain_run(w, case_id) for label, w in zip(("base", "head"), workers)}
        return out
    finally:
        _unload(workers, loaded, case_id)


def _plain_run(worker: Worker, case_id: str, warmup: int = 10, min_rounds: int = 30, max_time: float = 1.0):
    """One side timed alone the way this repository's pytest.ini has pytest-benchmark time a case."""
    worker.ask(op="time", case=case_id, calls=warmup)
    times: list[float] = []
    while len(times) < min_rounds or sum(times) < max_time:
        times += worker.ask(op="time", case=case_id, calls=10)["times"]
    return times


def run_gate(base: Side, head: Side, cases: list[tuple[str, str, str]], settings: stats.GateSettings,
             timing: Timing = Timing(), threads: int = 1, data_dir: str | None = None, log_dir: Path = Path("."),
             seed: int = 0, plain: bool = False, progress=None, workers: list[Worker] | None = None) -> dict:
    """Times every case on both sides and decides; returns the verdict (JSON-serialisable, raw samples included)."""
    rng = random.Random(seed)
    own = workers is None
    workers = workers or [Worker(base, log_dir, threads, data_dir), Worker(head, log_dir, threads, data_dir)]
    start = time.perf_counter()
    try:
        sides = [w.ask(op="describe") for w in workers]
        timed = [time_case(workers, c, timing, rng, plain) for c in (progress(cases) if progress else cases)]
    finally:
        if own:
            for w in workers:
                w.close()
    compared = [t for t in timed if "errors" not in t]
    results = [{**t, **stats.compare(t["samples_s"]["base"], t["samples_s"]["head"], settings, seed)}
               for t in compared]
    stats.decide(results, settings)
    for t in timed:
        if "errors" in t:
            base_err, head_err = t["errors"]["base"], t["errors"]["head"]
            t["verdict"] = "unavailable" if base_err and head_err else ("broken" if head_err else "new")
            results.append(t)
    return {"base": {"label": base.label, **sides[0]}, "head": {"label": head.label, **sides[1]},
            "settings": {**settings.__dict__, **timing.__dict__, "threads": threads, "seed": seed},
            "wall_s": time.perf_counter() - start,
            "regressions": sum(r["verdict"] in (stats.SLOWER, "broken") for r in results),
            "speedups": sum(r["verdict"] == stats.FASTER for r in results), "cases": results}
