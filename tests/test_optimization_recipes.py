"""Structure of each optimization recipe's artifact on a tiny model, and that its runtime runs it."""
import gzip

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgeopt import metrics
from edgeopt.backends import runner_class
from edgeopt.recipes import VARIANTS, BuildContext, _data_identity, build
from edgeopt.recipes.base import RecipeError
from edgeopt.recipes.export import OnnxExport
from edgeopt.recipes.onnx_quant import OrtStaticInt8, op_histogram
from edgeopt.recipes.pruning import PruneL1Unstructured
from tests.conftest import quantized_conv_weights, write_image_folder

X = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def weights(tiny_model):
    return tiny_model.build()


@pytest.fixture
def reference(weights):
    with torch.no_grad():
        return weights.module(torch.from_numpy(X)).numpy()


def run(artifact, backend="onnxruntime"):
    with runner_class(backend)(artifact) as runner:
        return runner.run(X)


def test_fp16_halves_weights_and_keeps_fp32_io(tiny_model, weights, reference, data_dir):
    artifact = build(tiny_model, VARIANTS["onnx_fp16"], weights, data_dir=data_dir)
    model = onnx.load(str(artifact.path))
    float_types = {t.data_type for t in model.graph.initializer} & {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    assert float_types == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert metrics.sqnr_db(reference, run(artifact)) > 40


def test_fp16_counts_weights_it_clamps_instead_of_warning(tiny_model, data_dir, recwarn):
    weights = tiny_model.build()
    with torch.no_grad():
        next(weights.module.parameters()).view(-1)[0] = 1e-9  # below FP16's range: clamped to 1e-7
    artifact = build(tiny_model, VARIANTS["onnx_fp16"], weights, data_dir=data_dir)
    assert artifact.meta["fp16_clamp_warnings"] >= 1
    assert not [w for w in recwarn if "will be truncated" in str(w.message)]


def test_dynamic_int8_default_makes_conv_integer_and_the_fallback_does_not(tiny_model, weights, reference, data_dir):
    default = build(tiny_model, VARIANTS["ort_int8_dynamic"], weights, data_dir=data_dir)
    fallback = build(tiny_model, VARIANTS["ort_int8_dynamic_matmul"], weights, data_dir=data_dir)
    assert default.meta["ops"].get("ConvInteger", 0) >= 1
    assert "ConvInteger" not in fallback.meta["ops"] and fallback.meta["ops"]["Conv"] == 1
    assert fallback.meta["ops"].get("MatMulInteger", 0) >= 1
    assert op_histogram(default.path) == default.meta["ops"]
    for artifact in (default, fallback):
        assert metrics.top1_agreement(reference, run(artifact)) >= 0.5
        assert metrics.sqnr_db(reference, run(artifact)) > 10


def test_static_int8_qdq_has_per_channel_weight_scales(tiny_model, weights, reference, data_dir):
    artifact = build(tiny_model, VARIANTS["ort_int8_static"], weights, data_dir=data_dir)
    model = onnx.load(str(artifact.path))
    ops = op_histogram(artifact.path)
    assert ops.get("QuantizeLinear", 0) >= 1 and ops.get("DequantizeLinear", 0) >= 2
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    conv_w_scales = [inits[n.input[1]] for n in model.graph.node
                     if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                     and inits[n.input[0]].ndim == 4]
    assert conv_w_scales and conv_w_scales[0].shape == (4,)  # one scale per output channel of the conv
    act_zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.uint8 for z in act_zero_points)  # U8S8: uint8 activations
    assert metrics.sqnr_db(reference, run(artifact)) > 10
    assert artifact.meta["calibration_images"] == VARIANTS["ort_int8_static"].calibration_images


def _activation_scales(artifact) -> list[float]:
    model = onnx.load(str(artifact.path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return sorted(float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear")


def _weight_dequantizers(artifact) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scale, zero point) of each DequantizeLinear fed by a 4-D weight initializer."""
    model = onnx.load(str(artifact.path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [(inits[n.input[1]], inits[n.input[2]]) for n in model.graph.node
            if n.op_type == "DequantizeLinear" and getattr(inits.get(n.input[0]), "ndim", 0) == 4]


def test_calibration_sweep_changes_one_choice_each(tiny_model, weights, reference, data_dir):
    default = build(tiny_model, VARIANTS["ort_int8_static"], weights, data_dir=data_dir)
    sweep = {name: build(tiny_model, VARIANTS[name], weights, data_dir=data_dir)
             for name in ("ort_int8_static_entropy", "ort_int8_static_percentile", "ort_int8_static_per_tensor",
                          "ort_int8_static_s8s8", "ort_int8_static_qoperator", "ort_int8_static_reduce_range")}
    assert sweep["ort_int8_static_entropy"].meta["calibrate_method"] == "Entropy"
    # Percentile (99.999) clips the tails MinMax keeps.  (ORT's Entropy picks MinMax's ranges on this tiny model.)
    assert _activation_scales(sweep["ort_int8_static_percentile"]) != _activation_scales(default)
    [(scale, _)] = _weight_dequantizers(sweep["ort_int8_static_per_tensor"])
    assert scale.shape == ()  # one scale for the whole conv weight
    [(scale, _)] = _weight_dequantizers(default)
    assert scale.shape == (4,)
    s8s8 = onnx.load(str(sweep["ort_int8_static_s8s8"].path))
    inits = {t.name: numpy_helper.to_array(t) for t in s8s8.graph.initializer}
    assert {inits[n.input[2]].dtype for n in s8s8.graph.node if n.op_type == "QuantizeLinear"} == {np.dtype(np.int8)}
    qop = sweep["ort_int8_static_qoperator"].meta["ops"]
    assert qop.get("QLinearConv", 0) == 1 and "DequantizeLinear" in qop and "Conv" not in qop
    # reduce_range: 7-bit weights, so a u8 x s7 pair sum fits int16 on CPUs without VNNI.
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in quantized_conv_weights(default)) > 64
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in quantized_conv_weights(sweep["ort_int8_static_reduce_range"])) <= 64
    for name, artifact in sweep.items():
        assert metrics.sqnr_db(reference, run(artifact)) > 10, name


def test_calibration_reader_reads_in_ranges(tiny_model, weights, data_dir):
    from edgeopt.recipes.onnx_quant import _calibration_reader

    ctx = BuildContext(tiny_model, weights, None, data_dir)
    reader = _calibration_reader(ctx, "x", 12)
    assert len(reader) == 1
    first = reader.get_next()["x"]
    assert first.shape == (12, 3, 8, 8) and reader.get_next() is None
    reader.set_range(0, 1)
    np.testing.assert_array_equal(reader.get_next()["x"], first)


def test_calibration_uses_training_images_only(tiny_model, weights, data_dir):
    ctx = BuildContext(tiny_model, weights, None, data_dir)
    recipe = VARIANTS["ort_int8_static"]
    files = ctx.calibration_split(recipe.calibration_images).files
    assert len(files) == 12  # the tiny train tree, never the 15 evaluation images
    before = _data_identity(ctx, recipe)
    write_image_folder(data_dir / "tiny" / "test", per_class=7, seed=9)  # evaluation tree changes
    assert _data_identity(ctx, recipe) == before
    write_image_folder(data_dir / "tiny" / "train", per_class=5, seed=9)  # calibration tree changes
    assert _data_identity(ctx, recipe) != before


def _weight_types(artifact) -> list[int]:
    model = onnx.load(str(artifact.path))
    return [t.data_type for t in model.graph.initializer if t.name.endswith("weight_quantized")]


def test_four_bit_weights_are_packed_int4_at_opset_21_with_the_edges_kept_at_int8(tiny_model, weights, data_dir):
    w4 = OrtStaticInt8(name="w4", weight_type="QInt4", base=OnnxExport(opset=21))
    int4 = build(tiny_model, w4, weights, data_dir=data_dir)
    assert _weight_types(int4) == [onnx.TensorProto.INT4] * 2
    assert [o.version for o in onnx.load(str(int4.path)).opset_import if o.domain == ""] == [21]
    edges = build(tiny_model, OrtStaticInt8(name="w4e", weight_type="QInt4", edge_weight_type="QInt8",
                                            base=OnnxExport(opset=21)), weights, data_dir=data_dir)
    assert _weight_types(edges) == [onnx.TensorProto.INT8] * 2  # TinyNet's conv and fc are its first and last
    assert int4.path.stat().st_size < edges.path.stat().st_size
    with pytest.raises(RecipeError, match="opset >= 21"):
        build(tiny_model, OrtStaticInt8(name="w4_18", weight_type="QInt4"), weights, data_dir=data_dir)


def test_onnx_runtime_runs_a_file_with_the_session_config_its_recipe_wrote(tiny_model, weights, data_dir,
                                                                            monkeypatch):
    import onnxruntime as ort

    entries = []

    class Recording(ort.SessionOptions):
        def add_session_config_entry(self, key, value):
            entries.append((key, value))
            super().add_session_config_entry(key, value)

    config = (("session.disable_quant_qdq", "1"),)
    folded = build(tiny_model, OrtStaticInt8(name="fold", ort_session_config=config), weights, data_dir=data_dir)
    assert folded.meta["onnxruntime_session_config"] == dict(config)
    monkeypatch.setattr(ort, "SessionOptions", Recording)
    assert run(folded, "onnxruntime").shape == (6, 3) and entries == list(config)


def test_bad_quantization_option_is_a_recipe_error(tiny_model, weights, data_dir):
    with pytest.raises(RecipeError, match="unknown QuantType 'QInt7'"):
        build(tiny_model, OrtStaticInt8(name="bad", weight_type="QInt7"), weights, data_dir=data_dir)


def test_torch_dynamic_int8_is_torchscript_with_quantized_linear(tiny_model, weights, reference, data_dir):
    artifact = build(tiny_model, VARIANTS["torch_int8_dynamic"], weights, data_dir=data_dir)
    assert artifact.format == "torchscript" and artifact.meta["quantized_modules"] == 1
    assert "quantized" in str(torch.jit.load(str(artifact.path)).graph)
    assert metrics.sqnr_db(reference, run(artifact, "torchscript")) > 20


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_unstructured_pruning_zeroes_weights_but_keeps_the_raw_size(tiny_model, weights, data_dir, amount):
    pruned = build(tiny_model, PruneL1Unstructured(name=f"p{amount}", amount=amount), weights, data_dir=data_dir)
    dense = build(tiny_model, VARIANTS["fp32"], weights, data_dir=data_dir)
    assert pruned.meta["sparsity"] == pytest.approx(amount, abs=0.05)
    state = torch.load(pruned.path, weights_only=True)
    assert float((state["conv.weight"] == 0).float().mean()) == pytest.approx(amount, abs=0.05)
    assert abs(pruned.size_bytes - dense.size_bytes) < 64
    run(pruned, "torch")


def test_pruning_shrinks_the_compressed_file_of_a_real_sized_layer(tmp_path):
    from edgeopt.recipes.pruning import sparsity

    layer = torch.nn.Linear(256, 256)
    dense_path, pruned_path = tmp_path / "dense.pt", tmp_path / "pruned.pt"
    torch.save(layer.state_dict(), dense_path)
    torch.nn.utils.prune.l1_unstructured(layer, "weight", amount=0.7)
    torch.nn.utils.prune.remove(layer, "weight")
    torch.save(layer.state_dict(), pruned_path)
    assert sparsity(layer) == pytest.approx(0.7, abs=0.01)
    assert metrics.compressed_size_bytes(pruned_path) < 0.6 * metrics.compressed_size_bytes(dense_path)
    assert len(gzip.compress(dense_path.read_bytes())) == pytest.approx(metrics.compressed_size_bytes(dense_path), rel=0.05)


def test_invalid_pruning_amount(tiny_model, weights, data_dir):
    with pytest.raises(RecipeError, match="amount must be in"):
        build(tiny_model, PruneL1Unstructured(name="p", amount=1.5), weights, data_dir=data_dir)


def test_only_format_conversions_claim_to_be_lossless():
    assert {name for name, recipe in VARIANTS.items() if recipe.lossless} == {"fp32", "torchscript", "onnx_fp32", "executorch_fp32"}


def test_dynamo_export_needs_its_value_info_dropped_before_quantize_dynamic(tiny_model, weights, tmp_path):
    """The reason OrtDynamicInt8 clears value_info: ORT's quantizer chokes on the dynamo exporter's entries."""
    from onnxruntime.quantization import quantize_dynamic

    from edgeopt.recipes.onnx_quant import _load_without_value_info

    exported = build(tiny_model, VARIANTS["onnx_fp32"], weights).path
    raw = onnx.load(str(exported))
    if not raw.graph.value_info:
        pytest.skip("this exporter version writes no value_info")
    try:
        quantize_dynamic(raw, str(tmp_path / "raw.onnx"))
    except Exception as exc:  # onnx.shape_inference.InferenceError on torch 2.14 / ORT 1.31
        assert "ShapeInferenceError" in str(exc)
    quantize_dynamic(_load_without_value_info(exported), str(tmp_path / "clean.onnx"))
    assert (tmp_path / "clean.onnx").stat().st_size > 0
