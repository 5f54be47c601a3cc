"""Low-bit configurations (edgeopt/recipes/lowbit.py) on trained models: whole-split top-1, agreement with FP32,
BitOps and weight memory as ratios of FP32, bits per layer; written to docs/measurements/lowbit.json.

    EDGEOPT_DATA=../shared/data .venv/bin/python scripts/measure_lowbit.py simple_cnn cifar_resnet
    ... measure_lowbit.py --configs lowbit_mixed,lowbit_mixed_w4a8 mobilenet_v2_cifar   (only those rows replaced)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeopt import metrics
from edgeopt.atomic import write_atomically
from edgeopt.machine import cpu_kind
from edgeopt.recipes import VARIANTS
from edgeopt.recipes.lowbit import LowBit
from edgeopt.workbench import Workbench

CONFIGS = tuple(r for r in VARIANTS.values() if isinstance(r, LowBit))
OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements" / "lowbit.json"


def measure(wb: Workbench, model: str, configs: tuple[LowBit, ...]) -> list[dict]:
    """Through the workbench, so the logits are the suite's cached ones (no second evaluation of a case)."""
    labels, ref = wb.split(model).labels, wb.reference(model)
    rows = [{"model": model, "config": "fp32", "top1": metrics.top1(ref, labels)}]
    for recipe in configs:
        out, meta = wb.outputs(model, recipe.name, "torchscript"), wb.artifact(model, recipe.name).meta
        rows.append({"model": model, "config": recipe.name, "top1": metrics.top1(out, labels),
                     "top1_agreement": metrics.top1_agreement(ref, out), "bitops_ratio": meta["bitops_ratio"],
                     "weight_memory_ratio": meta["weight_memory_ratio"],
                     "weight_bits": [lay["weight_bits"] for lay in meta["layers"]], "simulated": True})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--configs", type=lambda s: s.split(","), default=[r.name for r in CONFIGS],
                        help="comma-separated LowBit variants to (re)measure; other rows are kept")
    args = parser.parse_args(argv)
    if unknown := set(args.configs) - {r.name for r in CONFIGS}:
        parser.error(f"not LowBit variants: {', '.join(sorted(unknown))}")
    configs = tuple(r for r in CONFIGS if r.name in args.configs)
    wb = Workbench()
    names = {*args.configs, "fp32"}
    kept = [r for r in json.loads(OUT.read_text())["rows"]
            if r["model"] not in args.models or r["config"] not in names] if OUT.is_file() else []
    rows = kept + [r for m in args.models for r in measure(wb, m, configs)]
    model_order = list(dict.fromkeys(r["model"] for r in rows))
    config_order = ["fp32", *(r.name for r in CONFIGS)]
    rows.sort(key=lambda r: (model_order.index(r["model"]), config_order.index(r["config"])))
    write_atomically(OUT, json.dumps({"cpu_kind": cpu_kind(), "threads": 1, "rows": rows}, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
