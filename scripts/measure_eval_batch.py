"""Seconds to evaluate the first N images of a model's split at several batch sizes, per backend, interleaved
(each size once per round, two rounds); written to docs/measurements/eval-batch.json. It chose ModelSpec.eval_batch.

    EDGEOPT_DATA=../shared/data .venv/bin/python scripts/measure_eval_batch.py mobilenet_v2_cifar 1000 \
        10,25,50,250 fp32:torch,torchscript:torchscript,ort_int8_dynamic:onnxruntime,onnx_fp32:opencv_classic
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgeopt.atomic import write_atomically
from edgeopt.backends import runner_class
from edgeopt.data import batches
from edgeopt.machine import cpu_kind
from edgeopt.workbench import Workbench

OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements" / "eval-batch.json"


def main(model: str, n: int, sizes: list[int], pairs: list[tuple[str, str]]) -> None:
    wb = Workbench(threads=1)
    spec, images = wb.spec(model), wb.split(model).images[:n]
    rows = []
    for variant, backend in pairs:
        with runner_class(backend)(wb.artifact(model, variant), threads=1) as runner:
            runner.run(next(batches(images, spec.mean, spec.std, sizes[0])))  # warm-up
            seconds: dict[int, list[float]] = {size: [] for size in sizes}
            for _ in range(2):
                for size in sizes:
                    start = time.perf_counter()
                    for x in batches(images, spec.mean, spec.std, size):
                        runner.run(x)
                    seconds[size].append(round(time.perf_counter() - start, 2))
        rows.append({"variant": variant, "backend": backend, "seconds": {str(k): v for k, v in seconds.items()}})
        print(variant, backend, seconds, flush=True)
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[model] = {"cpu": cpu_kind(), "threads": 1, "images": n, "rows": rows}
    write_atomically(OUT, json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")],
         [tuple(p.split(":")) for p in sys.argv[4].split(",")])
