"""The optimiser: parameter groups, and the registered kind ``train.optimizer`` names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from odetx.config import TrainConfig
from odetx.runtime.optimizers import OPTIMIZERS


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norms, biases, positions and the class token (DeiT practice)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """``t.optimizer`` over ``model``'s parameter groups (the schedule sets the lr per step)."""
    return OPTIMIZERS[t.optimizer].build(param_groups(model, t.weight_decay), t)
