"""The recipe protocol: a frozen config with a ``name`` and an output ``format``, built by type."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
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
    #: True when building needs the model's training images (fine-tuning), not just calibration images.
    trains: ClassVar[bool] = False
    #: Distributions beyond torch/onnx/onnxruntime whose version goes into the artifact's cache key.
    libraries: ClassVar[tuple[str, ...]] = ()
    #: Raise to rebuild every artifact of this recipe when something its build reads changed outside its module.
    version: ClassVar[int] = 1
    #: Modules outside the build function's own whose code decides the artifact (their sha256 joins the cache key).
    build_helpers: ClassVar[tuple[str, ...]] = ()

    def children(self) -> list["Recipe"]:
        """The recipes this one starts from (config fields holding a recipe), e.g. the ONNX export to quantize."""
        return [v for f in dataclasses.fields(self) if isinstance(v := getattr(self, f.name), Recipe)]

    def lineage(self) -> list["Recipe"]:
        """This recipe and, recursively, every recipe it starts from."""
        return [self, *(r for child in self.children() for r in child.lineage())]

    def unsupported_reason(self, spec) -> str | None:
        """Why this recipe cannot be applied to the model ``spec`` at all (checked before building), or None."""
        if any(r.trains for r in self.lineage()) and not spec.dataset.has_training_tree:
            return (f"{self.name} fine-tunes on training images, and {spec.dataset.name} has no training tree "
                    f"apart from its evaluation images")
        return None


class RecipeError(RuntimeError):
    """A recipe cannot be applied to this model; the message says why."""


def build_code(recipe: Recipe) -> dict[str, dict]:
    """Per recipe of the lineage: its ``version`` and the sha256 of the module holding its build function, of its
    ``build_helpers`` and of this module, so that edited build code rebuilds its artifacts instead of reusing stale
    ones."""
    out = {}
    for r in recipe.lineage():
        helpers = {importlib.util.find_spec(name).origin for name in r.build_helpers}
        modules = sorted({inspect.getsourcefile(build_into.dispatch(type(r))), __file__, *helpers})
        code = [hashlib.sha256(Path(m).read_bytes()).hexdigest() for m in modules]  # a few kB: read every time
        out[type(r).__name__] = {"version": r.version, "code": code}
    return out


@singledispatch
def build_into(recipe: Recipe, model: nn.Module, ctx, directory: Path) -> None:
    """Write the artifact of ``recipe`` applied to ``model`` (a private copy, in eval mode) into ``directory``.

    ``ctx`` is the :class:`~edgeopt.recipes.BuildContext`: ``ctx.spec``, ``ctx.artifact(recipe)``,
    ``ctx.calibration_batches(n)``.

    Each recipe family registers an implementation; it must write ``meta.json`` naming ``file``.
    """
    raise NotImplementedError(f"no build function registered for {type(recipe).__name__}")
