import math

import numpy as np
import pytest
from torch import nn

from edgeopt import metrics


def test_top1_counts_argmax_hits():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metrics.top1(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_top1_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="expected logits"):
        metrics.top1(np.zeros((3, 2)), np.zeros(2))


def test_agreement_and_errors():
    ref = np.array([[1.0, 2.0], [3.0, 1.0]])
    out = np.array([[1.0, 2.5], [1.0, 3.0]])
    assert metrics.top1_agreement(ref, out) == 0.5
    assert metrics.max_abs_error(ref, out) == 2.0


def test_sqnr_matches_definition_and_is_infinite_when_identical():
    ref = np.array([[3.0, 4.0]])
    noisy = np.array([[3.0, 4.5]])
    assert metrics.sqnr_db(ref, noisy) == pytest.approx(10 * math.log10(25 / 0.25))
    assert metrics.sqnr_db(ref, ref) == math.inf


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.sqnr_db(np.zeros((2, 3)), np.zeros((2, 4)))


def test_compressed_size_sees_what_raw_size_hides(tmp_path):
    zeros, noise = tmp_path / "zeros.bin", tmp_path / "noise.bin"
    zeros.write_bytes(bytes(100_000))
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    assert metrics.size_bytes(zeros) == metrics.size_bytes(noise) == 100_000
    assert metrics.compressed_size_bytes(zeros) < 1_000 < 90_000 < metrics.compressed_size_bytes(noise)


def test_macs_of_one_convolution():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert metrics.macs(conv, (3, 10, 10)) == 8 * 3 * 9 * 10 * 10
