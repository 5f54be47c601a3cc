"""Pruning recipes.

Unstructured L1 pruning zeroes weights in place: the file on disk keeps its size, only its compressed
size shrinks (the report shows both), and without fine-tuning accuracy collapses.  Structured
(channel) pruning with torch-pruning removes whole channels, so MACs, size and latency fall; a short,
seeded fine-tune on the model's training images recovers accuracy.  Fine-tuned artifacts are cached
like every other artifact, keyed by the training file listing too.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from edgeopt import metrics
from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import example_input


@dataclass(frozen=True)
class PruneL1Unstructured(Recipe):
    """Per-layer L1-magnitude unstructured pruning of every Conv2d and Linear weight by ``amount``,
    then (when ``finetune_epochs`` > 0) a fine-tune with the masks held fixed."""

    name: str = "prune_l1_50"
    format = "torch"
    build_helpers = ("edgeopt.train",)  # the fine-tune loop
    amount: float = 0.5
    finetune_epochs: int = 0
    finetune_lr: float = 0.01
    seed: int = 0
    # Pinned like the seed (see `finetune`): the fine-tuned weights depend on the thread count.
    threads: int = 1

    @property
    def trains(self) -> bool:
        return self.finetune_epochs > 0


@dataclass(frozen=True)
class PruneStructured(Recipe):
    """Channel pruning (torch-pruning, L2 group magnitude) of ``ratio`` of every prunable layer's channels,
    rounded to multiples of ``round_to`` (SIMD-friendly widths), then a fine-tune, distilling from the
    unpruned model when ``distill_weight`` > 0.  The classifier's outputs are never pruned.  The artifact
    is a state dict at the pruned widths."""

    name: str = "prune_structured"
    format = "torch"
    trains = True
    libraries = ("torch-pruning",)
    build_helpers = ("edgeopt.train",)
    # Measured (seed 0, on 2 threads): ratio 0.2 + 6 epochs kept SimpleCNN and the ResNet within 0.56 pt at
    # 0.58x MACs; 0.3 + 4 epochs cost 2.5 / 2.1 pt; distillation (weight 0.7) did not help (0.68 / 0.76 pt).
    # On 1 thread (the pinned count) 6 epochs cost the ResNet 1.08 pt, 8 epochs 0.88 pt: 8 it is.
    ratio: float = 0.2
    round_to: int = 8
    finetune_epochs: int = 8
    finetune_lr: float = 0.02
    # Knowledge distillation from the unpruned model during the fine-tune (0: labels only).
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    seed: int = 0
    # Pinned like the seed (see `finetune`): the fine-tuned weights depend on the thread count.
    threads: int = 1


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights of Conv2d and Linear layers."""
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def finetune(model: nn.Module, ctx, epochs: int, max_lr: float, seed: int, threads: int,
             teacher: nn.Module | None = None, distill_weight: float = 0.0, distill_temperature: float = 4.0) -> float:
    """Seeded fine-tune of ``model`` in place on the model's training images on ``threads`` threads,
    distilling from ``teacher`` when given; minutes taken.

    The thread count is a recipe field, not the machine's core count: the result then does not depend on
    the machine that built it, and two builds running side by side (``pytest -n 2`` on 2 cores) do not
    oversubscribe the cores (measured on MobileNetV2-CIFAR: 1.23 s/step on 2 threads alone, 1.7 s/step
    each for two 1-thread fine-tunes side by side, 7.7 s/step each for two 2-thread ones)."""
    from edgeopt.train import TrainConfig, fit

    split = ctx.training_split()
    # FP32, not bf16 autocast: without native bf16 (AVX512-BF16/AMX) autocast is emulated, measured on an AMD
    # EPYC (AVX2) at 14.95 s per ResNet step against 1.10 s in FP32; and the weights must not depend on the CPU.
    cfg = TrainConfig(epochs=epochs, batch_size=128, max_lr=max_lr, bf16=False)
    torch.manual_seed(seed)
    with _threads(threads):
        return fit(model, split, ctx.spec, cfg, np.random.default_rng(seed), desc=f"fine-tune {ctx.spec.name}",
                   teacher=teacher, distill_weight=distill_weight, distill_temperature=distill_temperature)


def _load_committed(model: nn.Module, state: dict, recipe) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # e.g. another torch-pruning version chose other channels
        raise RecipeError(f"{recipe.name}: the committed fine-tune does not fit the pruned model ({exc}); "
                          f"run `edgeopt finetune MODEL {recipe.name} --force` to redo it") from exc


def _check_fraction(name: str, field: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise RecipeError(f"{name}: {field} must be in (0, 1), got {value}")


def _check_threads(recipe) -> None:
    if recipe.threads < 1:
        raise RecipeError(f"{recipe.name}: threads must be >= 1, got {recipe.threads}")


@build_into.register
def _(recipe: PruneL1Unstructured, model, ctx, directory: Path) -> None:
    _check_fraction(recipe.name, "amount", recipe.amount)
    _check_threads(recipe)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        prune.l1_unstructured(layer, "weight", amount=recipe.amount)
    committed = ctx.committed_finetune(recipe) if recipe.trains else None
    minutes = 0.0
    if recipe.trains and committed is None:
        minutes = finetune(model, ctx, recipe.finetune_epochs, recipe.finetune_lr, recipe.seed, recipe.threads)
    for layer in layers:  # the masks held the pruned weights at zero during fine-tuning
        prune.remove(layer, "weight")
    if committed is not None:
        _load_committed(model, committed, recipe)
    torch.save(model.state_dict(), directory / "model.pt")
    write_meta(directory, file="model.pt", format=recipe.format, sparsity=sparsity(model), amount=recipe.amount,
               finetune_epochs=recipe.finetune_epochs, finetune_minutes=round(minutes, 2),
               finetune_committed=committed is not None)


@build_into.register
def _(recipe: PruneStructured, model, ctx, directory: Path) -> None:
    _check_fraction(recipe.name, "ratio", recipe.ratio)
    _check_threads(recipe)
    if not 0.0 <= recipe.distill_weight <= 1.0 or recipe.distill_temperature <= 0:
        raise RecipeError(f"{recipe.name}: distill_weight must be in [0, 1] and distill_temperature > 0, got "
                          f"{recipe.distill_weight} and {recipe.distill_temperature}")
    teacher = copy.deepcopy(model).eval() if recipe.distill_weight > 0 else None
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise RecipeError(f"{recipe.name} needs torch-pruning (pip install torch-pruning)") from exc
    spec = ctx.spec
    macs_before, params_before = metrics.macs(model, spec.input_size), sum(p.numel() for p in model.parameters())
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == spec.num_classes]
    try:
        pruner = tp.pruner.BasePruner(model, example_input(spec, 1), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                      pruning_ratio=recipe.ratio, ignored_layers=classifier, round_to=recipe.round_to)
        pruner.step()
    except Exception as exc:  # torch-pruning's dependency tracing is where an unusual model fails
        raise RecipeError(f"{recipe.name}: torch-pruning could not prune {spec.name}: {type(exc).__name__}: {exc}") from exc
    model.eval()
    macs_after, params_after = metrics.macs(model, spec.input_size), sum(p.numel() for p in model.parameters())
    minutes = 0.0
    if (committed := ctx.committed_finetune(recipe)) is not None:
        _load_committed(model, committed, recipe)
    else:
        minutes = finetune(model, ctx, recipe.finetune_epochs, recipe.finetune_lr, recipe.seed, recipe.threads,
                           teacher, recipe.distill_weight, recipe.distill_temperature)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.pt")
    write_meta(directory, file="model.pt", format=recipe.format, ratio=recipe.ratio, macs=macs_after,
               macs_ratio=macs_after / macs_before, params=params_after, params_ratio=params_after / params_before,
               finetune_epochs=recipe.finetune_epochs, finetune_minutes=round(minutes, 2),
               finetune_committed=committed is not None, distill_weight=recipe.distill_weight, torch_pruning=tp.__version__)
