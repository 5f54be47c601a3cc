"""Pruning recipes.  Unstructured L1 pruning zeroes weights in place: the file on disk keeps its size,
only its compressed size shrinks; the report shows both."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into


@dataclass(frozen=True)
class PruneL1Unstructured(Recipe):
    """Per-layer L1-magnitude unstructured pruning of every Conv2d and Linear weight by ``amount``."""

    name: str = "prune_l1_50"
    format = "torch"
    amount: float = 0.5


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights of Conv2d and Linear layers."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


@build_into.register
def _(recipe: PruneL1Unstructured, model, ctx, directory: Path) -> None:
    if not 0.0 < recipe.amount < 1.0:
        raise RecipeError(f"{recipe.name}: amount must be in (0, 1), got {recipe.amount}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(module, "weight", amount=recipe.amount)
            prune.remove(module, "weight")
    torch.save(model.state_dict(), directory / "model.pt")
    write_meta(directory, file="model.pt", format=recipe.format, sparsity=sparsity(model), amount=recipe.amount)
