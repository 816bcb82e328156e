"""Data loaders for training and evaluation, and the shard of a split each process reads."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, default_collate


def collate_present(batch: list[Any]) -> Any:
    """``default_collate`` of the examples a dataset gave; it gives ``None`` for one it leaves
    out (an image file that does not decode), and a batch of only those is ``None``, which
    the training and evaluation loops skip."""
    kept = [example for example in batch if example is not None]
    return default_collate(kept) if kept else None


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int = 0, seed: int = 0
) -> DataLoader:
    """A loader whose shuffle order comes from its own seeded generator (reseeded per epoch)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=generator,
        drop_last=False,
        collate_fn=collate_present,
    )


def shard(dataset: Dataset, rank: int, world_size: int) -> Dataset:
    """Every ``world_size``-th example from ``rank``: disjoint shards, no padding, so
    metrics summed over ranks count each example exactly once."""
    if world_size == 1:
        return dataset
    return Subset(dataset, range(rank, len(dataset), world_size))
