from dataclasses import replace

import numpy as np
import pytest
import torch

from edgeopt import train as train_module
from edgeopt.data import load_split
from edgeopt.train import CONFIGS, TrainConfig, augment, fit
from edgeopt.models import list_models


def test_augment_keeps_shape_and_pixels_from_the_padded_image():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    out = augment(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    # every output row is a (possibly flipped) window of the reflect-padded source
    padded = np.pad(images[0], ((4, 4), (4, 4), (0, 0)), mode="reflect")
    windows = [padded[y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
    assert any(np.array_equal(out[0], w) or np.array_equal(out[0], w[:, ::-1]) for w in windows)


def test_augment_is_seeded():
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(augment(images, np.random.default_rng(5)), augment(images, np.random.default_rng(5)))


@pytest.mark.parametrize("epochs", [1, 2, 4, 6])
def test_fit_trains_even_when_the_run_has_only_a_few_steps(tiny_model, data_dir, epochs):
    split = load_split(tiny_model.dataset, "train", data_dir)
    model = tiny_model.factory()
    before = model.fc.weight.detach().clone()
    cfg = TrainConfig(epochs=epochs, batch_size=len(split), max_lr=0.1, bf16=False)  # one step per epoch
    fit(model, split, tiny_model, cfg, np.random.default_rng(0), desc="tiny")
    assert not torch.equal(before, model.fc.weight)


def test_every_trainable_model_is_registered():
    assert set(CONFIGS) <= set(list_models())


def _trained(tmp_path, monkeypatch, data_dir, cfg, **kwargs):
    tmp_path.mkdir(exist_ok=True)
    monkeypatch.setattr(train_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(CONFIGS, "tiny_test", cfg)
    record = train_module.train("tiny_test", seed=0, epochs=None, data_dir=data_dir, force=True, **kwargs)
    return record, torch.load(tmp_path / "tiny_test.pt", weights_only=True)


def test_resuming_runs_only_the_missing_restart_cycles_and_matches_a_full_run(tiny_model, data_dir, tmp_path,
                                                                              monkeypatch):
    torch.set_num_threads(1)
    two_cycles = TrainConfig(epochs=1, batch_size=4, max_lr=0.05, bf16=False, restarts=((1, 0.02),))
    full, full_weights = _trained(tmp_path / "full", monkeypatch, data_dir, two_cycles)
    assert [c["config"]["max_lr"] for c in full["cycles"]] == [0.05, 0.02]

    first, _ = _trained(tmp_path / "resumed", monkeypatch, data_dir, replace(two_cycles, restarts=()))
    assert "cycles" not in first
    resumed, resumed_weights = _trained(tmp_path / "resumed", monkeypatch, data_dir, two_cycles, resume=True)
    assert len(resumed["cycles"]) == 2 and resumed["cycles"][0]["test_top1"] == first["test_top1"]
    for name, tensor in full_weights.items():
        assert torch.equal(tensor, resumed_weights[name]), name

    with pytest.raises(SystemExit, match="already went through all 2 cycles"):
        _trained(tmp_path / "resumed", monkeypatch, data_dir, two_cycles, resume=True)
    with pytest.raises(SystemExit, match="is not this recipe's"):
        _trained(tmp_path / "resumed", monkeypatch, data_dir, replace(two_cycles, max_lr=0.1), resume=True)
