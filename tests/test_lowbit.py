"""Low-bit fake quantization: the quantizer's math on tiny layers, BitOps arithmetic, the bit plans, the artifact."""
import numpy as np
import pytest
import torch
from torch import nn

from edgeopt import bitops
from edgeopt.backends import runner_class
from edgeopt.recipes import build
from edgeopt.recipes.lowbit import (LowBit, activation_qparams, bit_plan, fake_quantize_input, fake_quantize_weight,
                                    quantize_weight)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_weight_round_trip_is_within_half_a_step_per_channel(bits):
    w = torch.randn(5, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 3.0, 10.0]).view(5, 1, 1, 1)
    q, scale = quantize_weight(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.abs().max() <= qmax and len(q.unique()) <= 2 * qmax + 1
    torch.testing.assert_close(scale.flatten(), w.flatten(1).abs().amax(1) / qmax)  # one scale per output channel
    err = (fake_quantize_weight(w, bits) - w).abs().flatten(1).amax(1)
    assert torch.all(err <= scale.flatten() / 2 + 1e-7)


def test_activation_range_covers_zero_and_maps_the_ends_to_the_grid():
    scale, zero = activation_qparams(0.5, 3.5, 4)  # a ReLU output: the range is widened to include 0
    assert zero == 0 and scale == pytest.approx(3.5 / 15)
    scale, zero = activation_qparams(-1.0, 3.0, 4)
    assert scale == pytest.approx(4.0 / 15) and zero == round(1.0 / scale)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pw(torch.relu(self.dw(torch.relu(self.first(x))))).mean(dim=(2, 3)))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_the_fast_input_fake_quant_is_torchs_bit_for_bit(bits):
    x = torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(bits)) * 3
    for scale, zero in [(0.05, 1), (0.0137, 3), (0.3, 0)]:
        zero = min(zero, 2 ** bits - 1)
        want = torch.fake_quantize_per_tensor_affine(x, float(np.float32(scale)), zero, 0, 2 ** bits - 1)
        assert torch.equal(fake_quantize_input(x, scale, zero, 2 ** bits - 1), want)


def test_macs_bitops_and_weight_memory_by_hand():
    layers = bitops.trace_layers(Net(), torch.zeros(2, 3, 8, 8))
    assert [(lay.name, lay.kind) for lay in layers] == [("first", "conv"), ("dw", "depthwise"), ("pw", "conv"),
                                                         ("fc", "linear")]
    assert [lay.macs for lay in layers] == [64 * 8 * 27, 64 * 8 * 9, 64 * 16 * 8, 16 * 10]
    plan = bit_plan(LowBit(weight_bits=4, act_bits=6), layers)
    assert [(lay.weight_bits, lay.act_bits) for lay in plan] == [(8, 8), (4, 6), (4, 6), (8, 8)]
    t = bitops.totals(plan)
    macs = [13824, 4608, 8192, 160]
    assert t["bitops"] == 13824 * 64 + 4608 * 24 + 8192 * 24 + 160 * 64
    assert t["bitops_ratio"] == pytest.approx(t["bitops"] / (sum(macs) * 1024))
    weights, biases = [8 * 27, 8 * 9, 16 * 8, 16 * 10], [8, 8, 0, 10]
    assert t["weight_memory_bits"] == 216 * 8 + 72 * 4 + 128 * 4 + 160 * 8 + sum(biases) * 32
    assert t["weight_memory_ratio"] == pytest.approx(t["weight_memory_bits"] / ((sum(weights) + sum(biases)) * 32))


def test_position_schedule_falls_with_depth_and_layers_choose_what_is_covered():
    layers = [bitops.Layer(f"c{i}", "conv", 100, 10, 0) for i in range(7)] + [bitops.Layer("fc", "linear", 10, 10, 0)]
    plan = bit_plan(LowBit(weight_bits=2, schedule="position"), layers)
    assert [lay.weight_bits for lay in plan] == [8, 8, 7, 6, 4, 3, 2, 8]
    convs_only = bit_plan(LowBit(weight_bits=4, layers=("conv",)), layers)
    assert [lay.weight_bits for lay in convs_only] == [8, 4, 4, 4, 4, 4, 8, 32]


def test_bit_widths_outside_2_to_8_are_refused():
    with pytest.raises(ValueError, match="2..8"):
        LowBit(weight_bits=1)


def test_the_artifact_runs_on_torchscript_and_tracks_fp32_at_8_bits(tiny_model, data_dir):
    weights = tiny_model.build()
    x = np.random.default_rng(0).standard_normal((6, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = weights.module(torch.from_numpy(x)).numpy()
    outs = {}
    for bits in (8, 2):
        artifact = build(tiny_model, LowBit(name=f"w{bits}", weight_bits=bits, edge_bits=bits), weights,
                         data_dir=data_dir)
        assert artifact.meta["simulated"] and {lay["weight_bits"] for lay in artifact.meta["layers"]} == {bits}
        with runner_class("torchscript")(artifact) as runner:
            outs[bits] = runner.run(x)
    err8, err2 = (np.abs(outs[b] - ref).max() for b in (8, 2))
    assert err8 < 0.05 * np.abs(ref).max() and err2 > err8  # 8 bits close to FP32; 2 bits visibly not


def test_the_size_concern_carries_bitops_and_weight_memory_from_the_build(tiny_model, data_dir):
    from edgeopt.workbench import Workbench

    wb = Workbench(data_dir=data_dir)
    w8, w4 = (wb.size("tiny_test", v) for v in ("lowbit_w8a8", "lowbit_w4a8"))
    assert w8["simulated"] and w8["bitops_ratio"] == pytest.approx(8 * 8 / 32 ** 2)
    assert w8["weight_memory_ratio"] < 0.3 and w8["bitops"] == wb.macs("tiny_test") * 64
    assert w4["weight_bits"] == [8, 8] and w4["bitops"] == w8["bitops"]  # the tiny net is all first and last layer
    assert "bitops_ratio" not in wb.size("tiny_test", "torchscript")


def test_qonnx_counts_the_bits_edgeopt_assigned_on_the_onnx_export(tiny_model, data_dir):
    from edgeopt.qonnx_cost import inference_cost
    from edgeopt.recipes import VARIANTS
    from edgeopt.recipes.base import RecipeError

    weights = tiny_model.build()
    onnx_path = build(tiny_model, VARIANTS["onnx_fp32"], weights, data_dir=data_dir).path
    conv, fc = bitops.trace_layers(weights.module, torch.zeros(1, 3, 8, 8))
    layers = [dict(conv.as_dict(), weight_bits=4, act_bits=8), dict(fc.as_dict(), weight_bits=8)]  # fc input float
    cost = inference_cost(onnx_path, layers)
    # by hand: conv 8x8 pixels x 4 channels x 3x3x3, fc 4 x 3; BitOps MACs x weight bits x input bits
    assert cost["nodes"] == {"Conv_0": (64 * 4 * 27, 64 * 4 * 27 * 4 * 8), "Gemm_0": (12, 12 * 8 * 32)}
    assert cost["macs"] == 6912 + 12 and cost["uncounted"] == ["ReduceMean"]
    assert cost["bitops"] == 6912 * 4 * 8 + 12 * 8 * 32 and cost["weight_bits"] == 108 * 4 + 12 * 8
    with pytest.raises(RecipeError, match="no Conv/Gemm/MatMul reads renamed.weight"):
        inference_cost(onnx_path, [dict(layers[0], name="renamed")])
