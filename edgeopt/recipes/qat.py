"""Quantization-aware fine-tune for the simulated low-bit recipe: the float weights trained through a bit plan.

During the fine-tune each covered layer's weight is fake-quantized per output channel at its planned bits and its
input per tensor at the range calibrated on the base model (the same quantizers the ``LowBit`` build applies),
with straight-through gradients, so the latent float weights learn to sit well on the grid.  The artifact is
that float state dict; ``LowBit(source=QatFinetune(target=...))`` then quantizes it as it would the base model.
Seeded and committed like the other fine-tunes (``edgeopt finetune MODEL VARIANT``).  Written here rather than
with Brevitas or torchao's QAT: both swap in their own layer classes, and the fine-tune must train exactly the
quantizers of ``edgeopt/recipes/lowbit.py`` that the build then applies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from edgeopt import bitops
from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import example_input
from edgeopt.recipes.lowbit import (LowBit, _input_ranges, activation_qparams, bit_plan, fake_quantize_input,
                                    fake_quantize_weight)
from edgeopt.recipes.pruning import _check_threads, _load_committed, finetune


class _FakeQuantWeight(nn.Module):
    """A weight parametrization: fake-quantized forward, identity (straight-through) backward."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (fake_quantize_weight(weight.detach(), self.bits) - weight).detach()


def _input_hook(scale: float, zero: int, bits: int):
    def hook(_module, inputs):
        x = inputs[0]
        return (x + (fake_quantize_input(x.detach(), scale, zero, 2 ** bits - 1) - x).detach(),)
    return hook


@dataclass(frozen=True)
class QatFinetune(Recipe):
    name: str = "qat_w4a8"
    format = "torch"
    trains = True
    build_helpers = ("edgeopt.recipes.lowbit", "edgeopt.train")  # the quantizers trained through, and the loop
    target: LowBit = field(default_factory=lambda: LowBit(name="lowbit_w4a8", weight_bits=4))
    finetune_epochs: int = 1
    finetune_lr: float = 0.005
    seed: int = 0
    threads: int = 1  # pinned like the seed: the fine-tuned weights depend on the thread count

    def __post_init__(self):
        if self.target.schedule == "sensitivity" or self.target.source is not None:
            raise ValueError(f"{self.name}: the target must be a fixed or position schedule on the base model "
                             "(a sensitivity plan measured after the fine-tune would differ from the one trained)")


@build_into.register
def _(recipe: QatFinetune, model, ctx, directory: Path) -> None:
    _check_threads(recipe)
    plan = [lay for lay in bit_plan(recipe.target, bitops.trace_layers(model, example_input(ctx.spec, 1)))
            if lay.weight_bits < bitops.FLOAT_BITS]
    if not plan:
        raise RecipeError(f"{recipe.name}: {ctx.spec.name} has no layer of the kinds {recipe.target.layers}")
    minutes = 0.0
    if (committed := ctx.committed_finetune(recipe)) is not None:
        _load_committed(model, committed, recipe)
    else:
        batches = ctx.calibration_batches(recipe.target.calibration_images)
        ranges = _input_ranges(model, {lay.name for lay in plan}, batches)
        handles = []
        for lay in plan:
            layer = model.get_submodule(lay.name)
            parametrize.register_parametrization(layer, "weight", _FakeQuantWeight(lay.weight_bits))
            scale, zero = activation_qparams(*ranges[lay.name], lay.act_bits)
            handles.append(layer.register_forward_pre_hook(_input_hook(scale, zero, lay.act_bits)))
        try:
            minutes = finetune(model, ctx, recipe.finetune_epochs, recipe.finetune_lr, recipe.seed, recipe.threads)
        finally:
            for handle in handles:
                handle.remove()
            for lay in plan:  # keep the latent float weights: the LowBit build quantizes them
                parametrize.remove_parametrizations(model.get_submodule(lay.name), "weight",
                                                    leave_parametrized=False)
    model.eval()
    torch.save(model.state_dict(), directory / "model.pt")
    write_meta(directory, file="model.pt", format=recipe.format, finetune_epochs=recipe.finetune_epochs,
               finetune_minutes=round(minutes, 2), finetune_committed=committed is not None,
               qat_weight_bits=[lay.weight_bits for lay in plan])
