"""Batch-1 latency with pytest-benchmark; the run's JSON also carries every other figure of the case.

Warm-up and round counts come from pytest.ini (``--benchmark-warmup``, ``--benchmark-min-rounds``,
``--benchmark-max-time``) so that every case is timed the same way.  Compare against the baseline
stored in the repository with ``pytest benchmarks/ --benchmark-compare``.  The end of the run prints
every median with its speed-up over ONNX Runtime FP32 and PyTorch eager FP32, and flags a variant
that is slower than the FP32 artifact on the same runtime.
"""
import time


def test_latency(bench, benchmark, latency_medians):
    x = bench.sample_input()
    with bench.runner() as runner:
        benchmark.group = bench.case.model
        # The first call is timed on its own: it is where torch.compile compiles (and other runtimes allocate).
        start = time.perf_counter()
        runner.run(x)
        first_run_ms = (time.perf_counter() - start) * 1e3
        benchmark.extra_info.update(case=bench.case.id, threads=bench.wb.threads, first_run_ms=first_run_ms,
                                    **bench.summary())
        benchmark(runner.run, x)
    if benchmark.stats is not None:  # None under --benchmark-disable
        latency_medians[bench.case] = benchmark.stats.stats.median
