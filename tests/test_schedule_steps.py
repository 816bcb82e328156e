"""Warmup counted in optimiser steps: the same recipe means the same thing on a small
and a large data set, and never takes more than half of training."""

from __future__ import annotations

import math

import pytest

from odetx.errors import ConfigError
from odetx.resolve import build_config
from odetx.training.schedule import cosine_with_warmup, warmup_length


def steps_per_epoch(images: int, batch: int) -> int:
    return math.ceil(images / batch)


@pytest.mark.parametrize(("images", "epochs"), [(3_600, 15), (55_000, 15)])
def test_warmup_in_steps_is_the_same_on_any_data_size(images, epochs):
    spe = steps_per_epoch(images, 64)
    total = spe * epochs
    assert warmup_length(1.0, 100, spe, total) == 100  # steps given: data size is irrelevant
    assert warmup_length(1.0, 0, spe, total) == spe  # epochs given: one epoch of steps


def test_warmup_in_epochs_scales_with_data_and_is_held_to_half_of_training():
    # 1,000 images at batch 64: 16 steps per epoch; 3 epochs are 48 steps.
    assert warmup_length(2.0, 0, 16, 48) == 24  # 32 asked, 24 = half of 48 allowed
    assert warmup_length(2.0, 500, 16, 48) == 24
    assert warmup_length(0.5, 0, 16, 48) == 8
    assert warmup_length(0.0, 0, 16, 48) == 0


def test_the_schedule_peaks_after_the_warmup_steps_and_ends_at_the_floor():
    total, warm, lr = 200, 50, 1e-3
    lrs = [cosine_with_warmup(s, total, warm, lr, 0.01) for s in range(total)]
    assert lrs[0] == pytest.approx(lr / 50) and lrs[49] == pytest.approx(lr)
    assert max(lrs) == pytest.approx(lr)
    # Cosine from the peak: halfway through the decay it is midway to the floor.
    assert lrs[50 + 75] == pytest.approx(0.01 * lr + (lr - 0.01 * lr) * 0.5)


def test_warmup_steps_is_a_config_key_checked_for_range():
    cfg = build_config(overrides={"train.warmup_steps": 100, "train.device": "cpu"})
    assert cfg.train.warmup_steps == 100
    with pytest.raises(ConfigError, match="train.warmup_steps"):
        build_config(overrides={"train.warmup_steps": -1})
