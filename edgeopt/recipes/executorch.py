"""ExecuTorch programs (``.pte``) with the XNNPACK delegate: PyTorch's own path to edge CPUs.

FP32: ``torch.export`` at batch 1 -> ``to_edge_transform_and_lower`` with the XNNPACK partitioner ->
``to_executorch``.  INT8: the same PT2E flow as ``torch_int8_pt2e``, with XNNPACK's quantizer (symmetric
per-channel INT8 weights, INT8 activations) calibrated on the training images, then lowered the same way.
The program is exported at batch 1, what a device runs; the runner feeds a larger batch image by image.
The ``.pte`` is a flatbuffer: it loads without unpickling anything.
"""
from __future__ import annotations

import operator
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import example_input


@dataclass(frozen=True)
class ExecuTorchXnnpack(Recipe):
    name: str = "executorch_fp32"
    format = "pte"
    libraries = ("executorch", "torchao")
    build_helpers = ("edgeopt.recipes.pt2e",)  # the graph fixes shared with torch_int8_pt2e
    int8: bool = False
    calibration_images: int = 0  # INT8 only

    @property
    def lossless(self) -> bool:
        return not self.int8

    def __post_init__(self):
        if self.int8 != (self.calibration_images > 0):
            raise ValueError(f"{self.name}: INT8 needs calibration images and FP32 none "
                             f"(int8={self.int8}, calibration_images={self.calibration_images})")


class _GlobalMaxPool(torch.nn.Module):
    """``AdaptiveMaxPool2d(1)`` as ``amax``: the same values, in the Core ATen opset the edge dialect requires
    (``adaptive_max_pool2d`` is not, and lowering the ResNet failed on it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


def _core_aten(model: torch.nn.Module) -> torch.nn.Module:
    for name, module in list(model.named_modules()):
        size = getattr(module, "output_size", None)
        if isinstance(module, torch.nn.AdaptiveMaxPool2d) and size in (1, (1, 1)):
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner) if owner else model, attr, _GlobalMaxPool())
    return model


def _annotate_conv_hardtanh(graph: torch.fx.GraphModule, config) -> None:
    """Annotate conv -> hardtanh (ReLU6) as one fused pattern, as XNNPACK's quantizer does conv -> relu.

    Its own patterns stop at relu: hardtanh then shares the conv's observer, so the conv output is quantized
    over its pre-clamp range and ReLU6's [0, 6] gets a few of the 256 levels (EfficientNet-Lite0: measured
    7.2 pt down in the eager PT2E reference, 0.1 pt of that in XNNPACK's kernels).  XNNPACK fuses the clamp.
    """
    from torchao.quantization.pt2e.quantizer import (QuantizationAnnotation, get_bias_qspec, get_input_act_qspec,
                                                     get_output_act_qspec, get_weight_qspec)
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY
    from torchao.quantization.pt2e.utils import _is_conv_node

    for clamp in graph.graph.nodes:
        conv = clamp.args[0] if clamp.target in (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default) else None
        if not (isinstance(conv, torch.fx.Node) and _is_conv_node(conv)) or len(conv.users) > 1:
            continue
        qspecs = {conv.args[0]: get_input_act_qspec(config), conv.args[1]: get_weight_qspec(config)}
        if len(conv.args) > 2 and isinstance(conv.args[2], torch.fx.Node):
            qspecs[conv.args[2]] = get_bias_qspec(config)
        conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=qspecs, _annotated=True)
        clamp.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(output_qspec=get_output_act_qspec(config),
                                                              _annotated=True)


def _quantized(model, ctx, recipe: ExecuTorchXnnpack) -> torch.nn.Module:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    class Quantizer(XNNPACKQuantizer):
        def annotate(self, graph):
            _annotate_conv_hardtanh(graph, self.global_config)
            return super().annotate(graph)  # its patterns skip nodes already annotated

    from edgeopt.recipes.pt2e import _batch_dim, _one_source_per_call, _without_unused_tensors

    # Calibrated on batches (a dynamic batch dimension), then exported again at batch 1.
    graph = torch.export.export(model, (example_input(ctx.spec, 2),), dynamic_shapes=({0: _batch_dim()},)).module()
    quantizer = Quantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(_one_source_per_call(graph), quantizer)
    with torch.no_grad():
        for batch in ctx.calibration_batches(recipe.calibration_images):
            prepared(torch.from_numpy(batch))
    return _without_unused_tensors(convert_pt2e(prepared))


@build_into.register
def _(recipe: ExecuTorchXnnpack, model, ctx, directory: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(torchao|executorch)\.")
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(torchao|executorch)\.")
            model = _core_aten(model)
            source = _quantized(model, ctx, recipe) if recipe.int8 else model
            program = torch.export.export(source, (example_input(ctx.spec, 1),))
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            graph = edge.exported_program().graph
            executorch_program = edge.to_executorch()
    except Exception as exc:
        text = str(exc).strip()
        raise RecipeError(f"ExecuTorch lowering failed on {ctx.spec.name}: {type(exc).__name__}: "
                          f"{text.splitlines()[0] if text else ''}") from exc
    path = directory / "model.pte"
    path.write_bytes(executorch_program.buffer)
    # What XNNPACK did not take runs on ExecuTorch's portable kernels: the count shows a partial delegation.
    ops = Counter(getattr(node.target, "__name__", str(node.target)).removeprefix("aten.").split(".")[0]
                  for node in graph.nodes if node.op == "call_function" and node.target is not operator.getitem)
    delegated = ops.pop("executorch_call_delegate", 0)
    write_meta(directory, file="model.pte", format=recipe.format, int8=recipe.int8,
               calibration_images=recipe.calibration_images, delegates=delegated,
               undelegated_ops=dict(ops))
