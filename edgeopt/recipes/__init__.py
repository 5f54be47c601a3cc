"""Recipes: frozen configs, each dispatched by type to one build function.

``build(spec, recipe, weights)`` returns an :class:`~edgeopt.artifact.Artifact`, cached on disk by
a content hash of (model weights, recipe, calibration images, library versions, build code): a second run
rebuilds nothing.  A build function receives its own copy of the model and a :class:`BuildContext`
(for the artifact it starts from and for calibration images), and writes its files into a fresh
directory that is renamed into the cache only when complete.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from edgeopt import cache
from edgeopt.artifact import Artifact, read_meta
from edgeopt.data import load_split, normalize, split_files
from edgeopt.models import ModelSpec, Weights
from edgeopt.recipes.base import Recipe, RecipeError, build_code, build_into
from edgeopt.recipes.executorch import ExecuTorchXnnpack
from edgeopt.recipes.export import OnnxExport, TorchFp32, TorchScriptTrace
from edgeopt.recipes.lowbit import LowBit
from edgeopt.recipes.nncf_quant import NncfInt8
from edgeopt.recipes.onnx_quant import OnnxFp16, OrtDynamicInt8, OrtStaticInt8
from edgeopt.recipes.pt2e import TorchInt8Pt2e
from edgeopt.recipes.qat import QatFinetune
from edgeopt.recipes import trained
from edgeopt.recipes.pruning import PruneL1Unstructured, PruneStructured
from edgeopt.recipes.torch_lowp import TorchHalf
from edgeopt.recipes.torch_quant import TorchDynamicInt8

_STRUCTURED = PruneStructured()
_STRUCTURED_ONNX = OnnxExport(name="prune_structured_onnx", source=_STRUCTURED)

#: The variants every model is run as: name -> recipe.  Names are stable test ids.
VARIANTS: dict[str, Recipe] = {
    "fp32": TorchFp32(),
    "torchscript": TorchScriptTrace(),
    "onnx_fp32": OnnxExport(opset=18, dynamo=True),
    "onnx_fp16": OnnxFp16(),
    "ort_int8_dynamic": OrtDynamicInt8(),
    "ort_int8_dynamic_matmul": OrtDynamicInt8(name="ort_int8_dynamic_matmul", op_types=("MatMul", "Gemm")),
    "ort_int8_static": OrtStaticInt8(),
    # The calibration sweep: each changes one choice of the default above, so the suite measures it side by side.
    "ort_int8_static_entropy": OrtStaticInt8(name="ort_int8_static_entropy", calibrate_method="Entropy"),
    "ort_int8_static_percentile": OrtStaticInt8(name="ort_int8_static_percentile", calibrate_method="Percentile"),
    "ort_int8_static_per_tensor": OrtStaticInt8(name="ort_int8_static_per_tensor", per_channel=False),
    "ort_int8_static_s8s8": OrtStaticInt8(name="ort_int8_static_s8s8", activation_type="QInt8"),
    "ort_int8_static_qoperator": OrtStaticInt8(name="ort_int8_static_qoperator", quant_format="QOperator"),
    # 7-bit weights: exact on every x86 CPU (a u8*s7 pair sum fits int16), where 8-bit U8S8 saturates without VNNI.
    "ort_int8_static_reduce_range": OrtStaticInt8(name="ort_int8_static_reduce_range", reduce_range=True),
    # OpenVINO's quantizer on the same export and calibration images, QDQ ONNX (edgeopt/recipes/nncf_quant.py).
    "nncf_int8": NncfInt8(),
    # ExecuTorch with the XNNPACK delegate (edgeopt/recipes/executorch.py), FP32 and XNNPACK's INT8.
    "executorch_fp32": ExecuTorchXnnpack(),
    "executorch_int8": ExecuTorchXnnpack(name="executorch_int8", int8=True, calibration_images=256),
    "torch_bf16": TorchHalf(),
    "torch_int8_dynamic": TorchDynamicInt8(),
    "torch_int8_pt2e": TorchInt8Pt2e(),
    # 7-bit activations: torchao's advice for x86 CPUs without VNNI, where 8-bit u8s8 oneDNN kernels saturate.
    "torch_int8_pt2e_reduce_range": TorchInt8Pt2e(name="torch_int8_pt2e_reduce_range", reduce_range=True),
    "prune_l1_30": PruneL1Unstructured(name="prune_l1_30", amount=0.3),
    "prune_l1_50": PruneL1Unstructured(name="prune_l1_50", amount=0.5),
    "prune_l1_70": PruneL1Unstructured(name="prune_l1_70", amount=0.7),
    "prune_finetune_50": PruneL1Unstructured(name="prune_finetune_50", amount=0.5, finetune_epochs=2),
    "prune_structured": _STRUCTURED,
    "prune_structured_onnx": _STRUCTURED_ONNX,
    "prune_structured_int8": OrtStaticInt8(name="prune_structured_int8", base=_STRUCTURED_ONNX),
    # The same stack with 7-bit weights, exact on x86 CPUs without VNNI (see ort_int8_static_reduce_range).
    "prune_structured_int8_reduce_range": OrtStaticInt8(name="prune_structured_int8_reduce_range",
                                                        base=_STRUCTURED_ONNX, reduce_range=True),
    # Packed INT4 weights (opset-21 DequantizeLinear), the first and last Conv/Gemm at INT8: a file that really
    # shrinks; ONNX Runtime and OpenVINO dequantize and run Conv in float, ORT told to fold the weights' dequantize
    # once at load instead of at every call (measured in docs/variants.md).
    "ort_w4a8": OrtStaticInt8(name="ort_w4a8", weight_type="QInt4", edge_weight_type="QInt8",
                              ort_session_config=(("session.disable_quant_qdq", "1"),), base=OnnxExport(opset=21)),
    # Low-bit, simulated with fake quantization (edgeopt/recipes/lowbit.py): the first and last layer at 8 bits.
    "lowbit_w8a8": LowBit(),
    "lowbit_w4a8": LowBit(name="lowbit_w4a8", weight_bits=4),
    "lowbit_w4a4": LowBit(name="lowbit_w4a4", weight_bits=4, act_bits=4),
    "lowbit_w2a8": LowBit(name="lowbit_w2a8", weight_bits=2),
    "lowbit_position": LowBit(name="lowbit_position", weight_bits=4, schedule="position"),
    # Sensitivity-based (edgeopt/recipes/mixed.py): widths 2-8 per layer at the BitOps of the position schedule,
    # and of all-W4A8.
    "lowbit_mixed": LowBit(name="lowbit_mixed", weight_bits=4, schedule="sensitivity", budget="position"),
    "lowbit_mixed_w4a8": LowBit(name="lowbit_mixed_w4a8", weight_bits=4, schedule="sensitivity", budget="fixed"),
    # W4A8 after a one-epoch quantization-aware fine-tune through the same plan (edgeopt/recipes/qat.py).
    "lowbit_w4a8_qat": LowBit(name="lowbit_w4a8_qat", weight_bits=4, source=QatFinetune()),
}
for _name, _recipe in VARIANTS.items():
    assert _recipe.name == _name, f"variant {_name!r} has recipe named {_recipe.name!r}"

_VERSIONED = ("torch", "onnx", "onnxscript", "onnxruntime", "onnxconverter-common")


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the libraries every build depends on, plus ``extra`` ones (a recipe's ``libraries``)."""
    out = {}
    for dist in (*_VERSIONED, *extra):
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


class BuildContext:
    """What a build function may ask for beyond its model: the artifact it starts from, calibration data."""

    def __init__(self, spec: ModelSpec, weights: Weights, cache_root: Path | None, data_dir: str | Path | None):
        self.spec, self.weights, self.cache_root, self.data_dir = spec, weights, cache_root, data_dir

    def artifact(self, recipe: Recipe) -> Artifact:
        """The (cached) artifact of another recipe on the same model, e.g. the ONNX export to quantize."""
        return build(self.spec, recipe, self.weights, self.cache_root, self.data_dir)

    def committed_finetune(self, recipe: Recipe) -> dict | None:
        """The committed state dict of ``recipe``'s fine-tune on this model and these weights, or None (train)."""
        entry = trained.entry_for(self.spec.name, recipe, self.base_digest)
        return None if entry is None else trained.load(entry)

    @functools.cached_property
    def base_digest(self) -> str:
        return weights_digest(self.weights.module)

    def calibration_split(self, count: int):
        return load_split(self.spec.dataset, "calib", self.data_dir, self.cache_root).subset(count)

    def training_split(self):
        """The model's training images (never its evaluation images), for fine-tuning."""
        return load_split(self.spec.dataset, "train", self.data_dir, self.cache_root)

    def calibration_batches(self, count: int, batch_size: int = 32):
        """``count`` evenly spaced calibration images (never the evaluation ones), normalised, in batches."""
        images = self.calibration_split(count).images
        for start in range(0, len(images), batch_size):
            yield normalize(images[start:start + batch_size], self.spec.mean, self.spec.std)


def _data_identity(ctx: BuildContext, recipe: Recipe) -> str | None:
    """The calibration and training images that went into ``recipe`` and the recipes it starts from.

    From the file listings only: a cache hit must not load any decoded images.
    """
    parts = []
    for r in recipe.lineage():
        if count := getattr(r, "calibration_images", 0):
            parts.append(split_files(ctx.spec.dataset, "calib", ctx.data_dir, count))
        if r.trains:
            parts.append(("train", split_files(ctx.spec.dataset, "train", ctx.data_dir)))
    if not parts:
        return None
    return cache.digest(parts[0] if len(parts) == 1 else parts)


def build(spec: ModelSpec, recipe: Recipe, weights: Weights, cache_root: Path | None = None,
          data_dir: str | Path | None = None) -> Artifact:
    """Build (or fetch from the cache) the artifact of ``recipe`` applied to ``spec``'s model."""
    if reason := recipe.unsupported_reason(spec):
        raise RecipeError(reason)
    ctx = BuildContext(spec, weights, cache_root, data_dir)
    identity = {
        "model": spec.name, "weights": ctx.base_digest, "input_size": spec.input_size,
        "recipe": type(recipe).__name__, "config": dataclasses.asdict(recipe),
        "versions": library_versions(tuple(sorted({d for r in recipe.lineage() for d in r.libraries}))),
        "calibration": _data_identity(ctx, recipe), "normalization": (spec.mean, spec.std),
        "build_code": build_code(recipe),
    }
    committed = [e["sha256"] for r in recipe.lineage() if (e := trained.entry_for(spec.name, r, ctx.base_digest))]
    if committed:  # the artifact is built from a committed fine-tune, not one run here
        identity["committed_finetunes"] = committed
    key = cache.digest(identity)
    directory = (cache_root or cache.cache_dir()) / "artifacts" / f"{spec.name}-{recipe.name}-{key[:16]}"

    def create(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        build_into(recipe, copy.deepcopy(weights.module).eval(), ctx, tmp)

    cache.get_or_create(directory, create)
    meta = read_meta(directory)
    return Artifact(model=spec.name, variant=recipe.name, format=recipe.format, path=directory / meta["file"],
                    key=key, recipe=recipe, factory=spec.factory if recipe.format == "torch" else None, meta=meta)
