#!/usr/bin/env python
"""A plain ViT on a small image set, the yardstick for odetx's image recipes there.

    python benchmarks/bench_small_mnist.py --data-dir DIR [--epochs 15] [--threads 1]

DIR holds MNIST in torchvision's layout (``DIR/MNIST/raw``); any subset works, e.g.
4,000 training images. The splits, the normalisation and the training augmentation
are odetx's own (``data.name: mnist``), so only the model and the optimiser differ
from ``odetx train -c configs/mnist.yaml``: a pre-norm ViT of 4 layers, width 64,
4 heads, MLP ×2, patch 4, mean pooling; AdamW (lr 1e-3, weight decay 0.05), batch
64, linear warmup of one epoch then cosine, plain cross-entropy. It prints the test
accuracy at the last epoch and the wall time, with the CPU.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from odetx.data import DATASETS
from odetx.resolve import build_config
from odetx.runtime.cpu import cpu_kind


class PlainViT(nn.Module):
    def __init__(self, size: int, channels: int, classes: int, dim=64, depth=4, heads=4):
        super().__init__()
        patch = 4
        self.embed = nn.Conv2d(channels, dim, patch, patch)
        self.pos = nn.Parameter(torch.zeros(1, (size // patch) ** 2, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, dim)
        return self.head(self.norm(self.blocks(x)).mean(1))


def accuracy(model, loader) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            right += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    model.train()
    return right / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = build_config(overrides={"data.name": "mnist", "data.root": args.data_dir})
    info = DATASETS["mnist"].info(cfg.data)
    splits = DATASETS["mnist"].load(cfg.data)
    train = DataLoader(splits.train, batch_size=64, shuffle=True)
    test = DataLoader(splits.test, batch_size=256)
    model = PlainViT(info.image_size, info.in_chans, info.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    total, warm = args.epochs * len(train), len(train)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warm
            if s < warm
            else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))
        ),
    )
    start = time.perf_counter()
    for _ in range(args.epochs):
        for x, y in train:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    wall = time.perf_counter() - start
    print(
        f"plain ViT 4x64: {len(splits.train)} training images, {args.epochs} epochs, "
        f"test acc {accuracy(model, test):.4f}, {wall:.0f} s, "
        f"{args.threads} thread(s), {cpu_kind()}"
    )


if __name__ == "__main__":
    main()
