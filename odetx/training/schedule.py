"""Learning-rate schedule as a pure function of the step, so resuming needs only the step."""

from __future__ import annotations

import math


def cosine_with_warmup(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, min_ratio: float
) -> float:
    """Linear warmup from ~0 to ``base_lr``, then cosine decay to ``min_ratio * base_lr``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = base_lr * min_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
