"""The optimisers ``train.optimizer`` names, each built from parameter groups and the config.

A registry below :mod:`odetx.resolve`, so a config naming an unknown optimiser is refused
before any work; :mod:`odetx.training.optim` builds the chosen one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from odetx.config import TrainConfig
from odetx.errors import ConfigError
from odetx.registry import Registry

Groups = list[dict[str, Any]]


@dataclass(frozen=True)
class OptimizerKind:
    """One optimiser: how to build it, and the paper it comes from."""

    name: str
    build: Callable[[Groups, TrainConfig], torch.optim.Optimizer]
    reference: str
    uses_momentum: bool = False  # reads train.momentum / train.nesterov


OPTIMIZERS: Registry[OptimizerKind] = Registry("optimizer")


def _register(kind: OptimizerKind) -> None:
    OPTIMIZERS.register(kind.name, kind)


# Weight decay comes from each group (none on norms, biases, positions), so no default here.
_register(
    OptimizerKind(
        "adamw",
        lambda groups, t: torch.optim.AdamW(groups, lr=t.lr),
        "decoupled weight decay (Loshchilov & Hutter 2019)",
    )
)
_register(
    OptimizerKind(
        "sgd",
        lambda groups, t: torch.optim.SGD(
            groups, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov
        ),
        "SGD with heavy-ball (Polyak 1964) or Nesterov (Sutskever et al. 2013) momentum",
        uses_momentum=True,
    )
)


def check_optimizer(t: TrainConfig) -> OptimizerKind:
    """The registered ``train.optimizer``, refusing settings it cannot honour."""
    kind = OPTIMIZERS.lookup(t.optimizer, "train.optimizer")
    if t.nesterov and not (kind.uses_momentum and t.momentum > 0):
        raise ConfigError(
            "train.nesterov",
            "needs train.optimizer=sgd with train.momentum > 0"
            f" (got {t.optimizer}, momentum {t.momentum:g})",
        )
    return kind
