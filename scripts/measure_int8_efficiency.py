"""How close ONNX Runtime's INT8 path comes to this core's INT8 peak: achieved ops/s per operator class against the
measured peak of an INT8 GEMM (and FP32 against an FP32 GEMM), one thread, batch 1, in one process.

The peak is the best of a few large ``MatMulInteger`` (u8 x s8 -> s32, the VNNI kernel QLinearConv uses) and
``MatMul`` shapes, timed by ONNX Runtime itself.  A model's operator classes (depthwise / pointwise / dense
convolution, Gemm) are timed by ``scripts/profile_ops.py``'s profiler on the suite's ``onnx_fp32`` and
``ort_int8_static`` artifacts; their MACs are counted from the FP32 graph's shapes.  An op is two MACs' worth of
arithmetic (a multiply and an add), as GEMM peaks are quoted.  Written to docs/measurements/int8-efficiency.json and a
generated table int8-efficiency.md.

    EDGEOPT_DATA=../shared/data .venv/bin/python scripts/measure_int8_efficiency.py
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.atomic import write_atomically
from edgeopt.machine import cpu_kind
from edgeopt.workbench import Workbench

DOCS = Path(__file__).resolve().parent.parent / "docs" / "measurements"
_spec = importlib.util.spec_from_file_location("profile_ops", Path(__file__).with_name("profile_ops.py"))
profile_ops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_ops)
#: (M, K, N) of the peak GEMMs: a square one and two shaped like the models' pointwise convolutions (M = pixels).
SHAPES = ((1024, 1024, 1024), (4096, 256, 256), (1024, 1152, 256))


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1  # the suite's pinning
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def gemm_peak(m: int, k: int, n: int, int8: bool, seconds: float) -> float:
    """Ops per second of one (M x K) @ (K x N) product, the best of repeated calls over ``seconds``."""
    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 255, (m, k), dtype=np.uint8)
        b = numpy_helper.from_array(rng.integers(-127, 127, (k, n), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_type, [m, k])],
                              [helper.make_tensor_value_info("Y", y_type, [m, n])], initializer=[b])
    session = _session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9))
    session.run(None, {"A": a})
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        session.run(None, {"A": a})
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best


def macs_by_class(path: Path) -> dict[str, int]:
    """MACs of the FP32 graph's Conv and Gemm nodes by profile_ops' operator classes."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in [*model.graph.value_info, *model.graph.output]:
        shapes[value.name] = [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]  # a symbolic batch: 1
    out: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight, output = shapes[node.input[1]], shapes[node.output[0]]
            out[profile_ops._conv_kind(node, shapes)] += int(np.prod(output)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            weight = shapes[node.input[1]]
            out["gemm"] += int(np.prod(weight))  # batch 1: one row
    return dict(out)


def _class_times(us_by_class: dict[str, float]) -> dict[str, float]:
    """profile_ops' classes ("conv pointwise (QLinearConv)", "QGemm", ...) folded onto macs_by_class' keys."""
    out: dict[str, float] = defaultdict(float)
    for name, us in us_by_class.items():
        for kind in ("conv depthwise", "conv pointwise", "conv dense"):
            if name.startswith(kind):
                out[kind] += us
        if name in ("Gemm", "QGemm", "FusedGemm", "MatMul", "QLinearMatMul"):
            out["gemm"] += us
    return dict(out)


def _markdown(result: dict) -> str:
    peak = result["peak_gops"]
    lines = ["<!-- generated by scripts/measure_int8_efficiency.py from int8-efficiency.json: do not edit -->",
             f"ONNX Runtime {result['onnxruntime']}, one thread, CPU kind `{result['cpu_kind']}`. Peak GEMM "
             f"(best of {len(SHAPES)} shapes): INT8 {peak['int8']:.0f} Gop/s, FP32 {peak['fp32']:.0f} Gop/s "
             f"({peak['int8'] / peak['fp32']:.1f}x). Achieved = 2 x MACs / kernel time, batch 1.", "",
             "| model | operator class | MMACs | FP32 us | FP32 Gop/s (% peak) | INT8 us | INT8 Gop/s (% peak) | "
             "INT8 speed-up |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        for kind, macs in row["macs"].items():
            fp, q = row["fp32_us"].get(kind), row["int8_us"].get(kind)
            if not fp or not q:
                continue
            def cell(us, which):
                gops = 2 * macs / us / 1e3
                return f"{gops:.1f} ({100 * gops / peak[which]:.0f}%)"
            lines.append(f"| {row['model']} | {kind} | {macs / 1e6:.1f} | {fp:.0f} | {cell(fp, 'fp32')} | {q:.0f} | "
                         f"{cell(q, 'int8')} | {fp / q:.2f}x |")
        total = sum(row["macs"].values())
        fp, q = row["fp32_total_us"], row["int8_total_us"]
        lines.append(f"| {row['model']} | **whole model** | {total / 1e6:.1f} | {fp:.0f} | "
                     f"{2 * total / fp / 1e3:.1f} ({100 * 2 * total / fp / 1e3 / peak['fp32']:.0f}%) | {q:.0f} | "
                     f"{2 * total / q / 1e3:.1f} ({100 * 2 * total / q / 1e3 / peak['int8']:.0f}%) | {fp / q:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*",
                        default=["simple_cnn", "cifar_resnet", "mobilenet_v2_cifar", "efficientnet_lite0"])
    parser.add_argument("--runs", type=int, default=200, help="profiled inferences per variant")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per peak GEMM shape")
    parser.add_argument("--out", type=Path, default=DOCS / "int8-efficiency.json")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    peak = {"int8": max(gemm_peak(*s, int8=True, seconds=args.seconds) for s in SHAPES) / 1e9,
            "fp32": max(gemm_peak(*s, int8=False, seconds=args.seconds) for s in SHAPES) / 1e9}
    print(f"peak GEMM: INT8 {peak['int8']:.0f} Gop/s, FP32 {peak['fp32']:.0f} Gop/s", flush=True)
    wb = Workbench(threads=1)
    rows = []
    for model in args.models:
        sample = wb.sample_input(model)
        fp32_path, int8_path = (wb.artifact(model, v).path for v in ("onnx_fp32", "ort_int8_static"))
        fp32, int8 = (profile_ops.profile(path, sample, args.runs) for path in (fp32_path, int8_path))
        rows.append({"model": model, "macs": macs_by_class(fp32_path),
                     "fp32_us": _class_times(fp32), "int8_us": _class_times(int8),
                     "fp32_total_us": sum(fp32.values()), "int8_total_us": sum(int8.values())})
        print(f"{model}: FP32 {rows[-1]['fp32_total_us']:.0f} us, INT8 {rows[-1]['int8_total_us']:.0f} us", flush=True)
    result = {"cpu_kind": cpu_kind(), "onnxruntime": ort.__version__, "gemm_shapes": SHAPES, "runs": args.runs,
              "peak_gops": peak, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out, json.dumps(result, indent=1) + "\n")
    write_atomically(args.out.with_suffix(".md"), _markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
