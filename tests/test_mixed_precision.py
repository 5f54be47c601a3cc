"""Sensitivity-based mixed precision: the ILP's choice by hand, the sensitivity measurement on a tiny net."""
import pytest
import torch
from torch import nn

from edgeopt.bitops import Layer
from edgeopt.recipes.lowbit import fake_quantize_weight
from edgeopt.recipes.mixed import assign, sensitivities


def _layers():
    return [Layer(f"l{i}", "conv", macs=m, weights=10, biases=0, weight_bits=8, act_bits=8)
            for i, m in enumerate((100, 100, 300, 100))]


def test_the_program_spends_bits_where_they_buy_the_most_accuracy():
    layers = _layers()
    # l1 is cheap and sensitive, l2 costly and robust: under the all-4-bit budget l1 gets 8 bits, l2 pays with 2
    sens = {("l1", 2): 9.0, ("l1", 4): 3.0, ("l1", 8): 0.0, ("l2", 2): 0.2, ("l2", 4): 0.1, ("l2", 8): 0.0}
    limit = 100 * 64 * 2 + (100 + 300) * 4 * 8  # edges l0, l3 at 8x8; l1 and l2 at 4x8
    plan = assign(layers, [1, 2], (2, 4, 8), sens, limit)
    assert [lay.weight_bits for lay in plan] == [8, 8, 2, 8]
    assert sum(lay.bitops for lay in plan) <= limit
    assert [lay.weight_bits for lay in assign(layers, [1, 2], (2, 4, 8), sens, 10 ** 9)] == [8, 8, 8, 8]
    with pytest.raises(ValueError, match="no assignment"):
        assign(layers, [1, 2], (2, 4, 8), sens, 100 * 64 * 2)


def test_sensitivity_falls_with_bits_and_leaves_the_weights_as_they_were():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    before = net[0].weight.detach().clone()
    layers = [Layer("0", "linear", 256, 256, 16)]
    scores = sensitivities(net, layers, (2, 4, 8), torch.randn(32, 16), fake_quantize_weight)
    assert scores["0", 2] > scores["0", 4] > scores["0", 8] > 0
    assert torch.equal(net[0].weight, before)


def test_a_sensitivity_budget_must_be_another_schedule():
    from edgeopt.recipes.lowbit import LowBit

    with pytest.raises(ValueError, match="schedule must be one of"):
        LowBit(name="m", schedule="sensitivity", budget="sensitivity")


def test_budgets_of_one_model_share_one_sensitivity_pass(tiny_model, data_dir, isolated_cache, monkeypatch):
    from edgeopt.recipes import build, mixed
    from edgeopt.recipes.lowbit import LowBit

    calls = []
    measure = mixed.sensitivities
    monkeypatch.setattr(mixed, "sensitivities", lambda *a: calls.append(1) or measure(*a))
    weights = tiny_model.build()
    for budget in ("position", "fixed"):
        build(tiny_model, LowBit(name=f"m_{budget}", schedule="sensitivity", budget=budget), weights, data_dir=data_dir)
    assert len(calls) == 1 and len(list((isolated_cache / "sensitivity").glob("tiny_test-????????????????.json"))) == 1
