"""ONNX-to-ONNX recipes: FP16 conversion and ONNX Runtime INT8 quantization (dynamic and static).

Each starts from the model's pinned ONNX export (``OnnxExport()``, cached) and never touches it.
Measured realities these recipes make visible rather than hide (ORT 1.31, this CPU):
- FP16 ONNX runs slower than FP32 in ONNX Runtime's CPU provider (it inserts casts).
- ``quantize_dynamic`` with defaults quantizes convolutions to ``ConvInteger``, which is slow
  on CPU and unimplemented in older ORT builds; quantizing MatMul/Gemm only is the fallback.
- ``quantize_dynamic`` fails on a ``dynamo=True`` export unless its stale ``value_info`` is dropped.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, RecipeError, build_into
from edgeopt.recipes.export import OnnxExport


@dataclass(frozen=True)
class OnnxFp16(Recipe):
    """FP16 weights and compute (onnxconverter-common); inputs and outputs stay FP32 (``keep_io_types``)."""

    name: str = "onnx_fp16"
    format = "onnx"
    keep_io_types: bool = True
    base: OnnxExport = OnnxExport()


@dataclass(frozen=True)
class OrtDynamicInt8(Recipe):
    """``onnxruntime.quantization.quantize_dynamic``: INT8 weights, activations quantized at run time.

    ``op_types=None`` keeps ORT's defaults (convolutions become ``ConvInteger``).
    """

    name: str = "ort_int8_dynamic"
    format = "onnx"
    op_types: tuple[str, ...] | None = None
    per_channel: bool = False
    weight_type: str = "QInt8"
    base: OnnxExport = OnnxExport()


@dataclass(frozen=True)
class OrtStaticInt8(Recipe):
    """``quant_pre_process`` then ``quantize_static`` calibrated on ``calibration_images`` training images.

    Defaults, from measurement on this CPU: QDQ format, per-channel INT8 weights with UINT8
    activations (U8S8), MinMax calibration.
    """

    name: str = "ort_int8_static"
    format = "onnx"
    quant_format: str = "QDQ"  # or "QOperator"
    per_channel: bool = True
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    calibrate_method: str = "MinMax"  # "Entropy", "Percentile"
    calibration_images: int = 256
    # 7-bit weights: ORT's U8S8 kernels on x86 CPUs without VNNI (AVX2 / AVX-512 only) add pairs of
    # u8*s8 products in int16 and saturate; ORT's own advice there is reduce_range or U8U8.
    reduce_range: bool = False
    # The first and last Conv/Gemm weights at this type instead of weight_type (HAWQ-V3 keeps them at 8 bits).
    edge_weight_type: str | None = None
    # ONNX Runtime session config entries the file is meant to run with (carried in its metadata to the runner).
    ort_session_config: tuple[tuple[str, str], ...] = ()
    preprocess: bool = True
    base: OnnxExport = OnnxExport()


def op_histogram(path: Path) -> dict[str, int]:
    import onnx

    return dict(Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node))


def _load_without_value_info(path: Path):
    """The ONNX model with ``value_info`` cleared: the dynamo exporter's entries for initializers make ORT's
    quantizer fail shape inference (ShapeInferenceError); they are regenerated on demand."""
    import onnx

    model = onnx.load(str(path))
    del model.graph.value_info[:]
    return model


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer logs and prints per tensor; keep it out of test output."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _enum(enum_cls, name: str):
    try:
        return getattr(enum_cls, name)
    except AttributeError:
        raise RecipeError(f"unknown {enum_cls.__name__} {name!r}; expected one of "
                          f"{', '.join(m.name for m in enum_cls)}") from None


@build_into.register
def _(recipe: OnnxFp16, model, ctx, directory: Path) -> None:
    import onnx
    from onnxconverter_common import float16

    base = ctx.artifact(recipe.base)
    # The converter warns once per tensor (and sign) whose tiny weights it clamps to +-1e-7 (hundreds of
    # warnings for EfficientNet-Lite0); their count goes in the artifact's meta, not into the test report.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fp16 = float16.convert_float_to_float16(onnx.load(str(base.path)), keep_io_types=recipe.keep_io_types)
    clamped = 0  # one warning per tensor and sign
    for w in caught:
        if "will be truncated" in str(w.message):
            clamped += 1
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    path = directory / "model.onnx"
    onnx.save(fp16, str(path))
    write_meta(directory, file="model.onnx", format=recipe.format, base=base.key, ops=op_histogram(path),
               fp16_clamp_warnings=clamped)


@build_into.register
def _(recipe: OrtDynamicInt8, model, ctx, directory: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    base = ctx.artifact(recipe.base)
    path = directory / "model.onnx"
    try:
        with _quiet():
            quantize_dynamic(_load_without_value_info(base.path), str(path),
                             op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
                             per_channel=recipe.per_channel, weight_type=_enum(QuantType, recipe.weight_type))
    except RecipeError:
        raise
    except Exception as exc:
        raise RecipeError(f"quantize_dynamic failed on {ctx.spec.name}: {type(exc).__name__}: {exc}") from exc
    write_meta(directory, file="model.onnx", format=recipe.format, base=base.key, ops=op_histogram(path))


def _pre_process(path: Path, model_name: str) -> str:
    """ORT's ``quant_pre_process`` in place; returns what ran.

    Its symbolic shape inference fails on some graphs (a TypeError on the Reshape after the
    ResNet's AdaptiveMaxPool, ORT 1.31); ONNX shape inference and the graph optimization then still run.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet():
            quant_pre_process(str(path), str(path))
        return "full"
    except Exception as first:
        try:
            with _quiet():
                quant_pre_process(str(path), str(path), skip_symbolic_shape=True)
        except Exception as exc:
            raise RecipeError(f"quant_pre_process failed on {model_name}: {type(exc).__name__}: {exc} "
                              f"(with symbolic shape inference: {type(first).__name__}: {first})") from exc
        return "no symbolic shape inference"


_FOUR_BIT = ("QInt4", "QUInt4")


def _edge_overrides(model, weight_type) -> dict:
    """TensorQuantOverrides giving the first and last Conv/Gemm weight initializer ``weight_type``, per channel."""
    initializers = {t.name for t in model.graph.initializer}
    weights = [n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm") and n.input[1] in initializers]
    if not weights:
        raise RecipeError("no Conv or Gemm with an initializer weight to keep at the edge width")
    return {name: [{"quant_type": weight_type, "axis": 0}] for name in {weights[0], weights[-1]}}


def _calibration_reader(ctx, input_name: str, count: int):
    """Calibration batches for ORT, readable in ranges: ORT's calibrators keep every activation of what
    they are fed until they reduce it, so ``quantize_static`` is driven one batch at a time
    (``CalibStridedMinMax``); MinMax gives the same ranges either way, histograms are merged per batch."""
    from onnxruntime.quantization import CalibrationDataReader

    batches = [{input_name: batch} for batch in ctx.calibration_batches(count)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._pending = iter(batches)

        def __len__(self):
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._pending = iter(batches[start_index:end_index])

        def get_next(self):
            return next(self._pending, None)

    return Reader()


@build_into.register
def _(recipe: OrtStaticInt8, model, ctx, directory: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if recipe.weight_type in _FOUR_BIT and recipe.base.opset < 21:
        raise RecipeError(f"{recipe.name}: 4-bit weights need an opset >= 21 base (DequantizeLinear INT4), "
                          f"its base exports opset {recipe.base.opset}")
    base = ctx.artifact(recipe.base)
    source = directory / "preprocessed.onnx"
    onnx.save(_load_without_value_info(base.path), str(source))
    preprocessing = "none"
    if recipe.preprocess:
        preprocessing = _pre_process(source, ctx.spec.name)
    source_model = onnx.load(str(source), load_external_data=False)
    input_name = source_model.graph.input[0].name
    extra = {"CalibStridedMinMax": 1}
    if recipe.edge_weight_type:
        extra["TensorQuantOverrides"] = _edge_overrides(source_model, _enum(QuantType, recipe.edge_weight_type))
    path = directory / "model.onnx"
    try:
        with _quiet():
            quantize_static(str(source), str(path), _calibration_reader(ctx, input_name, recipe.calibration_images),
                            quant_format=_enum(QuantFormat, recipe.quant_format), per_channel=recipe.per_channel,
                            activation_type=_enum(QuantType, recipe.activation_type),
                            weight_type=_enum(QuantType, recipe.weight_type),
                            calibrate_method=_enum(CalibrationMethod, recipe.calibrate_method),
                            reduce_range=recipe.reduce_range, extra_options=extra)
    except RecipeError:
        raise
    except Exception as exc:
        raise RecipeError(f"quantize_static failed on {ctx.spec.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        source.unlink(missing_ok=True)
    write_meta(directory, file="model.onnx", format=recipe.format, base=base.key, ops=op_histogram(path),
               calibration_images=recipe.calibration_images, calibrate_method=recipe.calibrate_method,
               preprocessing=preprocessing, onnxruntime_session_config=dict(recipe.ort_session_config))
