"""Low-bit and mixed precision, simulated: per-layer 2-8 bit weights and activations with fake quantization.

Weights are quantized symmetric per output channel (torchao's affine primitives, levels -(2^(b-1)-1) ..
2^(b-1)-1) and stored dequantized; each covered layer's input is fake-quantized per tensor, asymmetric,
with a range calibrated (min/max) on training images.  The artifact is a frozen TorchScript module, so the
accuracy is real while the arithmetic is float: no CPU runtime here executes 2-6 bit kernels, and every
figure of these variants is labelled ``simulated`` in its metadata.  The first and last covered layers stay
at ``edge_bits`` (HAWQ-V3's practice).  ``schedule`` picks the other layers' weight bits:

- ``fixed``: every layer at ``weight_bits``;
- ``position``: the reference project's adaptive precision, bits falling linearly with depth from
  ``edge_bits`` to ``weight_bits`` (rounded to whole bits);
- ``sensitivity``: each layer at one of ``choices`` bits, picked by measured sensitivity under the BitOps of the
  ``budget`` schedule at the same ``weight_bits`` (edgeopt/recipes/mixed.py).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeopt import bitops, cache
from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_code, build_into
from edgeopt.recipes.export import example_input

SCHEDULES = ("fixed", "position", "sensitivity")
KINDS = ("conv", "depthwise", "linear")


@dataclass(frozen=True)
class LowBit(Recipe):
    name: str = "lowbit_w8a8"
    format = "torchscript"
    libraries = ("torchao",)
    build_helpers = ("edgeopt.recipes.mixed", "edgeopt.bitops")  # the sensitivity ILP and the BitOps it spends
    weight_bits: int = 8
    act_bits: int = 8
    edge_bits: int = 8
    layers: tuple[str, ...] = KINDS  # which layer kinds are quantized (the others stay float)
    schedule: str = "fixed"
    choices: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)  # sensitivity: the widths a layer may get
    budget: str = "fixed"  # sensitivity: at the BitOps of this schedule
    calibration_images: int = 256
    source: Recipe | None = None  # quantize this recipe's float model instead (a QAT fine-tune: recipes/qat.py)

    def __post_init__(self):
        for bits in (self.weight_bits, self.act_bits, self.edge_bits):
            if not 2 <= bits <= 8:
                raise ValueError(f"{self.name}: bit widths must be 2..8, got {bits}")
        if self.schedule not in SCHEDULES or not set(self.layers) <= set(KINDS) or self.budget == "sensitivity":
            raise ValueError(f"{self.name}: schedule must be one of {SCHEDULES}, layers a subset of {KINDS}")


def weight_qparams(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Symmetric per-output-channel scale, zero point and block size for ``bits``-bit weights."""
    from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine

    qmax = 2 ** (bits - 1) - 1
    block = (1, *weight.shape[1:])
    scale, zero = choose_qparams_affine(weight, MappingType.SYMMETRIC, block, torch.int8, -qmax, qmax,
                                        eps=torch.finfo(torch.float32).eps)
    return scale, zero, block


def quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer weights (int8 storage, ``bits`` significant) and their per-channel scales."""
    from torchao.quantization.quant_primitives import quantize_affine

    qmax = 2 ** (bits - 1) - 1
    scale, zero, block = weight_qparams(weight, bits)
    return quantize_affine(weight, block, scale, zero, torch.int8, -qmax, qmax), scale


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    from torchao.quantization.quant_primitives import dequantize_affine

    qmax = 2 ** (bits - 1) - 1
    q, _ = quantize_weight(weight, bits)
    scale, zero, block = weight_qparams(weight, bits)
    return dequantize_affine(q, block, scale, zero, torch.int8, -qmax, qmax)


def activation_qparams(low: float, high: float, bits: int) -> tuple[float, int]:
    """Per-tensor asymmetric scale and zero point covering [low, high] (and 0) with ``bits`` bits."""
    from torchao.quantization.quant_primitives import MappingType, choose_qparams_affine_with_min_max

    scale, zero = choose_qparams_affine_with_min_max(
        torch.tensor([min(low, 0.0)]), torch.tensor([max(high, 0.0)]), MappingType.ASYMMETRIC, (1,), torch.uint8,
        0, 2 ** bits - 1, eps=torch.finfo(torch.float32).eps)
    return float(scale), int(zero)


def fake_quantize_input(x: torch.Tensor, scale: float, zero: int, qmax: int) -> torch.Tensor:
    """``torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, qmax)``, bit for bit, in one buffer.

    ATen's kernel also builds the gradient mask; these five in-place ops halve a MobileNetV2-CIFAR W4A4 batch
    (docs/measurements/fake-quant.json). Both multiply by the float32 reciprocal and round half to even;
    ``torch.jit.freeze`` may fold the multiply into a preceding convolution, as it folds BatchNorm.
    """
    scale32 = np.float32(scale)
    return x.mul(float(np.float32(1) / scale32)).round_().add_(zero).clamp_(0, qmax).sub_(zero).mul_(float(scale32))


class _QuantInput(nn.Module):
    """The layer with its input fake-quantized per tensor (traced into the TorchScript graph)."""

    def __init__(self, layer: nn.Module, scale: float, zero: int, bits: int):
        super().__init__()
        self.layer, self.scale, self.zero, self.qmax = layer, scale, zero, 2 ** bits - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(fake_quantize_input(x, self.scale, self.zero, self.qmax))


def bit_plan(recipe: LowBit, layers: list[bitops.Layer]) -> list[bitops.Layer]:
    """Each layer with the weight and activation bits ``recipe`` gives it (float where not covered)."""
    covered = [i for i, lay in enumerate(layers) if lay.kind in recipe.layers]
    out = list(layers)
    for rank, i in enumerate(covered):
        edge = rank in (0, len(covered) - 1)
        if edge:
            w, a = recipe.edge_bits, recipe.edge_bits
        elif recipe.schedule == "position":
            depth = (rank - 1) / max(len(covered) - 3, 1)  # 0 at the second covered layer, 1 at the one before last
            w, a = round(recipe.edge_bits - (recipe.edge_bits - recipe.weight_bits) * depth), recipe.act_bits
        else:
            w, a = recipe.weight_bits, recipe.act_bits
        out[i] = replace(layers[i], weight_bits=w, act_bits=a)
    return out


def _input_ranges(model: nn.Module, names: set[str], batches) -> dict[str, list[float]]:
    ranges: dict[str, list[float]] = {}
    modules = dict(model.named_modules())

    def hook_for(name):
        def hook(_module, inputs):
            lo, hi = float(inputs[0].min()), float(inputs[0].max())
            old = ranges.setdefault(name, [lo, hi])
            old[0], old[1] = min(old[0], lo), max(old[1], hi)
        return hook

    handles = [modules[n].register_forward_pre_hook(hook_for(n)) for n in names]
    try:
        with torch.no_grad():
            for batch in batches:
                model(torch.from_numpy(batch))
    finally:
        for h in handles:
            h.remove()
    return ranges


def _sensitivity_plan(recipe: LowBit, model, layers, plan, ctx) -> list[bitops.Layer]:
    from edgeopt.recipes import mixed

    covered = [i for i, lay in enumerate(layers) if lay.kind in recipe.layers]
    limit = bitops.totals(bit_plan(replace(recipe, schedule=recipe.budget), layers))["bitops"]
    images = torch.from_numpy(np.concatenate(list(ctx.calibration_batches(64))))
    free = covered[1:-1]
    # The table does not depend on the budget: variants that differ only in it (lowbit_mixed, _w4a8) share one pass,
    # minutes on MobileNetV2-CIFAR.
    key = cache.digest({"weights": ctx.base_digest, "config": asdict(replace(recipe, name="", budget="fixed")),
                        "images": hashlib.sha256(images.numpy().tobytes()).hexdigest(), "code": build_code(recipe)})

    def measure(tmp: Path) -> None:
        table = mixed.sensitivities(model, [layers[i] for i in free], recipe.choices, images, fake_quantize_weight)
        tmp.write_text(json.dumps([[name, bits, value] for (name, bits), value in table.items()]))

    folder = (ctx.cache_root or cache.cache_dir()) / "sensitivity"
    path = cache.get_or_create(folder / f"{ctx.spec.name}-{key[:16]}.json", measure)
    scores = {(name, bits): value for name, bits, value in json.loads(path.read_text())}
    return mixed.assign(plan, free, recipe.choices, scores, limit)


def simulated_module(recipe: LowBit, model: nn.Module, ctx) -> tuple[nn.Module, list[bitops.Layer]]:
    """``model`` (changed in place) with fake-quantized weights and layer inputs, and each layer's bits."""
    layers = bitops.trace_layers(model, example_input(ctx.spec, 1))
    plan = bit_plan(recipe, layers)
    if recipe.schedule == "sensitivity":
        plan = _sensitivity_plan(recipe, model, layers, plan, ctx)
    quantized = [lay for lay in plan if lay.weight_bits < bitops.FLOAT_BITS]
    if not quantized:
        raise RecipeError(f"{recipe.name}: {ctx.spec.name} has no layer of the kinds {recipe.layers}")
    ranges = _input_ranges(model, {lay.name for lay in quantized}, ctx.calibration_batches(recipe.calibration_images))
    for lay in quantized:
        parent_name, _, attr = lay.name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = getattr(parent, attr)
        with torch.no_grad():
            layer.weight.copy_(fake_quantize_weight(layer.weight, lay.weight_bits))
        scale, zero = activation_qparams(*ranges[lay.name], lay.act_bits)
        setattr(parent, attr, _QuantInput(layer, scale, zero, lay.act_bits))
    return model, plan


@build_into.register
def _(recipe: LowBit, model, ctx, directory: Path) -> None:
    if recipe.source is not None:
        model = ctx.artifact(recipe.source).load_module()
    model, plan = simulated_module(recipe, model, ctx)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        with torch.no_grad():
            scripted = torch.jit.freeze(torch.jit.trace(model.eval(), example_input(ctx.spec, 2)))
        torch.jit.save(scripted, str(directory / "model.torchscript.pt"))
    write_meta(directory, file="model.torchscript.pt", format=recipe.format, simulated=True,
               layers=[lay.as_dict() for lay in plan], **bitops.totals(plan))
