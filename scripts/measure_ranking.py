"""Measure how well one run's latency figures rank variants that run identical kernels (issue: point 8).

Each run times the same cases twice on this machine, in random order of the two methods: as the suite does
(`edgeopt.latency.time_panel`: interleaved rounds, drift-normalised medians) and as plain pytest-benchmark did
(each case alone, one after the other, warm-up 10, >= 30 rounds, >= 1 s, its median).  Reported per method: the
spread max/min of the identical-kernel cases' figures per run, and the share of runs within 5%.

    .venv/bin/python scripts/measure_ranking.py --model mobilenet_v2_cifar --runs 30 --out docs/latency-ranking.json

``--suite 1,4`` times the suite's own panel instead (every latency case of the model, all backends: its latency
phase run by pytest), alternating ``--edgeopt-latency-loads`` 1 and 4 in random order each run (``--suite
panel=model,panel=backend``: any ``--edgeopt-latency-KEY=VALUE`` settings); ``--suite-backends`` narrows the cases
to some backends.  Each setting's spread is reported for three figures of a case: the median of
its pooled rounds (the suite's), their minimum, and the median of its per-load medians.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeopt.backends import runner_class
from edgeopt.latency import PanelTiming, time_panel
from edgeopt.workbench import Workbench

#: ONNX Runtime static INT8 variants whose graphs differ only in calibration (or 7-bit weights): the same kernels.
IDENTICAL = ("ort_int8_static", "ort_int8_static_entropy", "ort_int8_static_percentile",
             "ort_int8_static_per_tensor", "ort_int8_static_reduce_range")


def plain(run, warmup: int = 10, min_rounds: int = 30, max_time: float = 1.0) -> float:
    for _ in range(warmup):
        run()
    times: list[float] = []
    while len(times) < min_rounds or sum(times) < max_time:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def spread_summary(spreads: list[float]) -> dict:
    s = np.array(spreads)
    return {"runs_within_5pct": int((s <= 1.05).sum()), "runs": len(s),
            "spread_median": float(np.median(s)), "spread_max": float(s.max())}


#: The backends whose same-kernel cases (IDENTICAL but per-tensor) the suite mode ranks.
SUITE_BACKENDS = ("onnxruntime", "openvino", "opencv_classic")
#: A case's figure (ms) three ways, from its pytest-benchmark row.
ESTIMATORS = {"median": lambda r: 1e3 * r["stats"]["median"], "min": lambda r: 1e3 * r["stats"]["min"],
              "load_median": lambda r: float(np.median(r["extra_info"].get("load_medians_ms") or [np.nan]))}


def suite_figures(model: str, setting: str, backends: str) -> tuple[dict[str, dict[str, float]], float]:
    """Each estimator's figures (ms) of every latency case of ``model`` from one run of the suite's latency phase
    under ``setting`` (``KEY=VALUE``: ``--edgeopt-latency-KEY=VALUE``), and its wall time."""
    key, value = setting.split("=")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "benchmarks/test_latency.py", "-q", "-p", "no:logging",
                        "-p", "no:cacheprovider", f"--edgeopt-models={model}", f"--edgeopt-latency-{key}={value}",
                        f"--edgeopt-backends={backends}", f"--benchmark-json={out}"], check=False,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        rows = json.loads(out.read_text())["benchmarks"]
    return {name: {r["extra_info"]["case"]: f(r) for r in rows} for name, f in ESTIMATORS.items()}, wall


def _spreads(figures: dict[str, dict[str, float]], model: str) -> dict[str, dict[str, float]]:
    """backend -> estimator -> slowest / fastest of the backend's same-kernel cases (backends that ran them all)."""
    out = {}
    for backend in SUITE_BACKENDS:
        ranked = [f"{model}-{v}-{backend}" for v in IDENTICAL if v != "ort_int8_static_per_tensor"]
        if all(c in figures["median"] for c in ranked):
            out[backend] = {name: max(f[c] for c in ranked) / min(f[c] for c in ranked) for name, f in figures.items()}
    return out


def suite_main(args) -> int:
    settings = [k if "=" in k else f"loads={k}" for k in args.suite.split(",")]
    runs = []
    for i in range(args.runs):
        order = list(settings)
        random.Random(i).shuffle(order)
        run = {}
        for setting in order:
            figures, wall = suite_figures(args.model, setting, args.suite_backends)
            run[setting] = {"figures_ms": figures, "wall_s": wall, "spread": _spreads(figures, args.model)}
        runs.append(run)
        print(f"run {i + 1}/{args.runs}: " + "; ".join(
            f"{k} ({v['wall_s']:.0f} s): " + ", ".join(f"{b} {e['median']:.3f}" for b, e in v["spread"].items())
            for k, v in run.items()), file=sys.stderr, flush=True)
        summary = {}
        for k in settings:
            backends = [b for b in SUITE_BACKENDS if all(b in r[k]["spread"] for r in runs)]
            summary[k] = {**{f"{b} {name}": spread_summary([r[k]["spread"][b][name] for r in runs])
                             for b in backends for name in ESTIMATORS},
                          "wall_s_median": float(np.median([r[k]["wall_s"] for r in runs]))}
        out = Path(args.out)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": args.model, "backends": args.suite_backends, "ranked": IDENTICAL,
                                   "summary": summary, "runs": runs}, indent=1))
        os.replace(tmp, out)  # after every run: an interrupted measurement keeps what it has
    print(json.dumps(summary, indent=1))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenet_v2_cifar")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--others", default="onnx_fp32", help="more variants in the panel (comma-separated), not ranked")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--out", default="docs/latency-ranking.json")
    p.add_argument("--suite", default=None, metavar="LOADS[,LOADS]",
                   help="time the suite's own panel with these --edgeopt-latency-loads settings instead")
    p.add_argument("--suite-backends", default="*", help="--edgeopt-backends of the suite's panel (--suite)")
    args = p.parse_args()
    if args.suite:
        return suite_main(args)
    wb = Workbench(threads=1)
    variants = [*IDENTICAL, *filter(None, args.others.split(","))]
    x = wb.sample_input(args.model)
    runs = []
    with contextlib.ExitStack() as stack:
        calls = {}
        for v in variants:
            runner = stack.enter_context(runner_class(args.backend)(wb.artifact(args.model, v), threads=1))
            calls[v] = (lambda r=runner: r.run(x))
        for i in range(args.runs):
            rng = random.Random(i)
            methods = ["panel", "plain"]
            rng.shuffle(methods)
            figures: dict[str, dict[str, float]] = {}
            for method in methods:
                if method == "panel":
                    timed = time_panel(calls, PanelTiming(), rng)
                    figures[method] = {v: timed[v].median_s for v in variants}
                else:
                    order = list(variants)
                    rng.shuffle(order)
                    figures[method] = {v: plain(calls[v]) for v in order}
            spread = {m: max(f[v] for v in IDENTICAL) / min(f[v] for v in IDENTICAL) for m, f in figures.items()}
            runs.append({"figures_ms": {m: {v: 1e3 * t for v, t in f.items()} for m, f in figures.items()},
                         "spread": spread})
            if sys.stderr.isatty() or i % 5 == 0:
                print(f"run {i + 1}/{args.runs}: spread panel {spread['panel']:.3f} plain {spread['plain']:.3f}",
                      file=sys.stderr)
    summary = {}
    for m in ("panel", "plain"):
        summary[m] = spread_summary([r["spread"][m] for r in runs])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model": args.model, "backend": args.backend, "identical": IDENTICAL,
                               "variants": variants, "summary": summary, "runs": runs}, indent=1))
    os.replace(tmp, out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
