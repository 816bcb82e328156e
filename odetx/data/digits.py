"""``digits``: the UCI 8x8 handwritten digits, embedded in the package (CC BY 4.0)."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import torch
from torch.utils.data import TensorDataset

from odetx.data.base import SPLITS, DataInfo, Splits

_N, _PIXELS = 1797, 64
SPLIT_SEED = 0  # fixed so every run and every paper table sees the same split
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2


def info(cfg=None) -> DataInfo:
    return DataInfo(kind="image", num_classes=10, image_size=8, in_chans=1)


def read_raw() -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(1797, 8, 8)`` in 0..16 and labels ``(1797,)``."""
    blob = resources.files("odetx.data").joinpath("assets/digits.u8.gz").read_bytes()
    records = np.frombuffer(gzip.decompress(blob), dtype=np.uint8).reshape(_N, _PIXELS + 1)
    return records[:, :_PIXELS].reshape(_N, 8, 8), records[:, _PIXELS].astype(np.int64)


def stratified_split(labels: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Per class, a seeded shuffle cut into test, val and train shares."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(idx) * TEST_FRACTION)
        n_val = round(len(idx) * VAL_FRACTION)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def load(cfg=None) -> Splits:
    pixels, labels = read_raw()
    x = torch.from_numpy(pixels.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(labels)
    idx = stratified_split(labels)
    train = x[idx["train"]]
    mean, std = train.mean(), train.std()  # train-split statistics only
    x = (x - mean) / std
    # No augmentation: each 8x8 pixel is a 4x4 block of the original scan, and even a
    # one-pixel shift measurably hurts accuracy here.
    return Splits(*(TensorDataset(x[idx[s]], y[idx[s]]) for s in SPLITS))
