"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) for image batches.

A mixed batch trains on ``lam * loss(y_a) + (1 - lam) * loss(y_b)``; both draws
use torch's global generator, so a resumed run replays them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class MixedTargets:
    y_a: Tensor
    y_b: Tensor
    lam: float

    def loss(self, logits: Tensor, label_smoothing: float) -> Tensor:
        la = F.cross_entropy(logits, self.y_a, label_smoothing=label_smoothing)
        if self.lam == 1.0:
            return la
        lb = F.cross_entropy(logits, self.y_b, label_smoothing=label_smoothing)
        return self.lam * la + (1.0 - self.lam) * lb

    def correct(self, logits: Tensor) -> float:
        """Hits credited by each label's share of the mix."""
        pred = logits.argmax(-1)
        hits_a = (pred == self.y_a).sum().item()
        hits_b = (pred == self.y_b).sum().item()
        return self.lam * hits_a + (1.0 - self.lam) * hits_b


def _beta(alpha: float) -> float:
    a = torch.tensor(alpha)
    return float(torch.distributions.Beta(a, a).sample())


def _cut_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A box of area ``(1 - lam) * H * W`` centred uniformly, clipped to the image."""
    ratio = (1.0 - lam) ** 0.5
    ch, cw = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, ()).item())
    cx = int(torch.randint(width, ()).item())
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2 + ch % 2, height)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2 + cw % 2, width)
    return y0, y1, x0, x1


def mix_batch(x: Tensor, y: Tensor, mixup: float, cutmix: float) -> tuple[Tensor, MixedTargets]:
    """Mix ``x`` (B, C, H, W) with a shuffled copy of itself.

    ``mixup`` / ``cutmix`` are the Beta concentrations (0 turns one off); with
    both on, each batch picks one of them with equal odds, as timm does.
    """
    if mixup <= 0 and cutmix <= 0:
        return x, MixedTargets(y, y, 1.0)
    use_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(()) < 0.5))
    lam = _beta(cutmix if use_cutmix else mixup)
    perm = torch.randperm(x.shape[0], device="cpu").to(x.device)
    if use_cutmix:
        y0, y1, x0, x1 = _cut_box(x.shape[-2], x.shape[-1], lam)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[-2] * x.shape[-1])  # the box as clipped
    else:
        x = lam * x + (1.0 - lam) * x[perm]
    return x, MixedTargets(y, y[perm], lam)
