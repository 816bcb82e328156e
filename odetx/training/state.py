"""A training run's state: what a checkpoint holds, and restoring it exactly."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from odetx.config import Config
from odetx.data.base import DataInfo
from odetx.errors import CheckpointError
from odetx.models import count_params
from odetx.runtime.distributed import Dist
from odetx.training.ema import WeightAverage


@dataclass
class Progress:
    """How far a run has come; restored on resume."""

    epoch: int = 0
    step: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    wall_time_s: float = 0.0  # training time spent before this process started
    best_val_loss: float = math.inf  # language models keep the epoch of lowest loss
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics rows, one an epoch


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A distinct, reproducible seed per (run seed, rank, epoch)."""
    return seed * 1_000_003 + epoch * 1009 + rank


def snapshot(
    cfg: Config,
    info: DataInfo,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: Progress,
    dist: Dist,
    ema: WeightAverage | None = None,
) -> dict[str, Any]:
    """The checkpoint payload: weights (and their average), optimiser, scaler, every rank's
    RNG and the progress.

    Called on every rank: it gathers their RNG states.
    """
    return {
        **(ema.state() if ema is not None else {}),
        "config": cfg.to_dict(),
        "data_info": dataclasses.asdict(info),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "ranks": dist.gather(torch.get_rng_state())},
        "scaler": scaler.state_dict(),
        "epoch": progress.epoch,
        "step": progress.step,
        "best_val_acc": progress.best_val_acc,
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_val_loss,
        "wall_time_s": progress.wall_time_s,
        "history": progress.history,
        "params": count_params(model),
    }


def restore(
    ckpt: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    dist: Dist,
    seed: int,
    source: str = "the checkpoint",
    ema: WeightAverage | None = None,
) -> Progress:
    """Load a :func:`snapshot` into the live objects; returns the progress it saved.

    Raises:
        CheckpointError: the checkpoint lacks a part a resume needs (optimiser, RNG
            state, progress), or its weights or optimiser do not fit the model.
    """
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.load(ckpt)
        states = ckpt["rng"].get("ranks", [ckpt["rng"]["torch"]])
        if len(states) == dist.world_size:
            torch.set_rng_state(states[dist.rank])
        else:  # resumed on another number of processes: a fresh, distinct stream per rank
            torch.manual_seed(rank_seed(seed, dist.rank, ckpt["epoch"]))
        progress = Progress(
            int(ckpt["epoch"]),
            int(ckpt["step"]),
            float(ckpt["best_val_acc"]),
            int(ckpt["best_epoch"]),
            float(ckpt.get("wall_time_s", 0.0)),
            float(ckpt.get("best_val_loss", math.inf)),
            list(ckpt.get("history", [])),
        )
    except KeyError as e:
        raise CheckpointError(f"cannot resume from {source}: it lacks {e.args[0]!r}") from None
    except (TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"cannot resume from {source}: {first[:200]}") from None
    if not 0 <= progress.best_epoch <= progress.epoch:
        raise CheckpointError(
            f"cannot resume from {source}: best epoch {progress.best_epoch} is not between "
            f"0 and its epoch {progress.epoch}"
        )
    return progress
