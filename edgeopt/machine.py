"""The CPU this process runs on: model name and instruction-set flags (from /proc/cpuinfo on Linux).

Results of integer kernels depend on them (ONNX Runtime's U8S8 INT8 kernels saturate on x86 CPUs
without VNNI), so budgets can name the flags a known failure depends on and the benchmark JSON records them.
"""
from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

#: Flags worth recording with a benchmark run (what the INT8, BF16 and FP16 kernels dispatch on).
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                 "amx_bf16", "amx_int8", "f16c")


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, every flag the kernel reports); flags are empty where /proc/cpuinfo is not readable."""
    model, flags = platform.processor() or "unknown", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("unknown", platform.processor()):
            model = value.strip()
        if key.strip() == "flags":
            flags = frozenset(value.split())
            break
    return model, flags


def cpu_flags() -> frozenset[str]:
    return cpu_info()[1]


def notable_flags() -> list[str]:
    return [f for f in NOTABLE_FLAGS if f in cpu_flags()]


#: Flags of CPUs that compute bf16 natively (x86 AVX512-BF16 or AMX, Arm BF16); elsewhere PyTorch emulates it.
NATIVE_BF16 = ("avx512_bf16", "amx_bf16", "bf16")


def emulates_bf16() -> bool:
    """True on a CPU whose flags are known and include no native bf16 (measured on an AMD EPYC, AVX2: a ResNet
    training step 13.6x slower under bf16 autocast than in FP32)."""
    flags = cpu_flags()
    return bool(flags) and not flags.intersection(NATIVE_BF16)


#: ISA extensions that change which INT8/BF16 kernels the runtimes dispatch to, most capable first: a Zen 3
#: (AVX2), a Zen 4 (AVX512-VNNI), a Zen 5 (+AVX-VNNI) and a Xeon with AMX each get a kind of their own.
KERNEL_TIERS = ("amx_int8", "avx_vnni", "avx512_vnni", "avx512f", "avx2")
_NOISE = re.compile(r"\((r|tm)\)|\bprocessor\b|\bcpu\b|@.*$", re.IGNORECASE)


def cpu_kind(model: str | None = None, flags: frozenset[str] | None = None) -> str:
    """A short, path-safe name for this kind of CPU: its model name and its most capable kernel-relevant ISA
    extension, e.g. ``amd-epyc-avx2`` or ``intel-xeon-amx_int8`` (``model``/``flags`` default to this machine's).

    Latency is comparable only between runs on the same kind, so the benchmark baselines are stored per kind."""
    if model is None or flags is None:
        model, flags = (cpu_info()[0] if model is None else model), (cpu_flags() if flags is None else flags)
    name = re.sub(r"[^a-z0-9]+", "-", _NOISE.sub(" ", model).lower()).strip("-")[:40].strip("-") or "unknown"
    tier = next((t for t in KERNEL_TIERS if t in flags), platform.machine().lower() or "generic")
    return f"{name}-{tier}"
