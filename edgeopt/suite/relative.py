"""Latency against another CPU kind's stored run, as ratios to an in-run reference (``--edgeopt-compare-relative``).

Absolute times do not carry from one kind of CPU to another, but the ratio of a case to its model's ONNX Runtime
FP32 case mostly does when both are timed in the same interleaved rounds (the latency panel): a case is flagged
when ``(case / reference now) / (case / reference stored)`` exceeds the ``--benchmark-compare-fail`` median
percentage (default 25%).  Kernels still differ between kinds (VNNI, AMX), so an INT8 case can move for the
CPU's sake: a coarse check for a machine with no baseline of its own; the A/B gate (``edgeopt gate``) is what
CI relies on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

REFERENCE = ("onnx_fp32", "onnxruntime")
DEFAULT_THRESHOLD = 0.25


@dataclass(frozen=True)
class StoredRun:
    path: Path
    kind: str
    medians: dict[str, float]  # case id -> median seconds
    threshold: float

    def check(self, case_id: str, model: str, now_s: float, now_reference_s: float | None) -> str | None:
        """A message when the case's ratio to its reference grew past the threshold, else None."""
        reference_id = f"{model}-{'-'.join(REFERENCE)}"
        stored, stored_ref = self.medians.get(case_id), self.medians.get(reference_id)
        if case_id == reference_id or None in (stored, stored_ref, now_reference_s):
            return None
        change = (now_s / now_reference_s) / (stored / stored_ref)
        if change <= 1 + self.threshold:
            return None
        return (f"{case_id} slower relative to {reference_id}: {now_s / now_reference_s:.3f}x it in this run, "
                f"{stored / stored_ref:.3f}x in {self.kind}/{self.path.name} ({change - 1:+.1%}, limit "
                f"+{self.threshold:.0%})")


def newest_run(root: Path, exclude: str) -> tuple[Path, dict] | None:
    """The newest readable pytest-benchmark run under ``root/<kind>/<machine>/``, of a kind other than ``exclude``."""
    runs = []
    for path in root.glob("*/*/*.json"):
        if path.parent.parent.name == exclude:
            continue
        try:
            data = json.loads(path.read_text())
            runs.append((str(data["datetime"]), path, data))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged file is not a baseline; the others still are
    if not runs:
        return None
    _, path, data = max(runs, key=lambda r: r[0])
    return path, data


def threshold(checks) -> float:
    """The median percentage of ``--benchmark-compare-fail`` (pytest-benchmark's parsed checks), else 25%."""
    for check in checks or ():
        if getattr(check, "field", None) == "median" and type(check).__name__ == "PercentageRegressionCheck":
            return float(check.threshold) / 100
    return DEFAULT_THRESHOLD


def load(root: Path, kind: str, checks) -> StoredRun | None:
    found = newest_run(root, kind)
    if found is None:
        return None
    path, data = found
    medians = {}
    for bench in data.get("benchmarks", []):
        try:
            medians[str(bench["param"])] = float(bench["stats"]["median"])
        except (KeyError, TypeError, ValueError):
            continue
    return StoredRun(path, path.parent.parent.name, medians, threshold(checks))


STORED = pytest.StashKey["StoredRun | None"]()
