"""The gate's statistics: per-round ratios of interleaved timings, a paired rank test, Holm across cases.

Each round times base and head back to back, so the machine's drift, which comes in phases of seconds, hits both
sides of a round alike and cancels in the round's ratio.  Rounds come in balanced pairs, base first in one and head
first in the other, since the side that runs second is slower; a pair's mean log ratio is the unit of the test.
A case is declared slower only when both hold:

* the effect is large enough to matter: the median of the per-pair ratios head/base exceeds ``1 + threshold``;
* it is not noise: Wilcoxon's signed-rank test on the per-pair log ratios (the paired form of the Mann-Whitney U
  test asv uses; pairing is what removes the drift) rejects "no slowdown" at ``alpha`` after Holm's step-down
  correction over every case of the run, so ``alpha`` bounds the chance of any false alarm in a whole gate run.

Speed-ups are decided the same way in the other direction.  The interval reported with each ratio is a bootstrap
interval (scipy) on the median per-pair ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SLOWER, FASTER, SAME = "slower", "faster", "same"


@dataclass(frozen=True)
class GateSettings:
    threshold: float = 0.03  # smallest change reported; the measured rates are in README.md
    alpha: float = 0.01      # family-wise error rate of one gate run (all cases together)
    confidence: float = 0.99


def round_medians(rounds: list[list[float]]) -> np.ndarray:
    """One figure per round: the median of its calls (an interrupt inside a round does not move it)."""
    return np.array([float(np.median(r)) for r in rounds])


def compare(base_rounds: list[list[float]], head_rounds: list[list[float]], settings: GateSettings,
            seed: int = 0) -> dict:
    """Ratio head/base with its interval and one-sided p-values of one case (not yet corrected for many cases)."""
    base, head = round_medians(base_rounds), round_medians(head_rounds)
    if len(base) != len(head) or len(base) < 12 or len(base) % 2:
        raise ValueError(f"need the same even number (>= 12) of rounds on both sides, got {len(base)} and {len(head)}")
    logs = np.log(head / base).reshape(-1, 2).mean(axis=1)  # one figure per balanced pair of rounds
    if np.all(logs == logs[0]):  # identical rounds (a test double): no spread, the sign is certain
        p_slower = 0.0 if logs[0] > 0 else 1.0
        p_faster = 0.0 if logs[0] < 0 else 1.0
        low = high = float(logs[0])
    else:
        p_slower = float(stats.wilcoxon(logs, alternative="greater").pvalue)
        p_faster = float(stats.wilcoxon(logs, alternative="less").pvalue)
        ci = stats.bootstrap((logs,), np.median, confidence_level=settings.confidence, method="percentile",
                             n_resamples=2000, rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {"ratio": math.exp(float(np.median(logs))), "ci": [math.exp(low), math.exp(high)],
            "p_slower": p_slower, "p_faster": p_faster, "rounds": int(len(base)), "pairs": int(len(logs)),
            "base_ms": 1e3 * float(np.median(base)), "head_ms": 1e3 * float(np.median(head))}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control, valid under any dependence)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def decide(results: list[dict], settings: GateSettings) -> list[dict]:
    """Adds ``p_slower_holm``, ``p_faster_holm`` and ``verdict`` to each case's result (in place) and returns them."""
    for side in ("slower", "faster"):
        for r, p in zip(results, holm([r[f"p_{side}"] for r in results])):
            r[f"p_{side}_holm"] = p
    for r in results:
        if r["ratio"] > 1 + settings.threshold and r["p_slower_holm"] < settings.alpha:
            r["verdict"] = SLOWER
        elif r["ratio"] < 1 / (1 + settings.threshold) and r["p_faster_holm"] < settings.alpha:
            r["verdict"] = FASTER
        else:
            r["verdict"] = SAME
    return results


def plain_decision(base_times: list[float], head_times: list[float], fail_at: float) -> bool:
    """What ``--benchmark-compare-fail=median:X%`` decides from two sequential pytest-benchmark-style runs."""
    return float(np.median(head_times)) > float(np.median(base_times)) * (1 + fail_at)
