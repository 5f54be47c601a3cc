"""The recipe protocol: a frozen config with a ``name`` and an output ``format``, built by type."""
from __future__ import annotations

from functools import singledispatch
from pathlib import Path
from typing import ClassVar

from torch import nn


class Recipe:
    """Base of all recipe configs (frozen dataclasses).

    ``name`` is the variant id used in test ids (a dataclass field where one class serves several
    variants); ``format`` is the artifact format the recipe produces.
    """

    name: str
    format: ClassVar[str]
    #: True when the artifact computes what the model computes (format conversions); False when it
    #: approximates it (quantization, reduced precision, pruning).
    lossless: ClassVar[bool] = False


class RecipeError(RuntimeError):
    """A recipe cannot be applied to this model; the message says why."""


@singledispatch
def build_into(recipe: Recipe, model: nn.Module, ctx, directory: Path) -> None:
    """Write the artifact of ``recipe`` applied to ``model`` (a private copy, in eval mode) into ``directory``.

    ``ctx`` is the :class:`~edgeopt.recipes.BuildContext`: ``ctx.spec``, ``ctx.artifact(recipe)``,
    ``ctx.calibration_batches(n)``.

    Each recipe family registers an implementation; it must write ``meta.json`` naming ``file``.
    """
    raise NotImplementedError(f"no build function registered for {type(recipe).__name__}")
