"""The torch device a setting names."""

from __future__ import annotations

import torch

from odetx.errors import ConfigError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) as a torch device; ``key`` names
    the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(key, f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(key, "cuda was requested but no CUDA device is available")
    return device
