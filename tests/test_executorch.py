"""ExecuTorch programs with the XNNPACK delegate on a tiny model, and their runner."""
import numpy as np
import pytest
import torch

from edgeopt import metrics
from edgeopt.backends import runner_class
from edgeopt.recipes import VARIANTS, build
from edgeopt.recipes.executorch import ExecuTorchXnnpack

X = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def weights(tiny_model):
    return tiny_model.build()


def _run(artifact, threads=1):
    with runner_class("executorch")(artifact, threads=threads) as runner:
        return runner.run(X), runner.threadpool


def test_fp32_program_is_delegated_and_computes_what_the_model_does(tiny_model, weights):
    artifact = build(tiny_model, VARIANTS["executorch_fp32"], weights)
    assert artifact.path.read_bytes()[4:8] == b"ET12"  # a flatbuffer program, nothing to unpickle
    # the tiny model's global mean (no keepdim) is the one op XNNPACK leaves to the portable kernels
    assert artifact.meta["delegates"] >= 1 and set(artifact.meta["undelegated_ops"]) <= {"mean"}
    out, threads = _run(artifact, threads=2)
    with torch.no_grad():
        np.testing.assert_allclose(out, weights.module(torch.from_numpy(X)).numpy(), atol=1e-5)
    assert threads == 2


def test_int8_program_is_calibrated_and_quantized(tiny_model, weights, data_dir):
    artifact = build(tiny_model, VARIANTS["executorch_int8"], weights, data_dir=data_dir)
    assert artifact.meta["int8"] and artifact.meta["calibration_images"] == 256
    with torch.no_grad():
        reference = weights.module(torch.from_numpy(X)).numpy()
    sqnr = metrics.sqnr_db(reference, _run(artifact)[0])
    assert 10 < sqnr < 60, sqnr  # close to the model, but not FP32


def test_int8_without_calibration_images_is_refused():
    with pytest.raises(ValueError, match="INT8 needs calibration images"):
        ExecuTorchXnnpack(name="bad", int8=True)


def test_global_max_pool_is_rewritten_into_the_core_aten_opset_with_the_same_values():
    from edgeopt.recipes.executorch import _core_aten

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten())
    x = torch.from_numpy(X)
    before = model(x)
    ops = {str(n.target) for n in torch.export.export(_core_aten(model), (x,)).run_decompositions().graph.nodes}
    assert "aten.adaptive_max_pool2d.default" not in ops and torch.equal(model(x), before)


def test_relu6_after_a_conv_is_quantized_over_its_clamped_range_not_the_conv_output():
    from types import SimpleNamespace

    from edgeopt.recipes.executorch import _quantized

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU6()).eval()
    with torch.no_grad():
        model[0].weight.mul_(20)  # conv outputs far beyond [0, 6], as in EfficientNet-Lite0
    x = torch.from_numpy(X)
    ctx = SimpleNamespace(spec=SimpleNamespace(input_size=(3, 8, 8)), calibration_batches=lambda n: [X])
    quantized = _quantized(model, ctx, VARIANTS["executorch_int8"])
    scales = [float(n.args[1]) for n in quantized.graph.nodes if "quantize_per_tensor" in str(n.target)
              and n.args[0].op != "placeholder" and "dequantize" not in str(n.target)]
    assert scales and max(scales) <= 6 / 255 * 1.01, scales  # [0, 6] over the int8 levels
    with torch.no_grad():
        assert metrics.sqnr_db(model(x).numpy(), quantized(x).numpy()) > 30
