"""The report's charts (matplotlib, Agg): per model size, latency, top-1, drop vs latency, memory; one matrix.

One colour per backend and one marker per variant family in every chart, so a reader learns them once.
Each function returns PNG bytes, or None when the runs hold no figure for that chart.
"""
from __future__ import annotations

from edgeopt.report.style import FAMILY_MARKERS, backend_colour, backend_legend, family, height, log_x, png  # Agg first

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from edgeopt.latency import PanelTiming  # noqa: E402
from edgeopt.report.bitops_chart import bitops_chart  # noqa: E402
from edgeopt.report.results import Run  # noqa: E402


def size_chart(model: str, rows: list[dict]) -> bytes | None:
    sizes = {r["variant"]: r["size_bytes"] for r in rows if r["size_bytes"]}
    if not sizes:
        return None
    variants = sorted(sizes, key=lambda v: sizes[v])
    fig, ax = plt.subplots(figsize=(7, height(len(variants))))
    colours = ["#444444" if v == "fp32" else "#8da0cb" for v in variants]
    ax.barh(variants, [sizes[v] / 1e6 for v in variants], color=colours)
    ref = sizes.get("fp32")
    for i, v in enumerate(variants):
        label = f"{sizes[v] / 1e6:.2f} MB" + (f"  ({sizes[v] / ref:.2f}x)" if ref else "")
        ax.text(sizes[v] / 1e6, i, " " + label, va="center", fontsize=8)
    ax.set_xlabel("model file size (MB); dark bar: FP32 reference")
    ax.set_xlim(0, max(sizes.values()) / 1e6 * 1.35)
    ax.set_title(f"{model}: model size per variant")
    return png(fig)


def latency_chart(model: str, rows: list[dict]) -> bytes | None:
    timed = sorted((r for r in rows if r["latency_median_ms"]), key=lambda r: r["latency_median_ms"])
    if not timed:
        return None
    fig, ax = plt.subplots(figsize=(7.5, height(len(timed))))
    labels = [f"{r['variant']} · {r['backend']}" + (" (simulated)" if r["simulated"] else "") for r in timed]
    medians = [r["latency_median_ms"] for r in timed]
    low = [m - (r["latency_ci_low_ms"] or m) for m, r in zip(medians, timed)]
    high = [(r["latency_ci_high_ms"] or m) - m for m, r in zip(medians, timed)]
    ax.barh(labels, medians, xerr=[low, high], color=[backend_colour(r["backend"]) for r in timed],
            error_kw={"elinewidth": 0.8, "capsize": 2})
    log_x(ax, medians)
    ax.invert_yaxis()  # barh draws the first row at the bottom
    ax.set_xlabel(f"batch-1 latency, median (ms; whiskers: its {PanelTiming.confidence:.0%} interval where measured)")
    ax.set_title(f"{model}: latency per variant and backend (fastest first)")
    backend_legend(ax, {r["backend"] for r in timed}, loc="upper right")  # beside the short, fastest bars
    return png(fig)


def accuracy_chart(model: str, rows: list[dict]) -> bytes | None:
    measured = [r for r in rows if r["top1"] is not None]
    if not measured:
        return None
    measured.sort(key=lambda r: (r["variant"], r["backend"]))
    fig, ax = plt.subplots(figsize=(7.5, height(len(measured))))
    labels = [f"{r['variant']} · {r['backend']}" for r in measured]
    ref = next((r["reference_top1"] for r in measured if r["reference_top1"] is not None), None)
    # a far-off loser squashes the budget region: draw it at the left edge with its figure
    tops = sorted(100 * r["top1"] for r in measured)
    lo = min([tops[len(tops) // 2] - 5, *(t for t in tops if ref is None or t >= 100 * ref - 5)]) - 0.5
    for i, r in enumerate(measured):
        x = max(100 * r["top1"], lo)
        ax.scatter(x, i, color=backend_colour(r["backend"]), marker=FAMILY_MARKERS[family(r["variant"])],
                   s=40, zorder=3)
        if x > 100 * r["top1"]:
            ax.annotate(f"{100 * r['top1']:.1f}% (off scale)", (x, i), xytext=(6, 0), textcoords="offset points",
                        va="center", fontsize=7, color="#666666")
        limit = (r.get("budget_limits") or {}).get("top1_drop_max")
        if limit is not None and r["reference_top1"] is not None:
            floor = 100 * r["reference_top1"] - limit
            ax.plot([floor, floor], [i - 0.4, i + 0.4], color="#d62728", lw=1.5)
    ax.set_xlim(left=lo - 0.3)
    if ref is not None:
        ax.axvline(100 * ref, color="#444444", ls="--", lw=1, label=f"FP32 reference {100 * ref:.2f}%")
    ax.plot([], [], color="#d62728", lw=1.5, label="lowest top-1 the drop budget allows")
    ax.set_yticks(range(len(measured)), labels)
    ax.invert_yaxis()  # A to Z from the top
    ax.set_xlabel("top-1 accuracy (%)")
    ax.set_title(f"{model}: top-1 per variant and backend")
    ax.legend(fontsize=8, loc="lower left")
    return png(fig)


def latency_points(rows: list[dict]) -> list[dict]:
    """The cases a latency front may hold: timed, with a drop, and not simulated (float fake-quant: its latency is
    not that of the kernels it stands for)."""
    return [r for r in rows if r["latency_median_ms"] and r["top1_drop_pt"] is not None and not r["simulated"]]


def pareto_chart(model: str, rows: list[dict]) -> bytes | None:
    pts = latency_points(rows)
    simulated = sum(bool(r["simulated"]) for r in rows)
    if len(pts) < 2:
        return None
    front = [r for r in pts if not any(o["latency_median_ms"] <= r["latency_median_ms"]
                                       and o["top1_drop_pt"] <= r["top1_drop_pt"]
                                       and (o["latency_median_ms"], o["top1_drop_pt"]) != (r["latency_median_ms"],
                                                                                          r["top1_drop_pt"])
                                       for o in pts)]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    line = sorted(front, key=lambda r: r["latency_median_ms"])
    for r in pts:
        on = r in front
        ax.scatter(r["latency_median_ms"], r["top1_drop_pt"], marker=FAMILY_MARKERS[family(r["variant"])], s=45,
                   color=backend_colour(r["backend"]) if on else "#cccccc", zorder=3 if on else 2)
    notes, groups = [], []  # numbers on the chart, names beside it; close points share one label ("1,2")
    for n, r in enumerate(line, 1):
        x, y = r["latency_median_ms"], r["top1_drop_pt"]
        if groups and x / groups[-1][0] < 1.08 and abs(y - groups[-1][1]) < 0.3:
            groups[-1][2].append(n)
        else:
            groups.append((x, y, [n]))
        notes.append(f"{n}  {r['variant']} · {r['backend']}: {x:.3g} ms, {y:+.2f} pt")
    for x, y, ns in groups:
        ax.annotate(",".join(map(str, ns)), (x, y), xytext=(0, 7), textcoords="offset points", fontsize=8,
                    ha="center", weight="bold")
    drops = [r["top1_drop_pt"] for r in pts]
    top = max(1.0, 3 * max(r["top1_drop_pt"] for r in front))
    if max(drops) > top:  # a far-off loser would squash the front: clip it to the edge and say so
        above = [d for d in drops if d > top]
        ax.set_ylim(min(drops) - 0.1 * top, top)
        ax.text(0.99, 0.98, f"{len(above)} dominated point(s) above, worst {max(above):+.1f} pt",
                transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#666666")
    ax.step([r["latency_median_ms"] for r in line], [r["top1_drop_pt"] for r in line], where="post",
            color="#444444", lw=1, zorder=1)
    ax.text(1.02, 1.0, "Pareto front\n" + "\n".join(notes), transform=ax.transAxes, va="top", fontsize=8,
            family="monospace")
    log_x(ax, [r["latency_median_ms"] for r in pts])
    ax.set_xlabel("batch-1 latency, median (ms)")
    ax.set_ylabel("top-1 drop vs FP32 (percentage points)")
    if simulated:
        ax.text(0.99, 0.02, f"{simulated} simulated low-bit case(s) left out (see the BitOps chart)",
                transform=ax.transAxes, ha="right", fontsize=8, color="#666666")
    ax.set_title(f"{model}: accuracy cost vs latency (front numbered, dominated points grey)")
    return png(fig)


def memory_chart(model: str, rows: list[dict]) -> bytes | None:
    mem = sorted((r for r in rows if r["peak_rss_mb"] is not None), key=lambda r: r["peak_rss_mb"])
    if not mem:
        return None
    fig, ax = plt.subplots(figsize=(7, height(len(mem))))
    ax.barh([f"{r['variant']} · {r['backend']}" for r in mem], [r["peak_rss_mb"] for r in mem],
            color=[backend_colour(r["backend"]) for r in mem])
    ax.set_xlabel("peak resident memory while loading and running (MB)")
    ax.set_title(f"{model}: peak memory per variant and backend")
    backend_legend(ax, {r["backend"] for r in mem})
    return png(fig)


STATUS = ("ok", "xfail", "over", "measured, budget not recorded", "not run")


def capability_chart(rows: list[dict]) -> bytes | None:
    keys = sorted({(r["model"], r["variant"]) for r in rows})
    backends = sorted({r["backend"] for r in rows})
    if not keys:
        return None
    status = {(r["model"], r["variant"], r["backend"]): (r["budget_verdict"] or STATUS[3]).split(":")[0] for r in rows}
    grid = [[STATUS.index(status.get((m, v, b), "not run")) for b in backends] for m, v in keys]
    fig, ax = plt.subplots(figsize=(1.2 * len(backends) + 4, 0.25 * len(keys) + 1.5))
    cmap = ListedColormap(["#4daf4a", "#ffcc33", "#e41a1c", "#a6cee3", "#eeeeee"])
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(STATUS) - 1, aspect="auto")
    ax.set_xticks(range(len(backends)), backends, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(keys)), [f"{m} · {v}" for m, v in keys], fontsize=7)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=s) for c, s in zip(cmap.colors, STATUS)], fontsize=8,
              bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title("capability matrix: model · variant x backend (budget verdict of the latency run)")
    return png(fig)


def compare_chart(model: str, runs: list[Run]) -> bytes | None:
    """Latency of each shared case in every later input relative to the first: < 1 faster, > 1 slower."""
    first = {(r["variant"], r["backend"]): r["latency_median_ms"] for r in runs[0].rows if r["model"] == model}
    series = []
    for run in runs[1:]:
        mine = {(r["variant"], r["backend"]): r["latency_median_ms"] for r in run.rows if r["model"] == model}
        series.append((run.source, {k: mine[k] / first[k] for k in first if first[k] and mine.get(k)}))
    cases = sorted({k for _, ratios in series for k in ratios})
    if not cases:
        return None
    fig, ax = plt.subplots(figsize=(7.5, height(len(cases) * len(series))))
    bar = 0.8 / len(series)
    hatches = ["", "//", "..", "xx"]
    from matplotlib.patches import Patch

    handles = []
    for j, (source, ratios) in enumerate(series):  # bars grow from 1.0: left is faster, right is slower
        ys = [i + j * bar for i, k in enumerate(cases) if k in ratios]
        ax.barh(ys, [ratios[k] - 1 for k in cases if k in ratios], height=bar, left=1,
                color=[backend_colour(k[1]) for k in cases if k in ratios], hatch=hatches[j % 4], edgecolor="white")
        handles.append(Patch(facecolor="#bbbbbb", edgecolor="white", hatch=hatches[j % 4], label=source))
    ax.axvline(1.0, color="#444444", lw=1)
    log_x(ax, [r for _, ratios in series for r in ratios.values()] + [1.0], wide=1)  # 0.5x and 2x alike
    ax.set_ylim(-0.6, len(cases) - 0.2)
    lo, hi = ax.get_xlim()  # 1-2-5 ticks leave a narrow ratio span with one label
    ticks = [t for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20) if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_yticks([i + 0.4 - bar / 2 for i in range(len(cases))], [f"{v} · {b}" for v, b in cases], fontsize=8)
    ax.set_xlabel(f"latency relative to {runs[0].source} (ratio of medians; < 1 is faster)")
    ax.set_title(f"{model}: the same cases on each input, relative to the first")
    ax.legend(handles=handles, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", title="input (colour: backend)",
              title_fontsize=8)
    return png(fig)


PER_MODEL = {"size": size_chart, "latency": latency_chart, "top1": accuracy_chart, "pareto": pareto_chart,
             "memory": memory_chart, "bitops": bitops_chart}


def all_charts(runs: list[Run]) -> dict[str, bytes]:
    """``charts/<model>-<chart>[-<source>].png`` -> PNG bytes, and ``charts/capability.png``."""
    out = {}
    for run in runs:
        suffix = f"-{run.source.removesuffix('.json')}" if len(runs) > 1 else ""
        for model in sorted({r["model"] for r in run.rows}):
            rows = [r for r in run.rows if r["model"] == model]
            for name, fn in PER_MODEL.items():
                if (image := fn(model, rows)) is not None:
                    out[f"charts/{model}-{name}{suffix}.png"] = image
        if (image := capability_chart(run.rows)) is not None:
            out[f"charts/capability{suffix}.png"] = image
    if len(runs) > 1:
        for model in sorted({r["model"] for r in runs[0].rows}):
            if (image := compare_chart(model, runs)) is not None:
                out[f"charts/{model}-compare.png"] = image
    return out
