"""results.csv and report.md from the rows of :mod:`edgeopt.report.results`."""
from __future__ import annotations

import csv
import io

from edgeopt.latency import PanelTiming
from edgeopt.report.results import COLUMNS, ReportError, Run

MAX_BYTES = 1 << 20  # $GITHUB_STEP_SUMMARY takes at most 1 MiB


def to_csv(runs: list[Run]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for run in runs:
        for row in run.rows:
            w.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    return out.getvalue()


def _f(value, fmt: str, missing: str = "-") -> str:
    return missing if value is None else (value if isinstance(value, str) else format(value, fmt))


def _latency(r: dict) -> str:
    if r["latency_median_ms"] is None:
        return "-"
    if r["latency_ci_low_ms"] is not None:
        return f"{r['latency_median_ms']:.3f} [{r['latency_ci_low_ms']:.3f}, {r['latency_ci_high_ms']:.3f}]"
    return f"{r['latency_median_ms']:.3f} (IQR {_f(r['latency_iqr_ms'], '.3f')})"


LEVEL = f"{PanelTiming.confidence:.0%}"  # the suite's interval of the median (edgeopt.latency)
HEADER = ("| variant | backend | top-1 % | drop pt | agreement % | SQNR dB | size MB | size ratio | MMACs | "
          f"BitOps ratio | peak RSS MB | latency ms [{LEVEL} CI] | vs ORT FP32 | vs torch FP32 | budget |")


def model_table(rows: list[dict]) -> list[str]:
    lines = [HEADER, "|" + " --- |" * HEADER.count(" | ") + " --- |"]
    for r in sorted(rows, key=lambda r: (r["variant"], r["backend"])):
        lines.append(
            f"| {r['variant']}{' (simulated)' if r['simulated'] else ''} | {r['backend']} | "
            f"{_f(r['top1'] and 100 * r['top1'], '.2f')} | "
            f"{_f(r['top1_drop_pt'], '+.2f')} | {_f(r['top1_agreement'] and 100 * r['top1_agreement'], '.2f')} | "
            f"{_f(r['sqnr_db'], '.1f')} | {_f(r['size_bytes'] and r['size_bytes'] / 1e6, '.2f')} | "
            f"{_f(r['size_ratio'], '.3f')} | {_f(r['macs'] and r['macs'] / 1e6, '.1f')} | "
            f"{_f(r['bitops_ratio'], '.4f')} | {_f(r['peak_rss_mb'], '.0f')} | {_latency(r)} | "
            f"{_f(r['speedup_vs_ort_fp32'], '.2f')}x | "
            f"{_f(r['speedup_vs_torch_fp32'], '.2f')}x | {_f(r['budget_verdict'], 's', 'not recorded')} |")
    return lines


MARKS = {"ok": "ok", "xfail": "xfail", "over": "**over**", None: "?"}


def capability_table(rows: list[dict]) -> list[str]:
    """model · variant x backend: the budget verdict of each case (- where the case did not run)."""
    backends = sorted({r["backend"] for r in rows})
    cell = {(r["model"], r["variant"], r["backend"]): MARKS[(r["budget_verdict"] or "").split(":")[0] or None]
            for r in rows}
    lines = ["| model · variant | " + " | ".join(backends) + " |", "| --- |" + " --- |" * len(backends)]
    for m, v in sorted({(r["model"], r["variant"]) for r in rows}):
        lines.append(f"| {m} · {v} | " + " | ".join(cell.get((m, v, b), "-") for b in backends) + " |")
    return lines


def compare_table(runs: list[Run], model: str) -> list[str]:
    """The cases every run measured, side by side: latency and top-1 per run, latency ratio to the first run."""
    first, others = runs[0], runs[1:]
    def by_case(run: Run) -> dict:
        return {(r["variant"], r["backend"]): r for r in run.rows if r["model"] == model}
    base, rest = by_case(first), [by_case(o) for o in others]
    shared = sorted(k for k in base if all(k in o for o in rest))
    if not shared:
        return []
    head = ("| variant | backend | " + " | ".join(f"{run.source} ms" for run in runs) + " | "
            + " | ".join(f"{o.source} / {first.source}" for o in others) + " | "
            + " | ".join(f"{run.source} top-1 %" for run in runs) + " |")
    lines = [head, "|" + " --- |" * (2 + 3 * len(runs) - 1)]
    for k in shared:
        cases = [base[k], *(o[k] for o in rest)]
        ms = [c["latency_median_ms"] for c in cases]
        ratios = [_f(m / ms[0] if m and ms[0] else None, ".2f") for m in ms[1:]]
        lines.append(f"| {k[0]} | {k[1]} | " + " | ".join(_f(m, ".3f") for m in ms) + " | "
                     + " | ".join(f"{x}x" if x != "-" else x for x in ratios) + " | "
                     + " | ".join(_f(c["top1"] and 100 * c["top1"], ".2f") for c in cases) + " |")
    return lines


def _fold(summary: str, table: list[str]) -> list[str]:
    if len(table) <= 14:  # long tables folded: a PR comment stays readable
        return [*table, ""]
    return [f"<details><summary>{summary}</summary>", "", *table, "", "</details>", ""]


def picks(rows: list[dict]) -> list[str]:
    """What to ship, in a line each: the fastest and the smallest case that keeps its budget (or has none recorded)."""
    # a simulated case's speed and file are a float model's, not the low-bit one it stands for
    fine = [r for r in rows if r["budget_verdict"] in ("ok", None) and r["latency_median_ms"] and not r["simulated"]]
    if not fine:
        return ["- no case of this model kept its budget"]
    why = "within budget" if all(r["budget_verdict"] == "ok" for r in fine) else "budget not recorded in the input"
    fast = min(fine, key=lambda r: r["latency_median_ms"])
    small = min(fine, key=lambda r: (r["size_bytes"] or float("inf"), r["latency_median_ms"]))
    def say(r: dict) -> str:
        drop = "not measured" if r["top1_drop_pt"] is None else f"{r['top1_drop_pt']:+.2f} pt"
        return (f"**{r['variant']}** on **{r['backend']}**: {r['latency_median_ms']:.3f} ms "
                f"({_f(r['speedup_vs_ort_fp32'], '.2f')}x ORT FP32), top-1 drop {drop}, size {_f(r['size_ratio'], '.2f')}x")
    if fast is small:
        return [f"- fastest and smallest ({why}): {say(fast)}"]
    return [f"- fastest ({why}): {say(fast)}", f"- smallest ({why}): {say(small)}"]


def machine_lines(run: Run) -> list[str]:
    m = run.machine
    runtimes = ", ".join(f"{k} {v}" for k, v in sorted((m.get("runtimes") or {}).items()))
    return [f"- **{run.source}**: {m.get('cpu_model') or m.get('cpu', {}).get('brand_raw', '?')} "
            f"(`{run.rows[0]['cpu_kind']}`), ISA {', '.join(m.get('isa_flags') or []) or '?'}; "
            f"threads {m.get('edgeopt_threads', run.rows[0]['threads'])}; {runtimes or 'runtimes not recorded'}; "
            f"Python {m.get('python_version', '?')}"]


def markdown(runs: list[Run], charts: dict[str, list[str]] | None = None) -> str:
    lines = ["# edgeopt report", "", "## Machines", ""]
    for run in runs:
        lines += machine_lines(run)
    models = sorted({r["model"] for run in runs for r in run.rows})
    for model in models:
        lines += ["", f"## {model}", ""]
        for run in runs:
            rows = [r for r in run.rows if r["model"] == model]
            if not rows:
                continue
            table = model_table(rows)
            if len(runs) > 1:
                lines += [f"**{run.source}** (`{rows[0]['cpu_kind']}`)", ""]
            lines += [*picks(rows), "", *_fold(f"{len(rows)} cases", table)]
        if len(runs) > 1 and (side := compare_table(runs, model)):
            lines += [f"**Side by side** ({len(side) - 2} cases every input measured)", "",
                      *_fold(f"{len(side) - 2} cases side by side", side)]
        for chart in (charts or {}).get(model, []):
            lines.append(f"![{model}: {chart}]({chart})")
    for run in runs:
        rows = run.rows
        lines += ["", f"## Capability matrix{f' ({run.source})' if len(runs) > 1 else ''}", "",
                  "Budget verdict of each timed case: ok, xfail (budgets.toml expects the miss), **over** (a limit "
                  "broken), ? (no budget in the input), - (not run).", "",
                  *_fold(f"{len({(r['model'], r['variant']) for r in rows})} model variants", capability_table(rows))]
    text = "\n".join(lines).rstrip() + "\n"
    if len(text.encode()) > MAX_BYTES:
        raise ReportError(f"report.md would be {len(text.encode())} bytes, over GitHub's 1 MiB step summary")
    return text
