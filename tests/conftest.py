"""Fixtures for the unit tests: a tiny CNN and a tiny ImageFolder dataset, built in seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeopt.data import DatasetSpec
from edgeopt.models import ModelSpec, load_state_dict, register_model, unregister_model

CLASSES = ("cat", "dog", "frog")


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


@pytest.fixture(autouse=True)
def _benchmark_on_in_inner_runs(request):
    """pytest-benchmark turns itself off when PYTEST_XDIST_WORKER is set, and pytester's inner runs inherit it from
    make test's xdist workers: a latency test of an inner run would pass without being timed."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("monkeypatch").delenv("PYTEST_XDIST_WORKER", raising=False)


def quantized_conv_weights(artifact) -> list[np.ndarray]:
    """The integer weights of each quantized convolution of an ONNX artifact (the 4-D DequantizeLinear inputs)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(artifact.path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and getattr(inits.get(n.input[0]), "ndim", 0) == 4]


def write_image_folder(root: Path, per_class: int = 5, size: int = 8, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[..., c] = 255  # a learnable colour cue per class
            Image.fromarray(pixels).save(root / name / f"{i:04d}.png")
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_image_folder(root / "tiny" / "test", per_class=5, seed=1)
    write_image_folder(root / "tiny" / "train", per_class=4, seed=2)
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEOPT_CACHE", str(cache))
    return cache


TINY_DATASET = DatasetSpec("tiny", eval_dir="tiny/test", calib_dir="tiny/train", crop=8)


@pytest.fixture
def tiny_model(tmp_path: Path):
    """A registered tiny model with saved weights; unregistered afterwards."""
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.1, 0.1)
        net.bn.running_var.uniform_(0.5, 1.5)
    weights = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), weights)

    def load(module):
        module.load_state_dict(load_state_dict(weights))
        return str(weights)

    spec = register_model(ModelSpec("tiny_test", TinyNet, load, TINY_DATASET, (3, 8, 8), (0.5,) * 3, (0.25,) * 3,
                                    num_classes=3, eval_batch=4))
    yield spec
    unregister_model("tiny_test")
