import numpy as np

from edgeopt.train import CONFIGS, augment
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


def test_every_trainable_model_is_registered():
    assert set(CONFIGS) <= set(list_models())
