"""What a recipe produced: a file on disk in one format, with the recipe and the hash of its inputs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FORMATS = ("torch", "torchscript", "onnx", "torch_export", "pte")


@dataclass(frozen=True)
class Artifact:
    """A built model variant.

    ``path`` is the one file a deployment would ship.  ``factory`` is set for the ``torch`` format
    only: the file is a state dict, and the network definition comes from the model's code.
    """

    model: str
    variant: str
    format: str
    path: Path
    key: str
    recipe: Any
    factory: Callable | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown artifact format {self.format!r}; expected one of {FORMATS}")

    def load_module(self):
        """The ``torch`` artifact as an eval-mode module (state dict read with ``weights_only=True``).

        A structurally pruned state dict has fewer channels than the model's code builds: each
        Conv2d, BatchNorm2d and Linear is rebuilt at the stored shape before loading.
        """
        import torch

        if self.format != "torch" or self.factory is None:
            raise ValueError(f"{self.id} is a {self.format} artifact, not a PyTorch state dict with a factory")
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        module = resize_to_state_dict(self.factory(), state)
        module.load_state_dict(state)
        return module.eval()

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def id(self) -> str:
        return f"{self.model}-{self.variant}"


def resize_to_state_dict(module, state: dict):
    """Rebuild ``module``'s Conv2d / BatchNorm2d / Linear layers whose stored weights in ``state`` have other shapes.

    Depthwise convolutions (groups == in_channels) stay depthwise at the new width.  Returns ``module``.
    """
    from torch import nn

    for name, layer in list(module.named_modules()):
        weight = state.get(f"{name}.weight")
        if weight is None or not hasattr(layer, "weight") or layer.weight is None or weight.shape == layer.weight.shape:
            continue
        bias = getattr(layer, "bias", None) is not None
        if isinstance(layer, nn.Conv2d):
            depthwise = layer.groups > 1 and layer.groups == layer.in_channels
            groups = weight.shape[0] if depthwise else layer.groups
            new = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], layer.kernel_size, layer.stride, layer.padding,
                            layer.dilation, groups, bias, layer.padding_mode)
        elif isinstance(layer, nn.BatchNorm2d):
            new = nn.BatchNorm2d(weight.shape[0], layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
        elif isinstance(layer, nn.Linear):
            new = nn.Linear(weight.shape[1], weight.shape[0], bias)
        else:
            raise ValueError(f"cannot resize {name} ({type(layer).__name__}) to the stored shape {tuple(weight.shape)}")
        module.set_submodule(name, new)
    return module


def write_meta(directory: Path, **meta) -> None:
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def read_meta(directory: Path) -> dict:
    return json.loads((directory / "meta.json").read_text())
