"""The gate's verdict as GitHub-flavoured Markdown, for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
from __future__ import annotations

ICON = {"slower": "❌ slower", "broken": "❌ broken", "faster": "🚀 faster", "same": "✅ same",
        "new": "🆕 new", "unavailable": "➖ unavailable"}


def _row(r: dict) -> str:
    if "ratio" not in r:
        why = "; ".join(f"{side}: {e}" for side, e in r.get("errors", {}).items() if e).replace("|", "\\|")
        return f"| `{r['case']}` | {ICON[r['verdict']]} | | | | | {why} |"
    return (f"| `{r['case']}` | {ICON[r['verdict']]} | {r['base_ms']:.3f} | {r['head_ms']:.3f} | "
            f"{r['ratio']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['p_slower_holm']:.2g} | "
            f"{r['rounds']} x {r['calls_per_round']} |")


def summary(verdict: dict, limit: int = 1 << 20) -> str:
    s = verdict["settings"]
    regressions, cases = verdict["regressions"], verdict["cases"]
    head = [f"## edgeopt latency gate: {'❌ ' + str(regressions) + ' regression(s)' if regressions else '✅ no regression'}",
            "",
            f"`{verdict['head']['label']}` against `{verdict['base']['label']}`, interleaved on one machine; "
            f"slower = ratio > {1 + s['threshold']:.2f} and Wilcoxon signed-rank p < {s['alpha']} after Holm over "
            f"{len(cases)} cases; {s['threads']} thread(s); {verdict['wall_s']:.0f} s.", ""]
    table = ["| case | verdict | base ms | head ms | head/base [99% CI] | p (Holm) | rounds x calls |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    flagged = [r for r in cases if r["verdict"] != "same"]
    rest = [r for r in cases if r["verdict"] == "same"]
    lines = head + table + [_row(r) for r in flagged]
    if rest:
        lines += ["", f"<details><summary>{len(rest)} unchanged cases</summary>", "", *table, *map(_row, rest),
                  "", "</details>"]
    runtimes = lambda side: ", ".join(f"{k} {v}" for k, v in sorted(verdict[side].get("runtimes", {}).items()))
    lines += ["", f"base: {runtimes('base')}", "", f"head: {runtimes('head')}", ""]
    text = "\n".join(lines)
    if len(text.encode()) > limit and rest:  # GitHub takes at most 1 MiB per step summary
        text = "\n".join(head + table + [_row(r) for r in flagged] + ["", f"({len(cases) - len(flagged)} unchanged "
                                                                          "cases left out: see verdict.json)"])
    return text
