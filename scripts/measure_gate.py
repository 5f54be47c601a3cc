"""Measure the A/B latency gate's error rates on this machine: >= 100 gate decisions per injected slowdown.

Both sides run the head's code and artifacts; the head side's runners are slowed by an exact fraction of each
call's own duration (a busy spin, `slowdown` in edgeopt/gate/worker.py).  Settings are interleaved decision by
decision (no change, +5%, +10%), so the machine's slow phases hit them alike.  Every `--plain-every`-th decision
also times each case the way plain pytest-benchmark does (each side alone, warm-up 10, >= 30 rounds, >= 1 s,
one side right after the other: the best case for a stored baseline) and applies `median:10%` and `median:25%`.

    .venv/bin/python scripts/measure_gate.py --decisions 100 --out docs/gate-measurement.json

Writes every decision (verdicts, ratios, plain medians) and the summary rates to --out; prints the summary.
`measure_gate.py --table [FILE]` prints docs/gate.md's table of rates from a measurement file.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from edgeopt.data import default_data_dir
from edgeopt.gate import ab, stats

CASES = [("simple_cnn", "fp32", "torch"), ("simple_cnn", "onnx_fp32", "onnxruntime"),
         ("simple_cnn", "ort_int8_static", "onnxruntime"), ("simple_cnn", "ort_int8_static", "opencv_classic")]
SETTINGS = (0.0, 0.05, 0.10)


def summarise(decisions: list[dict], wall_plain_per_case: float) -> dict:
    out = {}
    for slow in sorted({d["slowdown"] for d in decisions}):
        mine = [d for d in decisions if d["slowdown"] == slow]
        cases = [c for d in mine for c in d["cases"]]
        plain = [c for c in cases if "plain_10" in c]
        entry = {"decisions": len(mine), "case_comparisons": len(cases),
                 "runs_with_any_slower": sum(any(c["verdict"] == "slower" for c in d["cases"]) for d in mine),
                 "cases_slower": sum(c["verdict"] == "slower" for c in cases),
                 "cases_faster": sum(c["verdict"] == "faster" for c in cases),
                 "plain_case_comparisons": len(plain),
                 "plain_10_flagged": sum(c["plain_10"] for c in plain),
                 "plain_25_flagged": sum(c["plain_25"] for c in plain),
                 "median_ratio": sorted(c["ratio"] for c in cases)[len(cases) // 2] if cases else None}
        out[f"{slow:.2f}"] = entry
    gate_wall = [d["gate_wall_s"] for d in decisions]
    out["gate_wall_s_median"] = sorted(gate_wall)[len(gate_wall) // 2]
    out["plain_latency_phase_s_per_case"] = wall_plain_per_case
    out["wall_ratio_gate_vs_plain"] = out["gate_wall_s_median"] / (wall_plain_per_case * len(CASES))
    return out


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.1f}%)" if n else "-"


def table(path: str) -> str:
    """The table of measured rates in docs/gate.md, generated from a measurement file (figures are never typed in)."""
    m = json.loads(Path(path).read_text())
    s = m["summary"]
    rows = ["| injected slowdown | `edgeopt gate`: cases flagged slower | gate runs with any case flagged | "
            "plain `median:10%` (same runs) | plain `median:25%` |", "| --- | --- | --- | --- | --- |"]
    for key, label in (("0.00", "none (false alarms)"), ("0.05", "+5%"), ("0.10", "+10%")):
        e = s[key]
        rows.append(f"| {label} | {_pct(e['cases_slower'], e['case_comparisons'])} | "
                    f"{_pct(e['runs_with_any_slower'], e['decisions'])} | "
                    f"{_pct(e['plain_10_flagged'], e['plain_case_comparisons'])} | "
                    f"{_pct(e['plain_25_flagged'], e['plain_case_comparisons'])} |")
    rows.append(f"\nWall time: {s['gate_wall_s_median']:.1f} s per gate run of the {len(m['cases'])} cases (median), "
                f"{s['wall_ratio_gate_vs_plain']:.2f}x plain pytest-benchmark's latency phase for the same cases "
                f"({s['plain_latency_phase_s_per_case']:.2f} s per case, load included).")
    return "\n".join(rows)


def main() -> int:
    if sys.argv[1:2] == ["--table"]:
        print(table(sys.argv[2] if len(sys.argv) > 2 else "docs/gate-measurement.json"))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decisions", type=int, default=100, help="gate decisions per setting")
    p.add_argument("--plain-every", type=int, default=4)
    p.add_argument("--seconds-per-case", type=float, default=ab.Timing.seconds_per_case)
    p.add_argument("--loads", type=int, default=ab.Timing.loads, help="loads of each case per side")
    p.add_argument("--slowdowns", default=",".join(f"{x:.2f}" for x in SETTINGS), help="fractions to inject")
    p.add_argument("--fresh-workers", action="store_true",
                   help="start both worker processes anew for every decision, as a real gate run does")
    p.add_argument("--out", default="docs/gate-measurement.json")
    args = p.parse_args()
    slowdowns = [float(x) for x in args.slowdowns.split(",")]
    settings, timing = stats.GateSettings(), ab.Timing(seconds_per_case=args.seconds_per_case, loads=args.loads)
    data = str(Path(default_data_dir()).resolve())
    log_dir = Path(".edgeopt-cache") / "gate" / "measure"
    def spawn() -> list[ab.Worker]:
        return [ab.Worker(ab.Side("base"), log_dir, 1, data), ab.Worker(ab.Side("head"), log_dir, 1, data)]

    workers = spawn()
    order = [s for s in slowdowns for _ in range(args.decisions)]
    random.Random(1).shuffle(order)
    decisions, plain_walls = [], []
    try:
        for i, slow in enumerate(order):
            if args.fresh_workers and i:
                for w in workers:
                    w.close()
                workers = spawn()
                for w in workers:  # ready (imports done) before the clock starts: the latency phase is timed
                    w.ask(op="describe")
            workers[1].ask(op="slowdown", fractions={"*": slow})
            plain = i % args.plain_every == 0
            start = time.perf_counter()
            verdict = ab.run_gate(ab.Side("base"), ab.Side("head"), CASES, settings, timing, seed=i, plain=plain,
                                  workers=workers)
            cases = []
            for r in verdict["cases"]:
                c = {k: r.get(k) for k in ("case", "verdict", "ratio", "ci", "p_slower_holm", "base_ms")}
                if plain and "plain_s" in r:
                    b, h = r["plain_s"]["base"], r["plain_s"]["head"]
                    c["plain_10"] = stats.plain_decision(b, h, 0.10)
                    c["plain_25"] = stats.plain_decision(b, h, 0.25)
                    # head side alone as a plain pytest-benchmark case spends it: load, 10 warm-up calls, rounds
                    plain_walls.append(r["load_s"][1] + sum(h) + 10 * sorted(h)[len(h) // 2])
                cases.append(c)
            decisions.append({"slowdown": slow, "gate_wall_s": verdict["wall_s"] - (sum(
                sum(r["plain_s"]["base"]) + sum(r["plain_s"]["head"]) for r in verdict["cases"] if "plain_s" in r)
                if plain else 0), "cases": cases})
            if sys.stderr.isatty() or i % 25 == 0:
                print(f"{i + 1}/{len(order)} slowdown {slow:.2f}: "
                      f"{[c['verdict'] for c in cases]} {time.perf_counter() - start:.1f} s", file=sys.stderr)
    finally:
        for w in workers:
            w.close()
        wall_plain = sum(plain_walls) / len(plain_walls) if plain_walls else float("nan")
        summary = summarise(decisions, wall_plain) if decisions else {}
        summary["fresh_workers"] = args.fresh_workers
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(json.dumps({"cases": ["-".join(c) for c in CASES], "settings": settings.__dict__,
                                   "timing": timing.__dict__, "cpu": os.uname().machine, "summary": summary,
                                   "decisions": decisions}, indent=1))
        os.replace(tmp, args.out)
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
