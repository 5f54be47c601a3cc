"""Reads the suite's pytest-benchmark JSON into one row per case and input file, with stable column names.

A file that is not one (malformed, empty, another tool's) is a :class:`ReportError` naming it and what is wrong;
the CLI prints it as one line.  Column meanings are in docs/report.md.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from edgeopt.budgets import CONCERN_METRICS, Budget

# Stable order of results.csv; docs/report.md says what each means.
COLUMNS = ("source", "cpu_kind", "model", "variant", "backend", "threads", "top1", "reference_top1", "top1_drop_pt",
           "top1_agreement", "sqnr_db", "size_bytes", "size_ratio", "macs", "bitops_ratio", "weight_memory_ratio",
           "simulated", "peak_rss_mb", "model_rss_mb",
           "latency_median_ms", "latency_ci_low_ms", "latency_ci_high_ms", "latency_iqr_ms", "latency_rounds",
           "speedup_vs_ort_fp32", "speedup_vs_torch_fp32", "budget_verdict")
REFERENCES = {"speedup_vs_ort_fp32": ("onnx_fp32", "onnxruntime"), "speedup_vs_torch_fp32": ("fp32", "torch")}


class ReportError(ValueError):
    """An input the report cannot use; the message names the file."""


@dataclass(frozen=True)
class Run:
    """One input file: where it came from, its machine and its rows."""
    source: str
    machine: dict
    rows: list[dict]


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _row(source: str, cpu_kind: str, bench: dict) -> dict:
    extra, stats = bench.get("extra_info") or {}, bench.get("stats") or {}
    model, variant, backend = bench["param"].split("-", 2)
    ci = extra.get("median_ci_ms") or [None, None]
    drop = _finite(extra.get("top1_drop"))
    sqnr = extra.get("sqnr_db")
    return {"source": source, "cpu_kind": cpu_kind, "model": model, "variant": variant, "backend": backend,
            "threads": extra.get("threads"), "top1": _finite(extra.get("top1")),
            "reference_top1": _finite(extra.get("reference_top1")),
            "top1_drop_pt": drop,  # already percentage points in extra_info
            "top1_agreement": _finite(extra.get("top1_agreement")),
            # identical outputs have infinite SQNR; CSV and JSON cannot hold it, so it is written "inf"
            "sqnr_db": "inf" if sqnr == math.inf else _finite(sqnr),
            "size_bytes": extra.get("size_bytes"), "size_ratio": _finite(extra.get("size_ratio")),
            "macs": extra.get("macs"), "bitops_ratio": _finite(extra.get("bitops_ratio")),
            "weight_memory_ratio": _finite(extra.get("weight_memory_ratio")),
            "simulated": bool(extra.get("simulated")),  # fake quantization: accuracy real, latency and size not
            "peak_rss_mb": _finite(extra.get("peak_rss_mb")),
            "model_rss_mb": _finite(extra.get("model_rss_mb")),
            "latency_median_ms": None if _finite(stats.get("median")) is None else 1e3 * stats["median"],
            "latency_ci_low_ms": _finite(ci[0]), "latency_ci_high_ms": _finite(ci[1]),
            "latency_iqr_ms": None if _finite(stats.get("iqr")) is None else 1e3 * stats["iqr"],
            "latency_rounds": stats.get("rounds"), "budget_verdict": budget_verdict(extra),
            "budget_limits": extra.get("budget") if isinstance(extra.get("budget"), dict) else {}}


def budget_verdict(extra: dict) -> str | None:
    """ok; xfail (budgets.toml expects this case to miss: every broken limit is one its concern's xfail covers);
    over: the limits broken that nothing expects; None if the input holds no budget."""
    if not isinstance(extra.get("budget"), dict):
        return None
    if extra.get("budget_xfail"):
        return "xfail"
    limits = {str(k): float(v) for k, v in extra["budget"].items()}
    expected = extra.get("budget_xfails") if isinstance(extra.get("budget_xfails"), dict) else {}
    over, xfailed = [], False
    for concern, metrics in CONCERN_METRICS.items():
        broken = Budget({k: v for k, v in limits.items() if k.rsplit("_", 1)[0] in metrics}).check(extra)
        xfailed |= bool(broken and expected.get(concern))
        over += [] if expected.get(concern) else broken
    return "over: " + "; ".join(over) if over else "xfail" if xfailed else "ok"


def _speedups(rows: list[dict]) -> None:
    median = {(r["model"], r["variant"], r["backend"]): r["latency_median_ms"] for r in rows}
    for r in rows:
        for column, (variant, backend) in REFERENCES.items():
            ref, mine = median.get((r["model"], variant, backend)), r["latency_median_ms"]
            r[column] = ref / mine if ref and mine else None


def load(path: str | Path) -> Run:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file; pytest-benchmark writes it only when a latency case ran, so a run "
                          "whose latency cases all skipped (see its skip reasons) or were deselected leaves none") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None
    if not text.strip():
        raise ReportError(f"{path}: empty file, not a pytest-benchmark JSON")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or "machine_info" not in doc:
        raise ReportError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list and 'machine_info')")
    ours = [b for b in doc["benchmarks"] if isinstance(b, dict) and str(b.get("param", "")).count("-") >= 2
            and isinstance(b.get("stats"), dict)]
    if not ours:
        raise ReportError(f"{path}: no edgeopt latency cases (model-variant-backend) among its "
                          f"{len(doc['benchmarks'])} benchmarks; write it with `make bench` or "
                          "`pytest benchmarks/ --benchmark-json=FILE`")
    machine = doc["machine_info"] if isinstance(doc["machine_info"], dict) else {}
    kind = str(machine.get("cpu_kind") or machine.get("cpu", {}).get("brand_raw") or "unknown")
    rows = [_row(path.name, kind, b) for b in ours]
    _speedups(rows)
    return Run(path.name, machine, rows)


def load_all(paths: list[str | Path]) -> list[Run]:
    if not paths:
        raise ReportError("no input files given")
    runs = [load(p) for p in paths]
    names = [r.source for r in runs]
    if len(set(names)) != len(names):  # rows are told apart by file name
        raise ReportError(f"two inputs share a file name: {sorted(n for n in names if names.count(n) > 1)[0]}")
    return runs
