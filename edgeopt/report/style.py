"""What every report chart shares: the Agg backend, one colour per backend, one marker per variant family, PNG output."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: CI and headless machines
import matplotlib.pyplot as plt  # noqa: E402

BACKEND_COLOURS = {"torch": "#1f77b4", "torchscript": "#aec7e8", "torch_compile": "#9467bd", "onnxruntime": "#ff7f0e",
                   "opencv": "#2ca02c", "opencv_classic": "#98df8a", "openvino": "#d62728", "executorch": "#8c564b"}
FAMILY_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^", "prune": "D", "bit": "P"}


def backend_colour(backend: str) -> str:
    return BACKEND_COLOURS.get(backend, "#7f7f7f")


def family(variant: str) -> str:
    for key in ("prune", "bit", "int8", "fp16"):
        if key in variant:
            return key
    return "fp32"


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def log_x(ax, values: list[float], wide: float = 20) -> None:
    """Log scale where the span passes ``wide``, ticks at 1-2-5 in plain numbers (default minor labels overlap)."""
    if max(values) / min(values) <= wide:
        return
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=20))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def height(n: int) -> float:
    return max(2.5, 0.32 * n + 1.2)


def backend_legend(ax, backends: set[str], loc: str = "lower right") -> None:
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=backend_colour(b), label=b) for b in sorted(backends)], fontsize=8,
              loc=loc, title="backend", title_fontsize=8)
