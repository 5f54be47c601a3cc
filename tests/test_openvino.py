"""The OpenVINO runner (threads and f32 pinned) and NNCF's INT8 recipe on a tiny model."""
import numpy as np
import onnx
import pytest
import torch

from edgeopt import metrics
from edgeopt.backends import RunnerUnsupported, runner_class
from edgeopt.recipes import VARIANTS, build
from edgeopt.recipes.base import RecipeError
from edgeopt.recipes.nncf_quant import NncfInt8
from edgeopt.recipes.onnx_quant import op_histogram

X = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)


def test_openvino_pins_threads_streams_and_f32(tiny_model):
    """Unpinned, OpenVINO 2026.4 on this Zen 4 runs "FP32" in bfloat16 on both cores (measured)."""
    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    with runner_class("openvino")(artifact, threads=1) as runner:  # the default: every core
        props = {k: runner.compiled.get_property(k) for k in ("INFERENCE_NUM_THREADS", "NUM_STREAMS")}
        precision = runner.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert props == {"INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1} and precision.get_type_name() == "f32", (props, precision)


def test_an_operator_openvino_cannot_convert_is_unsupported_with_its_name(tiny_model, tmp_path):
    from onnx import TensorProto, helper

    from edgeopt.artifact import Artifact

    node = helper.make_node("QGemm", ["x"], ["y"], domain="com.microsoft")  # ORT's contrib op, not ONNX
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, str(tmp_path / "qgemm.onnx"))
    with pytest.raises(RunnerUnsupported, match="No conversion rule found for operations: com.microsoft.QGemm"):
        runner_class("openvino")(Artifact("m", "v", "onnx", tmp_path / "qgemm.onnx", "", None)).__enter__()


def test_nncf_int8_is_calibrated_qdq_onnx_that_both_runtimes_run(tiny_model, data_dir):
    weights = tiny_model.build()
    artifact = build(tiny_model, VARIANTS["nncf_int8"], weights, data_dir=data_dir)
    ops = op_histogram(artifact.path)
    assert ops.get("QuantizeLinear", 0) >= 1 and ops.get("DequantizeLinear", 0) >= 2
    assert artifact.meta["base"] == build(tiny_model, VARIANTS["onnx_fp32"], weights).key
    with torch.no_grad():
        reference = weights.module(torch.from_numpy(X)).numpy()
    for backend in ("openvino", "onnxruntime"):
        with runner_class(backend)(artifact) as runner:
            assert metrics.sqnr_db(reference, runner.run(X)) > 10, backend


def test_an_unknown_nncf_preset_is_a_recipe_error(tiny_model, data_dir):
    with pytest.raises(RecipeError, match="unknown NNCF preset 'fastest'; expected one of performance, mixed"):
        build(tiny_model, NncfInt8(name="bad", preset="fastest"), tiny_model.build(), data_dir=data_dir)
