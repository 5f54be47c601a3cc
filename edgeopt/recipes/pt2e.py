"""PyTorch 2 Export (PT2E) static INT8 with torchao's X86InductorQuantizer, for ``torch.compile``.

``torch.ao.quantization``'s PT2E moved to torchao; torchao is imported here only when a PT2E artifact is
built (and by the ``torch_compile`` runner, for its Inductor lowering passes).  The artifact is a
``torch.export`` program (``.pt2``) whose graph holds the quantize/dequantize pairs; ``torch_compile``
runs it, and with Inductor's freezing plus torchao's x86 passes each pair chain becomes one oneDNN INT8
kernel (without them it measured no faster than eager FP32).
The batch dimension is exported as dynamic, so one artifact serves evaluation batches and batch 1.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import example_input


@dataclass(frozen=True)
class TorchInt8Pt2e(Recipe):
    """``prepare_pt2e`` -> calibrate on ``calibration_images`` training images -> ``convert_pt2e`` -> ``torch.export``.

    X86InductorQuantizer's default config: per-channel symmetric INT8 weights, per-tensor UINT8
    activations (the same U8S8 scheme as ``ort_int8_static``).  ``reduce_range`` limits activations to
    7 bits (0..127), torchao's advice for x86 CPUs without VNNI, whose u8s8 kernels add pairs of 8-bit
    products in int16 and saturate.
    """

    name: str = "torch_int8_pt2e"
    format = "torch_export"
    libraries = ("torchao",)
    calibration_images: int = 256
    reduce_range: bool = False

    def unsupported_reason(self, spec) -> str | None:
        if importlib.util.find_spec("torchao") is None:
            return "PT2E quantization needs torchao, which is not installed (pip install torchao)"
        return super().unsupported_reason(spec)


#: Node metadata that only points back at the Python source; dropped from the shipped archive.
_DEBUG_META = ("stack_trace", "from_node", "source_fn_stack", "torch_fn")


def _batch_dim():
    return torch.export.Dim("batch", min=1, max=4096)


def _layer_type(qualified_name: str) -> type | None:
    module_name, _, class_name = qualified_name.rpartition(".")
    try:
        kind = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        return None
    for layer in (torch.nn.Conv2d, torch.nn.Linear):
        if isinstance(kind, type) and issubclass(kind, layer):
            return layer
    return kind


def _one_source_per_call(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Give each operator node its own ``source_fn_stack`` entry, from the layer that produced it.

    The quantizer groups nodes into patterns by that entry; when export leaves it empty it falls back to
    the module path, which breaks two ways on EfficientNet-Lite0: a ``Conv2d`` subclass
    (``Conv2dStaticSamePadding``) is not recognised, so its convolutions silently stay FP32 (measured:
    1 quantized tensor of 50), and one ``ReLU6`` module called twice per block makes a two-output pattern
    the quantizer rejects.  Subclasses are recorded as their ``nn.Conv2d``/``nn.Linear`` base.
    """
    for node in module.graph.nodes:
        if node.op != "call_function" or node.meta.get("source_fn_stack") or not node.meta.get("nn_module_stack"):
            continue
        _, qualified_name = list(node.meta["nn_module_stack"].values())[-1]
        if isinstance(qualified_name, str) and (kind := _layer_type(qualified_name)) is not None:
            node.meta["source_fn_stack"] = [(node.name, kind)]
    return module


def _without_unused_tensors(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop parameters and buffers no node reads: ``convert_pt2e`` folds each weight into an INT8 constant
    but leaves the FP32 original on the module, and exporting would store both (measured 1.35x FP32)."""
    used = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    for name, _ in [*module.named_parameters(), *module.named_buffers()]:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(module.get_submodule(owner) if owner else module, attr)
    return module


@build_into.register
def _(recipe: TorchInt8Pt2e, model, ctx, directory: Path) -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    # Batch 2 as the example: export specializes a dimension whose example value is 0 or 1.
    example = (example_input(ctx.spec, 2),)
    dynamic = ({0: _batch_dim()},)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchao\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torchao\.")
            graph = _one_source_per_call(torch.export.export(model, example, dynamic_shapes=dynamic).module())
            quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=recipe.reduce_range))
            prepared = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                for batch in ctx.calibration_batches(recipe.calibration_images):
                    prepared(torch.from_numpy(batch))
            converted = _without_unused_tensors(convert_pt2e(prepared))
            program = torch.export.export(converted, example, dynamic_shapes=dynamic)
    except Exception as exc:
        raise RecipeError(f"PT2E quantization failed on {ctx.spec.name}: {type(exc).__name__}: "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    program.example_inputs = None  # not shipped: a batch of random images (1.2 MB at 224x224)
    for node in program.graph.nodes:  # debug provenance, most of the graph's JSON (0.73 MB on MobileNetV2)
        for key in _DEBUG_META:
            node.meta.pop(key, None)
    path = directory / "model.pt2"
    torch.export.save(program, str(path))
    ops = Counter(str(node.target).split(".")[-2] if "." in str(node.target) else str(node.target)
                  for node in program.graph.nodes if node.op == "call_function")
    write_meta(directory, file="model.pt2", format=recipe.format, calibration_images=recipe.calibration_images,
               reduce_range=recipe.reduce_range,
               quantize_nodes=sum(n for op, n in ops.items() if op.startswith("quantize_per")),
               dequantize_nodes=sum(n for op, n in ops.items() if op.startswith("dequantize_per")))
