"""Mixed precision: autocast for the forward pass, a gradient scaler for fp16."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from odetx.registry import Registry

# ``train.amp`` -> the dtype matmuls run in (float32: no autocast).
AMP_DTYPES: Registry[torch.dtype] = Registry("amp mode")
AMP_DTYPES.register("off", torch.float32)
AMP_DTYPES.register("bf16", torch.bfloat16)
AMP_DTYPES.register("fp16", torch.float16)


def autocast(mode: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A factory of autocast contexts for ``device`` (a null context when ``mode`` is off)."""
    dtype = AMP_DTYPES[mode]
    if dtype == torch.float32:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(mode: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none."""
    return torch.amp.GradScaler(device.type, enabled=mode == "fp16")


def amp_label(mode: str, device: torch.device) -> str:
    """``mode`` as the run header shows it, with a caution where autocast will be slow.

    Below AVX-512, CPUs have no half-precision matrix units and PyTorch emulates
    bf16/fp16 matmuls (a 1024-square one measured ~180x slower than float32 on an
    AVX2 EPYC); AVX-512 parts may have them (AVX-512 BF16, AMX), so they get no caution.
    """
    if mode == "off" or device.type != "cpu":
        return mode
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith("AVX512"):
        return mode
    return (
        f"{mode} (this CPU ({capability}) emulates {mode} matmuls: expect it far slower than off)"
    )
