"""Eager-vs-exported checks: output parity on fresh inputs, and latency."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Inputs = tuple[Tensor, ...]


@dataclass(frozen=True)
class Parity:
    """``max |eager - exported|`` per batch size; ``worst`` over all of them (NaN if any)."""

    diffs: dict[int, float]
    tolerance: float

    @property
    def worst_batch(self) -> int:
        return max(
            self.diffs, key=lambda b: math.inf if math.isnan(self.diffs[b]) else self.diffs[b]
        )

    @property
    def worst(self) -> float:
        return self.diffs[self.worst_batch]

    @property
    def ok(self) -> bool:
        return self.worst <= self.tolerance  # False for NaN


@dataclass(frozen=True)
class Latency:
    """Median seconds per forward of each model on one batch."""

    eager_s: float
    exported_s: float
    batch: int
    repeats: int

    @property
    def ratio(self) -> float:
        """Exported time over eager time (below 1: the artefact is faster)."""
        return self.exported_s / self.eager_s


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        return float("nan")
    return float((a.double() - b.double()).abs().max())


@torch.no_grad()
def check_parity(
    eager: Callable[..., Tensor],
    exported: Callable[..., Tensor],
    batches: dict[int, Inputs],
    tolerance: float,
) -> Parity:
    return Parity({b: max_abs_diff(eager(*x), exported(*x)) for b, x in batches.items()}, tolerance)


@torch.no_grad()
def measure_latency(
    eager: Callable[..., Tensor],
    exported: Callable[..., Tensor],
    inputs: Inputs,
    warmup: int = 3,
    repeats: int = 5,
) -> Latency:
    """Median of ``repeats`` timed calls each, interleaved so that load on a shared
    machine hits both alike; TorchScript optimises its graph over the warm-up calls."""
    for _ in range(warmup):
        eager(*inputs)
        exported(*inputs)
    times: dict[str, list[float]] = {"eager": [], "exported": []}
    for _ in range(repeats):
        for name, fn in (("eager", eager), ("exported", exported)):
            start = time.perf_counter()
            fn(*inputs)
            times[name].append(time.perf_counter() - start)
    return Latency(
        statistics.median(times["eager"]),
        statistics.median(times["exported"]),
        inputs[0].shape[0],
        repeats,
    )
