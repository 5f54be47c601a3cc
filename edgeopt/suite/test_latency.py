"""Batch-1 latency, recorded with pytest-benchmark; the run's JSON also carries every other figure of the case.

A model's cases on one backend are timed together in interleaved rounds (:mod:`edgeopt.latency`, the
``latency_panel`` fixture, each panel scaled by the model's ONNX Runtime FP32 anchor), so that drift does not rank
identical kernels apart; their drift-normalised rounds become this case's
pytest-benchmark rounds, and ``--benchmark-compare`` compares them with the baseline of this CPU kind.  Warm-up,
minimum rounds and time per case are pytest-benchmark's options (this repository sets them in pytest.ini).  Under ``--benchmark-disable`` each case is loaded and
run once.  The end of the run prints every median with its speed-up over ONNX Runtime FP32 and PyTorch eager FP32,
and the fastest case within budget per model and runtime.
On a CPU kind with no stored baseline, ``--edgeopt-compare-relative`` compares ratios to the model's ONNX Runtime FP32 case
with another kind's run instead (:mod:`edgeopt.suite.relative`).  With ``--edgeopt-gate-base REF`` each case is judged by the A/B gate against REF instead (:mod:`edgeopt.suite.gate`).
"""
import pytest

from edgeopt.latency import record
from edgeopt.report.results import budget_verdict
from edgeopt.suite.gate import assert_verdict


@pytest.mark.concern("latency")
def test_latency(bench, benchmark, latency_medians, latency_panel, latency_gate, latency_relative):
    benchmark.group = bench.case.model
    if (verdict := latency_gate(bench.case)) is not None:  # --edgeopt-gate-base: A/B against the base instead
        benchmark.skipped = True  # judged by the gate, not timed by pytest-benchmark (nor saved as a baseline)
        assert_verdict(verdict)
        return
    if benchmark.disabled:
        with bench.runner() as runner:
            benchmark(runner.run, bench.sample_input())  # disabled: one call
        return
    timed = latency_panel(bench.case)
    benchmark.extra_info.update(case=bench.case.id, threads=bench.wb.threads, first_run_ms=timed.first_run_s * 1e3,
                                median_ci_ms=[t * 1e3 for t in timed.ci_s], calls_per_round=timed.calls_per_round,
                                raw_median_ms=1e3 * sorted(timed.raw_s)[len(timed.raw_s) // 2],
                                load_medians_ms=[t * 1e3 for t in timed.load_medians_s], **bench.summary())
    record(benchmark, timed)
    # a pick needs its accuracy measured and a real speed (not a simulated low-bit model's float one)
    pickable = "top1_drop" in benchmark.extra_info and not benchmark.extra_info.get("simulated")
    latency_medians[bench.case] = (timed.median_s, budget_verdict(benchmark.extra_info) if pickable else None)
    if (slower := latency_relative(bench.case, timed.median_s)) is not None:  # --edgeopt-compare-relative
        pytest.fail(slower, pytrace=False)
