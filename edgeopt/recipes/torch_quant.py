"""PyTorch INT8 recipes.  ``torch.ao.quantization`` is deprecated upstream (moving to torchao); it is
contained in this module, and its warnings are silenced here, narrowly."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, build_into
from edgeopt.recipes.export import example_input

_LAYERS = {"Linear": nn.Linear, "LSTM": nn.LSTM, "GRU": nn.GRU}


@dataclass(frozen=True)
class TorchDynamicInt8(Recipe):
    """``quantize_dynamic`` of the given layer types to INT8, saved as TorchScript (loads without unpickling code)."""

    name: str = "torch_int8_dynamic"
    format = "torchscript"
    layers: tuple[str, ...] = ("Linear",)


@build_into.register
def _(recipe: TorchDynamicInt8, model, ctx, directory: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        quantized = torch.ao.quantization.quantize_dynamic(model, {_LAYERS[n] for n in recipe.layers},
                                                           dtype=torch.qint8)
        with torch.no_grad():
            scripted = torch.jit.freeze(torch.jit.trace(quantized, example_input(ctx.spec, 2)))
        torch.jit.save(scripted, str(directory / "model.torchscript.pt"))
    count = sum(1 for m in quantized.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic"))
    write_meta(directory, file="model.torchscript.pt", format=recipe.format, quantized_modules=count)
