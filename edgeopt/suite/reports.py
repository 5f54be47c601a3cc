"""The suite's terminal reports: the latency table and the capability matrix (accuracy outcome per case)."""
from __future__ import annotations

import pytest


def _fp32_on(backend: str) -> str:
    return {"torch": "fp32", "torchscript": "torchscript"}.get(backend, "onnx_fp32")


def _speedups(by_key: dict, model: str, t: float) -> str:
    """The "vs ort fp32" and "vs eager" cells: the model's reference medians of this run over ``t``."""
    ort, eager = by_key.get((model, "onnx_fp32", "onnxruntime")), by_key.get((model, "fp32", "torch"))
    return f"{(f'{ort / t:.2f}x' if ort else '-'):>13}{(f'{eager / t:.2f}x' if eager else '-'):>10}"


def latency_table(tr, medians: dict) -> None:
    """``medians``: Case -> (median seconds of this run, budget verdict or None where accuracy was not measured)."""
    by_key = {(c.model, c.variant, c.backend): t for c, (t, _) in medians.items()}
    tr.section("edgeopt latency (batch 1, median) vs ONNX Runtime FP32 and PyTorch eager FP32")
    tr.write_line(f"{'case':<52}{'median ms':>11}{'vs ort fp32':>13}{'vs eager':>10}  flag")
    for (model, variant, backend), t in sorted(by_key.items()):
        same = by_key.get((model, _fp32_on(backend), backend))
        flag = "SLOWER than FP32 on this runtime" if same is not None and t > same * 1.05 else ""
        tr.write_line(f"{model + '-' + variant + '-' + backend:<52}{t * 1e3:>11.3f}{_speedups(by_key, model, t)}  {flag}")


class CapabilityMatrix:
    """Outcome of each backend case's accuracy test.  Registered in the controlling process, which under xdist
    receives every worker's reports; a report names its case and concern (see plugin.pytest_runtest_makereport)."""

    def __init__(self):
        self.outcomes: dict[tuple[str, str], str] = {}
        self.ran = 0  # suite cases that measured something (passed, failed or xfailed)
        self.skips: dict[str, int] = {}  # skip reason -> suite cases skipped with it

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "edgeopt_concern", None) and (report.when == "call" or report.outcome != "passed"):
            if report.skipped and not hasattr(report, "wasxfail"):
                reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
                reason = reason.removeprefix("Skipped: ")
                self.skips[reason] = self.skips.get(reason, 0) + 1
            elif report.when == "call" or report.failed:
                self.ran += 1
        if getattr(report, "edgeopt_concern", None) != "accuracy" or not getattr(report, "edgeopt_backend", None):
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            status = "xfail" if hasattr(report, "wasxfail") and report.skipped else report.outcome
            status = {"passed": "ok", "failed": "FAIL", "skipped": "skip"}.get(status, status)
            self.outcomes[(report.edgeopt_model_variant, report.edgeopt_backend)] = status

    def write(self, tr) -> None:
        if not self.outcomes:
            return
        rows = sorted({mv for mv, _ in self.outcomes})
        cols = sorted({b for _, b in self.outcomes})
        width = max(len(r) for r in rows) + 2
        cell = max(len(c) for c in cols) + 2  # backend names never run together
        tr.section("edgeopt capability matrix (accuracy test outcome per model-variant x backend)")
        tr.write_line(" " * width + "".join(f"{c:>{cell}}" for c in cols))
        for r in rows:
            tr.write_line(f"{r:<{width}}" + "".join(f"{self.outcomes.get((r, c), '-'):>{cell}}" for c in cols))


def measured_nothing(matrix: CapabilityMatrix) -> str | None:
    """Why a run whose every suite case skipped measured nothing (a green run of skips must not pass a gate)."""
    if matrix.ran or not matrix.skips:
        return None
    reason, n = max(matrix.skips.items(), key=lambda kv: kv[1])
    return (f"edgeopt: all {sum(matrix.skips.values())} suite cases skipped, nothing was measured; "
            f"most often ({n}x): {reason}")


def fastest_within_budget(tr, medians: dict) -> None:
    """Per model and runtime, the fastest case whose every measured figure keeps its budget."""
    by_key = {(c.model, c.variant, c.backend): t for c, (t, _) in medians.items()}
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for c, (t, verdict) in medians.items():
        if verdict == "ok" and t < best.get((c.model, c.backend), (float("inf"), ""))[0]:
            best[(c.model, c.backend)] = (t, c.variant)
    if not best:
        return
    tr.section("edgeopt fastest variant within budget per model and runtime (accuracy measured, not simulated)")
    tr.write_line(f"{'model':<22}{'runtime':<16}{'variant':<36}{'median ms':>10}{'vs ort fp32':>13}{'vs eager':>10}")
    for (model, backend), (t, variant) in sorted(best.items()):
        tr.write_line(f"{model:<22}{backend:<16}{variant:<36}{t * 1e3:>10.3f}{_speedups(by_key, model, t)}")
