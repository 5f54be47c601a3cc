"""Sensitivity-based mixed precision: each layer's output error at each candidate weight width, measured on
calibration images, then an integer linear program picks one width per layer.

The program is HAWQ-V3's (minimise the summed sensitivity under a BitOps limit), solved with scipy's ``milp``
(HiGHS) rather than PuLP: scipy is already a dependency for the gate's statistics, and the problem (one binary
per layer and width, one budget row) is small.  Sensitivity is the output error, not a Hessian trace: the mean
squared change of the logits, relative to their variance, when that layer alone is quantized.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from edgeopt import bitops


def sensitivities(model: nn.Module, layers: list[bitops.Layer], choices: tuple[int, ...], images: torch.Tensor,
                  fake_quantize) -> dict[tuple[str, int], float]:
    """(layer name, weight bits) -> relative logit MSE with only that layer's weights at those bits."""
    out = {}
    with torch.no_grad():
        ref = model(images)
        scale = float(ref.var()) or 1.0
        for lay in layers:
            weight = model.get_submodule(lay.name).weight
            original = weight.detach().clone()
            for bits in choices:
                weight.copy_(fake_quantize(original, bits))
                out[lay.name, bits] = float(((model(images) - ref) ** 2).mean()) / scale
            weight.copy_(original)
    return out


def assign(layers: list[bitops.Layer], free: list[int], choices: tuple[int, ...],
           sensitivity: dict[tuple[str, int], float], bitops_limit: int) -> list[bitops.Layer]:
    """The plan with each layer in ``free`` at the width that minimises the summed sensitivity, all layers'
    BitOps at most ``bitops_limit`` (the others keep their bits)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    if not free:
        return list(layers)
    fixed = sum(lay.bitops for i, lay in enumerate(layers) if i not in free)
    n, k = len(free), len(choices)
    cost = np.array([sensitivity[layers[i].name, b] for i in free for b in choices])
    # BitOps as fractions of the limit: the solver's tolerances then apply to numbers near 1, not near 1e11
    ops = np.array([layers[i].macs * b * layers[i].act_bits for i in free for b in choices]) / bitops_limit
    one_each = np.kron(np.eye(n), np.ones(k))
    result = milp(cost, integrality=np.ones(n * k), bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(ops, -np.inf, 1 - fixed / bitops_limit)])
    if result.x is None:
        raise ValueError(f"no assignment of {choices} bits fits {bitops_limit} BitOps ({result.message})")
    picks = result.x.reshape(n, k).argmax(axis=1)
    out = list(layers)
    for i, pick in zip(free, picks):
        out[i] = replace(layers[i], weight_bits=choices[pick])
    return out
