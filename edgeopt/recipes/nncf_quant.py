"""NNCF post-training INT8 quantization (OpenVINO's quantizer) of the model's pinned ONNX export.

NNCF's ONNX backend writes QDQ ONNX, so the artifact is one ``.onnx`` file that every ONNX runtime of the
suite runs (OpenVINO, ONNX Runtime, OpenCV) and is compared with ONNX Runtime's own quantizer on equal terms:
the same export, the same calibration images.  NNCF places quantizers by its CPU hardware config (it skips
those the CPU plugin would not fuse).  Two choices are pinned from measurement (docs/variants.md):
activations per tensor (NNCF's CPU config may give a depthwise convolution's input one scale per channel, which
ONNX Runtime's QLinearConv fusion rejects at run time) and full bias correction (on EfficientNet-Lite0 the fast
one broke the 1.0 pt budget; figures in docs/variants.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import OnnxExport
from edgeopt.recipes.onnx_quant import _load_without_value_info, _quiet, op_histogram


@dataclass(frozen=True)
class NncfInt8(Recipe):
    """``nncf.quantize`` with the ``preset`` (``performance``: symmetric activations; ``mixed``: asymmetric)."""

    name: str = "nncf_int8"
    format = "onnx"
    libraries = ("nncf",)
    preset: str = "performance"
    fast_bias_correction: bool = False
    per_channel_activations: bool = False
    calibration_images: int = 256
    base: OnnxExport = OnnxExport()


@build_into.register
def _(recipe: NncfInt8, model, ctx, directory: Path) -> None:
    import nncf
    import onnx
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    try:
        preset = nncf.QuantizationPreset(recipe.preset)
    except ValueError:
        raise RecipeError(f"{recipe.name}: unknown NNCF preset {recipe.preset!r}; expected one of "
                          f"{', '.join(p.value for p in nncf.QuantizationPreset)}") from None
    base = ctx.artifact(recipe.base)
    source = _load_without_value_info(base.path)
    name = source.graph.input[0].name
    batches = list(ctx.calibration_batches(recipe.calibration_images))  # subset_size counts items, here batches
    try:
        with _quiet():
            quantized = nncf.quantize(source, nncf.Dataset(batches, lambda batch: {name: batch}), preset=preset,
                                      subset_size=len(batches), fast_bias_correction=recipe.fast_bias_correction,
                                      advanced_parameters=AdvancedQuantizationParameters(
                                          activations_quantization_params=QuantizationParameters(
                                              per_channel=recipe.per_channel_activations)))
    except Exception as exc:
        raise RecipeError(f"nncf.quantize failed on {ctx.spec.name}: {type(exc).__name__}: {exc}") from exc
    path = directory / "model.onnx"
    onnx.save(quantized, str(path))
    write_meta(directory, file="model.onnx", format=recipe.format, base=base.key, ops=op_histogram(path),
               calibration_images=recipe.calibration_images, preset=recipe.preset)
