"""Evaluation: loss, accuracy, NFE per forward and throughput on one split."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from odetx.errors import SolverError


@dataclass(frozen=True)
class EvalResult:
    loss: float
    acc: float
    nfe: float  # field evaluations per forward pass
    samples_per_s: float
    samples: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def forward_batch(
    model: nn.Module, batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one batch; returns ``(logits, targets)``. Sequence batches carry a padding mask."""
    *inputs, y = (t.to(device, non_blocking=True) for t in batch)
    return model(*inputs), y


def check_finite(out: torch.Tensor, where: str) -> None:
    if not torch.isfinite(out).all():
        raise SolverError(
            f"the model produced non-finite values during {where}; the solver may be unstable "
            "at this step size: try more steps or an adaptive solver"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    reduce: Callable[[list[float]], list[float]] | None = None,
    stack: nn.Module | None = None,
) -> EvalResult:
    """Loss, accuracy and NFE of ``model`` on ``loader``.

    ``reduce`` sums the totals over processes when each holds a shard of the split;
    ``stack`` is the module counting NFE when ``model`` wraps it (compiled, DDP).
    """
    stack = stack if stack is not None else model.stack
    model.eval()
    total_loss, correct, n, nfe, batches = 0.0, 0, 0, 0.0, 0
    start = time.perf_counter()
    for batch in loader:
        stack.reset_nfe()
        with autocast():
            logits, y = forward_batch(model, batch, device)
        logits = logits.float()
        check_finite(logits, "evaluation")
        nfe += stack.nfe()
        batches += 1
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        n += y.numel()
    seconds = time.perf_counter() - start
    if reduce is not None:
        total_loss, correct, n, nfe, batches = reduce([total_loss, correct, n, nfe, batches])
    return EvalResult(
        loss=total_loss / max(n, 1),
        acc=correct / max(n, 1),
        nfe=nfe / max(batches, 1),
        samples_per_s=n / seconds if seconds > 0 else 0.0,
        samples=int(n),
    )
