"""Format conversions without numeric change: the FP32 PyTorch model, TorchScript, ONNX."""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into


@dataclass(frozen=True)
class TorchFp32(Recipe):
    """The reference: the model's FP32 state dict, run by PyTorch eager."""

    name: str = "fp32"
    format = "torch"
    lossless = True


@dataclass(frozen=True)
class TorchScriptTrace(Recipe):
    """``torch.jit.trace`` then ``torch.jit.freeze`` (TorchScript is deprecated upstream; kept in this one place)."""

    name: str = "torchscript"
    format = "torchscript"
    lossless = True
    freeze: bool = True


@dataclass(frozen=True)
class OnnxExport(Recipe):
    """ONNX export with a pinned exporter and opset, weights inside the file, dynamic batch dimension."""

    name: str = "onnx_fp32"
    format = "onnx"
    opset: int = 18
    dynamo: bool = True
    #: Export this torch-format recipe's artifact (e.g. a pruned model) instead of the model itself.
    source: Recipe | None = None

    @property
    def lossless(self) -> bool:
        return self.source is None or self.source.lossless


def example_input(spec, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, *spec.input_size, generator=torch.Generator().manual_seed(0))


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's first line, without terminal colour codes."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


@build_into.register
def _(recipe: TorchFp32, model, ctx, directory: Path) -> None:
    torch.save(model.state_dict(), directory / "model.pt")
    write_meta(directory, file="model.pt", format=recipe.format)


@build_into.register
def _(recipe: TorchScriptTrace, model, ctx, directory: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        with torch.no_grad():
            scripted = torch.jit.trace(model, example_input(ctx.spec, 2))
            if recipe.freeze:
                scripted = torch.jit.freeze(scripted)
        torch.jit.save(scripted, str(directory / "model.torchscript.pt"))
    write_meta(directory, file="model.torchscript.pt", format=recipe.format, freeze=recipe.freeze)


@build_into.register
def _(recipe: OnnxExport, model, ctx, directory: Path) -> None:
    spec = ctx.spec
    if recipe.source is not None:
        model = ctx.artifact(recipe.source).load_module()
    path = directory / "model.onnx"
    x = example_input(spec, 2)
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=recipe.opset,
                  dynamo=recipe.dynamo, external_data=False)
    if recipe.dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", max=4096)},)
    else:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
                torch.onnx.export(model, (x,), str(path), **kwargs)
    except Exception as exc:  # the exporter's own message is what the user needs
        raise RecipeError(f"ONNX export (dynamo={recipe.dynamo}, opset {recipe.opset}) of {spec.name} failed: "
                          f"{_root_cause(exc)}") from exc
    import onnx

    onnx.checker.check_model(str(path))
    write_meta(directory, file="model.onnx", format=recipe.format, opset=recipe.opset, dynamo=recipe.dynamo,
               exporter="torch.onnx.export", torch=torch.__version__)
