"""Each variant of a tiny model is built, cached, and run on every backend that takes its format."""
import numpy as np
import onnx
import pytest
import torch

from edgeopt import recipes
from edgeopt.backends import BACKENDS, RunnerError, backends_for, runner_class
from edgeopt.recipes import VARIANTS, build
from edgeopt.recipes.base import RecipeError
from edgeopt.recipes.export import OnnxExport

X = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def reference(tiny_model):
    module = tiny_model.build().module
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def test_every_format_has_a_backend():
    assert {recipe.format for recipe in VARIANTS.values()} <= {f for b in BACKENDS for f in runner_class(b).formats}


LOSSLESS = ["fp32", "torchscript", "onnx_fp32", "executorch_fp32"]


@pytest.mark.parametrize("variant", LOSSLESS)
def test_variant_runs_on_each_backend_like_the_reference(tiny_model, reference, variant):
    artifact = build(tiny_model, VARIANTS[variant], tiny_model.build())
    assert artifact.path.is_file() and artifact.size_bytes > 0
    for backend in backends_for(artifact.format):
        with runner_class(backend)(artifact, threads=1) as runner:
            out = runner.run(X)
        assert out.shape == (5, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, reference, atol=1e-5, err_msg=f"{variant} on {backend}")


def test_onnx_export_pins_opset_keeps_weights_inside_and_batch_dynamic(tiny_model):
    artifact = build(tiny_model, OnnxExport(opset=18, dynamo=True), tiny_model.build())
    model = onnx.load(str(artifact.path), load_external_data=False)
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert list(artifact.path.parent.glob("*.data")) == []
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert artifact.meta["dynamo"] is True


def test_second_build_is_a_cache_hit(tiny_model, monkeypatch):
    weights = tiny_model.build()
    first = build(tiny_model, VARIANTS["onnx_fp32"], weights)
    monkeypatch.setattr(recipes, "build_into", lambda *a: pytest.fail("rebuilt a cached artifact"))
    assert build(tiny_model, VARIANTS["onnx_fp32"], weights).path == first.path


def test_cache_key_follows_weights_and_recipe(tiny_model):
    weights = tiny_model.build()
    a = build(tiny_model, OnnxExport(opset=18), weights)
    assert build(tiny_model, OnnxExport(opset=17), weights).key != a.key
    with torch.no_grad():
        weights.module.fc.bias.add_(1.0)
    assert build(tiny_model, OnnxExport(opset=18), weights).key != a.key


def test_recipe_does_not_mutate_the_model(tiny_model):
    weights = tiny_model.build()
    before = {k: v.clone() for k, v in weights.module.state_dict().items()}
    for name in LOSSLESS + ["prune_l1_50", "torch_int8_dynamic"]:
        build(tiny_model, VARIANTS[name], weights)
    after = weights.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not weights.module.training


def test_export_failure_is_one_readable_error(tiny_model):
    class Unexportable(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x).real.flatten(1)  # no ONNX translation

    from dataclasses import replace

    spec = replace(tiny_model, name="bad_export", factory=Unexportable, load_weights=None)
    with pytest.raises(RecipeError, match="ONNX export .* of bad_export failed"):
        build(spec, VARIANTS["onnx_fp32"], spec.build())


def test_runner_rejects_wrong_format_and_unreadable_files(tiny_model, tmp_path):
    artifact = build(tiny_model, VARIANTS["fp32"], tiny_model.build())
    with pytest.raises(RunnerError, match="runs onnx artifacts"):
        runner_class("onnxruntime")(artifact)
    from dataclasses import replace

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    bad = replace(artifact, format="onnx", path=broken, factory=None)
    for backend in ("onnxruntime", "opencv"):
        with pytest.raises(RunnerError, match=f"{backend} could not load broken.onnx"):
            runner_class(backend)(bad).__enter__()


def test_opencv_engines(tiny_model, reference):
    import cv2

    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    for engine in ("auto", "new", "classic")[:None if hasattr(cv2.dnn, "ENGINE_CLASSIC") else 2]:
        with runner_class("opencv")(artifact, engine=engine) as runner:
            np.testing.assert_allclose(runner.run(X), reference, atol=1e-5, err_msg=engine)
    with pytest.raises(ValueError, match="unknown OpenCV DNN engine"):
        runner_class("opencv")(artifact, engine="turbo")


def test_an_opencv_without_the_classic_engine_makes_opencv_classic_unavailable(tiny_model, reference, monkeypatch):
    import cv2

    from edgeopt.backends import RunnerUnavailable

    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    new_engine = getattr(cv2.dnn, "ENGINE_NEW", getattr(cv2.dnn, "ENGINE_OPENCV", None))
    if new_engine is None:
        pytest.skip(f"OpenCV {cv2.__version__} has a single DNN engine")
    for name in ("ENGINE_CLASSIC", "ENGINE_NEW"):  # as OpenCV 5.1 has them: ENGINE_AUTO, ENGINE_OPENCV, ENGINE_ORT
        monkeypatch.delattr(cv2.dnn, name, raising=False)
    monkeypatch.setattr(cv2.dnn, "ENGINE_OPENCV", new_engine, raising=False)
    with pytest.raises(RunnerUnavailable, match="has no classic DNN engine .*ENGINE_OPENCV"):
        runner_class("opencv_classic")(artifact).__enter__()
    with runner_class("opencv")(artifact, engine="new") as runner:
        np.testing.assert_allclose(runner.run(X), reference, atol=1e-5)


def test_an_operator_the_runtime_does_not_implement_is_reported_as_unsupported(tmp_path):
    from onnx import TensorProto, helper

    from edgeopt.artifact import Artifact
    from edgeopt.backends import RunnerUnsupported

    node = helper.make_node("Acos", ["x"], ["y"])  # valid ONNX; ORT's CPU provider has no float64 kernel
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = tmp_path / "acos.onnx"
    onnx.save(model, str(path))
    with pytest.raises(RunnerUnsupported, match="NOT_IMPLEMENTED.*Acos"):
        runner_class("onnxruntime")(Artifact("m", "v", "onnx", path, "", None)).__enter__()


def test_opencv_classic_is_its_own_backend(tiny_model, reference):
    artifact = build(tiny_model, VARIANTS["onnx_fp32"], tiny_model.build())
    assert {"opencv", "opencv_classic"} <= set(backends_for("onnx"))
    if not hasattr(__import__("cv2").dnn, "ENGINE_CLASSIC"):
        pytest.skip("this OpenCV has no classic engine (see the test above)")
    with runner_class("opencv_classic")(artifact) as runner:
        assert runner.engine == "classic"
        np.testing.assert_allclose(runner.run(X), reference, atol=1e-5)
