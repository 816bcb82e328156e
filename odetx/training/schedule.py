"""Learning-rate schedule as a pure function of the step, so resuming needs only the step.

Warmup is counted in optimiser steps, the unit AdamW's moment estimates settle in:
an epoch is 28 steps on 3,600 images at batch 128 and 390 on 50,000, so a warmup
written in epochs means a different thing on every data size. ``train.warmup_steps``
says it in steps directly; either way it is held to at most half of training, where
a longer warmup would leave the cosine no room to decay.
"""

from __future__ import annotations

import math

# Warmup may take at most this share of the optimiser steps.
MAX_WARMUP_SHARE = 0.5


def warmup_length(
    warmup_epochs: float, warmup_steps: int, steps_per_epoch: int, total_steps: int
) -> int:
    """Optimiser steps of linear warmup: ``warmup_steps`` when positive, else
    ``warmup_epochs`` epochs, in both cases at most half of ``total_steps``."""
    steps = warmup_steps if warmup_steps > 0 else round(warmup_epochs * steps_per_epoch)
    return min(steps, math.floor(MAX_WARMUP_SHARE * total_steps))


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
