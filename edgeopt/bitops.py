"""Per-layer MACs, BitOps and weight memory of a network's convolutions and linear layers.

BitOps follow HAWQ-V3: MACs x weight bits x activation bits, summed over the layers that multiply
(Conv, Linear); a layer left in float counts 32 x 32.  Weight memory is weights x their bits plus biases
at 32 bits.  NNCF's "bit complexity" (FLOPs x weight bits) is another number; qonnx's ``inference_cost``
counts the same Conv/MatMul/Gemm MACs but discounts zero weights by default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

FLOAT_BITS = 32


@dataclass(frozen=True)
class Layer:
    """One multiplying layer, in the order the forward pass calls it."""

    name: str
    kind: str  # "conv", "depthwise" or "linear"
    macs: int  # per image
    weights: int
    biases: int
    weight_bits: int = FLOAT_BITS
    act_bits: int = FLOAT_BITS

    @property
    def bitops(self) -> int:
        return self.macs * self.weight_bits * self.act_bits

    @property
    def weight_memory_bits(self) -> int:
        return self.weights * self.weight_bits + self.biases * FLOAT_BITS

    def as_dict(self) -> dict:
        return {**asdict(self), "bitops": self.bitops}


def layer_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        return "depthwise" if module.groups > 1 and module.groups == module.in_channels else "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates per image: one per weight element per output position."""
    per_output = module.weight[0].numel()  # in_channels/groups x kernel (conv) or in_features (linear)
    return int(output[0].numel() * per_output)


def trace_layers(model: nn.Module, example: torch.Tensor) -> list[Layer]:
    """The Conv2d and Linear layers of ``model`` in call order, with their MACs for one image of ``example``."""
    seen: dict[str, Layer] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, _inputs, output):
        name = names[module]
        if name not in seen:  # a layer called twice (weight sharing) is counted at its first call only
            bias = module.bias.numel() if module.bias is not None else 0
            seen[name] = Layer(name, layer_kind(module), _macs(module, output), module.weight.numel(), bias)

    handles = [m.register_forward_hook(hook) for m in model.modules() if layer_kind(m)]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return list(seen.values())


def totals(layers: list[Layer]) -> dict:
    """BitOps and weight memory of ``layers``, absolute and as a ratio of the same layers in FP32."""
    fp32 = [Layer(lay.name, lay.kind, lay.macs, lay.weights, lay.biases) for lay in layers]
    bitops, ref_bitops = sum(lay.bitops for lay in layers), sum(lay.bitops for lay in fp32)
    memory, ref_memory = sum(lay.weight_memory_bits for lay in layers), sum(lay.weight_memory_bits for lay in fp32)
    return {"bitops": bitops, "bitops_ratio": bitops / ref_bitops, "weight_memory_bits": memory,
            "weight_memory_ratio": memory / ref_memory}
