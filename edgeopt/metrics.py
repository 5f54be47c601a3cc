"""Pure metric functions on numpy arrays and files.  No timing, no I/O beyond reading a file's size."""
from __future__ import annotations

import gzip
import math
import os

import numpy as np


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the label."""
    _check_rows(logits, labels)
    return float((logits.argmax(axis=1) == labels).mean())


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows where both outputs pick the same class."""
    _check_same(reference, candidate)
    return float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())


def max_abs_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    _check_same(reference, candidate)
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64))))


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (torchao's ``compute_error``); +inf when identical."""
    _check_same(reference, candidate)
    ref = reference.astype(np.float64)
    noise = np.sum((ref - candidate.astype(np.float64)) ** 2)
    signal = np.sum(ref ** 2)
    if noise == 0:
        return math.inf
    return float(10 * math.log10(signal / noise)) if signal > 0 else -math.inf


def size_bytes(path: str | os.PathLike) -> int:
    return os.path.getsize(path)


def compressed_size_bytes(path: str | os.PathLike, level: int = 9) -> int:
    """Size after gzip: what a download or an OTA update costs; shows sparsity that raw size hides."""
    with open(path, "rb") as fh:
        return len(gzip.compress(fh.read(), compresslevel=level, mtime=0))


def macs(module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (``torch.utils.flop_counter``: FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, *input_size))
    return counter.get_total_flops() // 2


def _check_rows(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}")


def _check_same(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
