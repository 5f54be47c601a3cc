"""Reduced-precision PyTorch: the whole network in bfloat16 (fast where the CPU has AVX512-BF16 or AMX)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, build_into
from edgeopt.recipes.export import example_input

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class TorchHalf(Recipe):
    """Weights and compute in ``dtype``; the traced module takes and returns float32 like every other artifact."""

    name: str = "torch_bf16"
    format = "torchscript"
    dtype: str = "bfloat16"


class _CastIO(nn.Module):
    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model.to(dtype), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


@build_into.register
def _(recipe: TorchHalf, model, ctx, directory: Path) -> None:
    wrapped = _CastIO(model, _DTYPES[recipe.dtype]).eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        with torch.no_grad():
            scripted = torch.jit.freeze(torch.jit.trace(wrapped, example_input(ctx.spec, 2)))
        torch.jit.save(scripted, str(directory / "model.torchscript.pt"))
    write_meta(directory, file="model.torchscript.pt", format=recipe.format, dtype=recipe.dtype)
