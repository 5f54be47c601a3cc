"""A model's latency cases timed together, in interleaved rounds, so that the machine's drift hits them alike.

Timed one after the other, cases meet different phases of a shared VM's drift (25-45%, lasting seconds): in one
run MobileNetV2-CIFAR's INT8 variants that run the same kernels measured medians from 0.945 to 1.581 ms.  Here
every round gives each case one slot of a few milliseconds, in random order, and each round's times are divided by
the round's geometric mean over the cases (then scaled back by the median of those means): a slow phase moves a
whole round, and cancels.  A case's figure is the median of its normalised rounds, with a distribution-free
interval (order statistics of the median).  ``docs/latency-ranking.md`` has the measurement.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PanelTiming:
    seconds_per_case: float = 1.0   # pytest.ini's --benchmark-max-time: the time a case gets either way
    slot_seconds: float = 0.004     # one case's share of a round: short against the drift's phases of seconds
    warmup_calls: int = 10
    min_rounds: int = 30
    max_rounds: int = 1000
    confidence: float = 0.95


@dataclass
class CaseLatency:
    """Per-call seconds of one case: ``rounds_s`` drift-normalised (one figure per round), ``raw_s`` as timed."""
    first_run_s: float = float("nan")
    calls_per_round: int = 0
    rounds_s: list[float] = field(default_factory=list)
    raw_s: list[float] = field(default_factory=list)
    load_medians_s: list[float] = field(default_factory=list)  # one per load (time_reloaded)
    median_s: float = float("nan")
    ci_s: tuple[float, float] = (float("nan"), float("nan"))
    error: BaseException | None = None

    def scaled(self, factor: float) -> "CaseLatency":
        """The figures times ``factor`` (``raw_s`` stays as timed)."""
        return dataclasses.replace(self, rounds_s=[v * factor for v in self.rounds_s], median_s=self.median_s * factor,
                                   ci_s=(self.ci_s[0] * factor, self.ci_s[1] * factor),
                                   load_medians_s=[v * factor for v in self.load_medians_s])


def on_scale(panel: dict, anchor, reference_s: float | None) -> tuple[dict, float | None]:
    """A panel's figures rescaled so that its copy of ``anchor`` reads ``reference_s`` (the anchor's figure in the
    first panel of the same model; None: this is the first, which sets it).  Each panel is normalised only within
    itself, so panels timed one after another meet different phases of the drift; scaling each by a case they all
    time puts them on one scale, and figures of different panels (a speed-up over another backend's case) compare.
    A panel whose anchor did not run is left as timed."""
    a = panel.get(anchor)
    if a is None or a.error is not None or not a.median_s > 0:
        return panel, reference_s
    factor = 1.0 if reference_s is None else reference_s / a.median_s
    return {name: t.scaled(factor) for name, t in panel.items()}, a.median_s * factor


def _slot(run: Callable[[], object], calls: int) -> float:
    """Median per-call seconds of ``calls`` calls."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def median_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free interval of the median from order statistics (binomial with p = 1/2)."""
    n = len(values)
    ordered = np.sort(values)
    low = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    high = max(low, min(n - 1, n - 1 - low))
    return float(ordered[max(0, low - 1)]), float(ordered[high])


def normalise(raw: np.ndarray) -> np.ndarray:
    """Cases x rounds of seconds -> the same with each round divided by its geometric mean over the cases and scaled
    by the median of those means.  A slow phase moves a whole round and cancels; a case's own slowdown moves every
    round's mean by the same factor, so it cancels in the scaling and the other cases keep their figures."""
    logs = np.log(raw)
    if len(raw) < 2:
        return raw.copy()
    drift = logs.mean(axis=0)
    return np.exp(logs - drift + np.median(drift))


def time_panel(cases: dict[str, Callable[[], object]], timing: PanelTiming = PanelTiming(),
               rng: random.Random | None = None) -> dict[str, CaseLatency]:
    """Times every case (a no-argument callable running one inference) in interleaved rounds.

    A case whose call raises is left out from then on and keeps its exception in ``error``; the others are
    normalised over the cases that completed every round."""
    rng = rng or random.Random(0)
    out = {name: CaseLatency() for name in cases}
    live: dict[str, Callable[[], object]] = {}
    for name, run in cases.items():  # first call (compilation, allocation) and warm-up, each case on its own
        try:
            start = time.perf_counter()
            run()
            out[name].first_run_s = time.perf_counter() - start
            call_s = min(_slot(run, 1) for _ in range(timing.warmup_calls))
        except Exception as exc:  # reported by the case's own test, which maps it to skip / xfail / failure
            out[name].error = exc
            continue
        out[name].calls_per_round = max(1, round(timing.slot_seconds / max(call_s, 1e-7)))
        live[name] = run
    if not live:
        return out
    round_s = sum(out[n].calls_per_round * _slot(run, 1) for n, run in live.items())
    rounds = int(timing.seconds_per_case * len(live) / max(round_s, 1e-6))
    rounds = max(timing.min_rounds, min(timing.max_rounds, rounds))
    raw: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(rounds):
        order = list(live)
        rng.shuffle(order)
        for name in order:
            try:
                raw[name].append(_slot(live[name], out[name].calls_per_round))
            except Exception as exc:
                out[name].error = exc
                del live[name]
    complete = [n for n in live if len(raw[n]) == rounds]
    if not complete:
        return out
    for name, values in zip(complete, normalise(np.array([raw[n] for n in complete]))):
        c = out[name]
        c.raw_s, c.rounds_s = raw[name], values.tolist()
        c.median_s = float(np.median(values))
        c.ci_s = median_interval(values, timing.confidence)
    return out


def time_reloaded(open_case: Callable[[str], ContextManager[Callable[[], object]]], names: list[str],
                  timing: PanelTiming = PanelTiming(), rng: random.Random | None = None,
                  loads: int = 1) -> dict[str, CaseLatency]:
    """:func:`time_panel` over ``loads`` fresh loads of every case, one after the other, each with its share of the
    time; a case's figure is the median of its rounds over all loads.  Where a load puts a runtime's buffers moves a
    case by a steady few percent for as long as it stays loaded, so one load per case ranks identical kernels
    apart; loads in a new order each time (after a random-sized allocation) spread that over the figure.
    ``open_case(name)`` is a context manager giving the case's no-argument call; an error opening or running a
    case ends it, kept in ``error``."""
    rng = rng or random.Random(0)
    share = dataclasses.replace(timing, seconds_per_case=timing.seconds_per_case / loads,
                                min_rounds=max(3, -(-timing.min_rounds // loads)),
                                max_rounds=max(3, timing.max_rounds // loads))
    out = {name: CaseLatency() for name in names}
    for _ in range(loads):
        order = [n for n in names if out[n].error is None]
        rng.shuffle(order)
        with contextlib.ExitStack() as stack:
            shift = np.ones(rng.randrange(1, 1 << 16), np.uint8)  # noqa: F841  moves this load's heap addresses
            calls = {}
            for name in order:
                try:
                    calls[name] = stack.enter_context(open_case(name))
                except Exception as exc:  # raised again by that case's own test
                    out[name].error = exc
            for name, t in time_panel(calls, share, rng).items():
                c = out[name]
                c.error = t.error
                if t.error is None:
                    c.first_run_s = c.first_run_s if c.raw_s else t.first_run_s  # the first load's: a cold start
                    c.calls_per_round = t.calls_per_round
                    c.raw_s += t.raw_s
                    c.rounds_s += t.rounds_s
                    c.load_medians_s.append(t.median_s)
    for c in out.values():
        if c.error is None and c.rounds_s:
            values = np.array(c.rounds_s)
            c.median_s = float(np.median(values))
            c.ci_s = median_interval(values, timing.confidence)
    return out


def record(benchmark, timed: CaseLatency) -> None:
    """Hands a case's normalised rounds to pytest-benchmark as its rounds (one call each), so its JSON, table and
    ``--benchmark-compare`` use them.  pytest-benchmark has no public call for samples timed elsewhere."""
    make_stats = getattr(benchmark, "_make_stats", None)
    if make_stats is None or not hasattr(benchmark, "_mode"):
        raise RuntimeError("this pytest-benchmark has no BenchmarkFixture._make_stats; edgeopt needs 5.x")
    benchmark._mode = "edgeopt.latency panel"
    stats = make_stats(1)
    for value in timed.rounds_s:
        stats.update(value)
