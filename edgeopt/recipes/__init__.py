"""Recipes: frozen configs, each dispatched by type to one build function.

``build(spec, recipe, weights)`` returns an :class:`~edgeopt.artifact.Artifact`, cached on disk by
a content hash of (model weights, recipe, library versions): a second run rebuilds nothing.  A build
function receives its own copy of the model and writes its files into a fresh directory that is
renamed into the cache only when complete.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from importlib import metadata
from pathlib import Path

import torch

from edgeopt import cache
from edgeopt.artifact import Artifact, read_meta
from edgeopt.models import ModelSpec, Weights
from edgeopt.recipes.export import OnnxExport, TorchFp32, TorchScriptTrace  # noqa: F401  (registers builders)
from edgeopt.recipes.base import Recipe, build_into

#: The variants every model is run as: name -> recipe.  Names are stable test ids.
VARIANTS: dict[str, Recipe] = {
    "fp32": TorchFp32(),
    "torchscript": TorchScriptTrace(),
    "onnx_fp32": OnnxExport(opset=18, dynamo=True),
}

_VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime")


def library_versions() -> dict[str, str]:
    out = {}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def get_variant(name: str) -> Recipe:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def build(spec: ModelSpec, recipe: Recipe, weights: Weights, cache_root: Path | None = None) -> Artifact:
    """Build (or fetch from the cache) the artifact of ``recipe`` applied to ``spec``'s model."""
    key = cache.digest({
        "model": spec.name, "weights": weights_digest(weights.module), "input_size": spec.input_size,
        "recipe": type(recipe).__name__, "config": dataclasses.asdict(recipe), "versions": library_versions(),
    })
    directory = (cache_root or cache.cache_dir()) / "artifacts" / f"{spec.name}-{recipe.name}-{key[:16]}"

    def create(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        build_into(recipe, copy.deepcopy(weights.module).eval(), spec, tmp)

    cache.get_or_create(directory, create)
    meta = read_meta(directory)
    return Artifact(model=spec.name, variant=recipe.name, format=recipe.format, path=directory / meta["file"],
                    key=key, recipe=recipe, factory=spec.factory if recipe.format == "torch" else None, meta=meta)
