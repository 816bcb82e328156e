"""An exponential moving average of the weights (Polyak & Juditsky 1992; DeiT's model EMA).

``torch.optim.swa_utils.AveragedModel`` keeps the average: the first update copies the
weights, each later one takes ``avg = decay * avg + (1 - decay) * weights``, buffers
included. It is updated every ``train.ema_every`` optimiser steps, evaluated beside the
trained weights, and saved in every checkpoint as ``model_ema`` with its update count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """The EMA of ``model``'s parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float, every: int = 1) -> None:
        self.every = every
        self.averaged = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
        )

    @property
    def module(self) -> nn.Module:
        """A model like the trained one, holding the averaged weights."""
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    def step(self, model: nn.Module, optimizer_step: int) -> None:
        """Fold ``model``'s weights in after optimiser step ``optimizer_step`` (from 1)."""
        if optimizer_step % self.every == 0:
            self.averaged.update_parameters(model)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the averaged weights (loadable into the plain model)."""
        return {"model_ema": self.module.state_dict(), "ema_updates": self.updates}

    def load(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state`.

        Raises:
            KeyError: the checkpoint has no average.
        """
        self.module.load_state_dict(ckpt["model_ema"])
        self.averaged.n_averaged.copy_(torch.tensor(int(ckpt["ema_updates"])))


def weight_average(model: nn.Module, decay: float, every: int) -> WeightAverage | None:
    """The average ``train.ema`` asks for, or None when it is 0 (off)."""
    return WeightAverage(model, decay, every) if decay > 0 else None
