"""Milliseconds per batch of a low-bit model with ATen's fake-quant kernel vs edgeopt's in-place ops, interleaved
(three rounds); written to docs/measurements/fake-quant.json. It chose lowbit.fake_quantize_input.

    EDGEOPT_DATA=../shared/data .venv/bin/python scripts/measure_fake_quant.py mobilenet_v2_cifar lowbit_w4a4
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from unittest import mock

import torch

from edgeopt.atomic import write_atomically
from edgeopt.data import batches
from edgeopt.machine import cpu_kind
from edgeopt.recipes import VARIANTS, BuildContext, lowbit
from edgeopt.workbench import Workbench

OUT = Path(__file__).resolve().parent.parent / "docs" / "measurements" / "fake-quant.json"


def aten(x, scale, zero, qmax):
    return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, qmax)


def main(model: str, variant: str) -> None:
    torch.set_num_threads(1)
    wb = Workbench(threads=1)
    spec, recipe, weights = wb.spec(model), VARIANTS[variant], wb.weights(model)
    ctx = BuildContext(spec, weights, None, None)
    torch_model = weights.module.eval()
    x = next(batches(wb.split(model).images, spec.mean, spec.std, spec.eval_batch))
    sides, ms = {}, {"aten": [], "edgeopt": []}
    for name, impl in (("aten", aten), ("edgeopt", lowbit.fake_quantize_input)):
        with mock.patch.object(lowbit, "fake_quantize_input", impl):
            sides[name] = torch.jit.freeze(torch.jit.trace(
                lowbit.simulated_module(recipe, copy.deepcopy(torch_model), ctx)[0], torch.from_numpy(x)))
    with torch.no_grad():
        # freeze folds BN and the first multiply into the preceding convolution, so frozen logits differ in rounding
        a, b = sides["aten"](torch.from_numpy(x)), sides["edgeopt"](torch.from_numpy(x))
        diff, same = float((a - b).abs().max()), float((a.argmax(1) == b.argmax(1)).float().mean())
        for _ in range(3):
            for name, m in sides.items():
                m(torch.from_numpy(x))
                start = time.perf_counter()
                for _ in range(10):
                    m(torch.from_numpy(x))
                ms[name].append(round((time.perf_counter() - start) * 100, 1))
        start = time.perf_counter()
        for _ in range(10):
            torch_model(torch.from_numpy(x))
        fp32 = round((time.perf_counter() - start) * 100, 1)
    print(variant, ms, "fp32 eager", fp32, "max logit diff", diff, "top-1 agreement", same, flush=True)
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[f"{model}/{variant}"] = {"cpu": cpu_kind(), "threads": 1, "batch": spec.eval_batch,
                                  "ms_per_batch": ms, "fp32_eager_ms_per_batch": fp32, "max_abs_logit_diff": diff,
                                  "top1_agreement_on_batch": same}
    write_atomically(OUT, json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
