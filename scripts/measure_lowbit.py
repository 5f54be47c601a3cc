"""Low-bit configurations (edgeopt/recipes/lowbit.py) on trained models: whole-split top-1, agreement with FP32,
BitOps and weight memory as ratios of FP32, bits per layer; written to docs/measurements/lowbit.json.

    EDGEOPT_DATA=../shared/data .venv/bin/python scripts/measure_lowbit.py simple_cnn cifar_resnet
    ... measure_lowbit.py --configs lowbit_mixed,lowbit_mixed_w4a8 mobilenet_v2_cifar   (only those rows replaced)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgeopt import metrics
from edgeopt.atomic import write_atomically
from edgeopt.backends import runner_class
from edgeopt.data import batches
from edgeopt.machine import cpu_kind
from edgeopt.recipes import VARIANTS, build
from edgeopt.recipes.lowbit import LowBit
from edgeopt.workbench import Workbench

CONFIGS = tuple(r for r in VARIANTS.values() if isinstance(r, LowBit))
OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements" / "lowbit.json"


def measure(wb: Workbench, model: str, configs: tuple[LowBit, ...]) -> list[dict]:
    spec, split = wb.spec(model), wb.split(model)
    ref = wb.reference(model)
    rows = [{"model": model, "config": "fp32", "top1": metrics.top1(ref, split.labels)}]
    for recipe in configs:
        art = build(spec, recipe, wb.weights(model), wb.cache_root, wb.data_dir)
        with runner_class("torchscript")(art, threads=wb.threads) as runner:
            out = np.concatenate([runner.run(x) for x in batches(split.images, spec.mean, spec.std, spec.eval_batch)])
        rows.append({"model": model, "config": recipe.name, "top1": metrics.top1(out, split.labels),
                     "top1_agreement": metrics.top1_agreement(ref, out), "bitops_ratio": art.meta["bitops_ratio"],
                     "weight_memory_ratio": art.meta["weight_memory_ratio"],
                     "weight_bits": [lay["weight_bits"] for lay in art.meta["layers"]], "simulated": True})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(models: list[str]) -> int:
    if not models:
        print(__doc__, file=sys.stderr)
        return 2
    configs = CONFIGS
    if models[0] == "--configs":
        names, models = set(models[1].split(",")), models[2:]
        configs = tuple(r for r in CONFIGS if r.name in names)
    wb = Workbench()
    names = {r.name for r in configs} | {"fp32"}
    kept = [r for r in json.loads(OUT.read_text())["rows"] if r["model"] not in models or r["config"] not in names] \
        if OUT.is_file() else []
    rows = kept + [r for m in models for r in measure(wb, m, configs)]
    model_order = list(dict.fromkeys(r["model"] for r in rows))
    config_order = ["fp32", *(r.name for r in CONFIGS)]
    rows.sort(key=lambda r: (model_order.index(r["model"]), config_order.index(r["config"])))
    write_atomically(OUT, json.dumps({"cpu_kind": cpu_kind(), "threads": 1, "rows": rows}, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
