"""How a training epoch is cut: micro-batches grouped per optimiser step, and repeated
augmentation's sampler."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from torch.utils.data import Sampler

T = TypeVar("T")


def micro_batches(batches: Iterable[T], accumulate: int) -> Iterator[list[T]]:
    """Consecutive groups of ``accumulate`` batches, one per optimiser step (the last group
    of an epoch may be shorter); a ``None`` batch (every example in it left out) is skipped."""
    group: list[T] = []
    for batch in batches:
        if batch is None:
            continue
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []
    if group:
        yield group


def optimizer_steps(batches: int, accumulate: int) -> int:
    """Optimiser steps in an epoch of ``batches`` micro-batches."""
    return -(-batches // accumulate)


class RepeatedSampler(Sampler[int]):
    """Repeated augmentation (Hoffer et al. 2020; DeiT's ``RASampler``): each drawn example
    appears ``repeats`` times in a row, so one batch (or, across processes, one global
    batch) sees it under several augmentations. An epoch keeps its length: it draws
    ``len / repeats`` examples, so it sees fewer distinct ones, as DeiT's sampler does.

    The order is a function of (seed, epoch) alone, so a resumed run replays it; with
    several processes, rank ``r`` takes every ``world``-th index from ``r``.
    """

    def __init__(self, size: int, repeats: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.repeats, self.seed = size, repeats, seed
        self.rank, self.world = rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        # Every rank the same count (as DistributedSampler pads), or DDP's collectives hang.
        return -(-self.size // self.world)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).repeat_interleave(self.repeats)
        total = len(self) * self.world
        if len(order) < total:  # a split smaller than the process count
            order = order.repeat(-(-total // len(order)))
        return iter(order[:total][self.rank :: self.world].tolist())
