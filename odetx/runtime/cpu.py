"""Which CPU a run executes on, in one line for the run header and ``summary.json``.

torch picks its CPU kernels by the instruction sets the CPU offers (AVX2, AVX-512,
AMX), and kernels of different widths add floats in different orders: a run is
bit-exact only on the same thread count *and* the same kind of CPU, so each run
records both.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")
# The instruction sets that change which kernels torch runs (and so the last digits).
SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """The first processor's ``model name`` and ``flags`` in ``/proc/cpuinfo``'s ``text``."""
    name, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name is None:
            name = value.strip() or None
        elif key == "flags" and not flags:
            flags = set(value.split())
        if not line.strip() and name is not None:  # one processor is enough
            break
    return name, flags


def describe_cpu(name: str | None, flags: set[str], machine: str, kernels: str) -> str:
    """``"AMD EPYC (x86_64; avx2, avx512f; torch kernels AVX512)"``."""
    simd = [f for f in SIMD_FLAGS if f in flags]
    parts = [machine or "unknown architecture"]
    if flags:
        parts.append(", ".join(simd) or "no AVX2")
    parts.append(f"torch kernels {kernels}")
    return f"{name or platform.processor() or 'unknown CPU'} ({'; '.join(parts)})"


def cpu_kind() -> str:
    """This machine's CPU: model, SIMD flags present, and the kernels torch dispatches to."""
    try:
        name, flags = parse_cpuinfo(CPUINFO.read_text(errors="replace"))
    except OSError:  # not Linux: the model name is all the platform says
        name, flags = None, set()
    return describe_cpu(name, flags, platform.machine(), torch.backends.cpu.get_cpu_capability())
