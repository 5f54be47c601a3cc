"""Top-1 vs BitOps per model: what each low-bit configuration keeps for the arithmetic it saves (issue 20).

BitOps are MACs x weight bits x activation bits (HAWQ-V3), as a ratio to FP32's 32 x 32, so the FP32 reference
sits at 1 by that definition; the low-bit points are simulated (fake quantization), their accuracy measured.
"""
from __future__ import annotations

from edgeopt.report.style import FAMILY_MARKERS, backend_colour, family, png  # Agg first

import matplotlib.pyplot as plt  # noqa: E402


def _front(pts: list[dict]) -> list[dict]:
    """Points no other point beats on both fewer BitOps and higher top-1, by BitOps."""
    return sorted((r for r in pts if not any(o["bitops_ratio"] <= r["bitops_ratio"] and o["top1"] >= r["top1"]
                                            and (o["bitops_ratio"], o["top1"]) != (r["bitops_ratio"], r["top1"])
                                            for o in pts)), key=lambda r: r["bitops_ratio"])


def bitops_chart(model: str, rows: list[dict]) -> bytes | None:
    low = [r for r in rows if r["bitops_ratio"] and r["top1"] is not None]
    if len(low) < 2:
        return None
    ref = next((r for r in rows if (r["variant"], r["backend"]) == ("fp32", "torch") and r["top1"] is not None), None)
    pts = low + ([{**ref, "bitops_ratio": 1.0}] if ref else [])
    front = _front(pts)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for r in pts:
        on = r in front
        ax.scatter(r["bitops_ratio"], 100 * r["top1"], marker=FAMILY_MARKERS[family(r["variant"])], s=50,
                   color=backend_colour(r["backend"]) if on else "#bbbbbb", edgecolor="#333333" if on else "none",
                   zorder=3 if on else 2)
        if r["variant"] != "fp32":  # the FP32 line's own label names it
            # front labels above-left of the step, dominated ones below-right, so neighbours do not collide
            ax.annotate(r["variant"].removeprefix("lowbit_"), (r["bitops_ratio"], 100 * r["top1"]),
                        xytext=(-4, 5) if on else (4, -10), ha="right" if on else "left", textcoords="offset points",
                        fontsize=7, color="#222222" if on else "#888888")
    ax.step([r["bitops_ratio"] for r in front], [100 * r["top1"] for r in front], where="pre", color="#444444", lw=1,
            zorder=1)
    if ref:
        ax.axhline(100 * ref["top1"], ls="--", lw=0.8, color="#666666")
        ax.text(1.0, 100 * ref["top1"], "FP32 ", va="bottom", ha="right", fontsize=8, color="#666666")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("BitOps relative to FP32 (MACs x weight bits x activation bits; log 2)")
    ax.set_ylabel("top-1 (%)")
    floor, top = min(100 * r["top1"] for r in front), max(100 * r["top1"] for r in front)
    low = floor - 0.3 * (top - floor) - 1
    if min(100 * r["top1"] for r in pts) < low:  # a collapsed configuration would squash the front
        ax.set_ylim(low, top + 0.15 * (top - floor) + 0.5)
        ax.text(0.01, 0.02, "points below the axis: collapsed configurations (see the table)", transform=ax.transAxes,
                fontsize=8, color="#666666")
    ax.set_title(f"{model}: top-1 vs BitOps (simulated low-bit; grey: dominated)")
    return png(fig)
