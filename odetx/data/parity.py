"""``parity``: is the number of ones in a bit string odd? (Hahn 2020; Bhattamishra et al. 2020)

A classic probe of what self-attention can count: the label depends on every
token, so no local shortcut exists. Bits are tokens 1 (a zero) and 2 (a one);
0 is padding. Lengths are uniform in ``[data.seq_len_min, data.seq_len_max]``.
"""

from __future__ import annotations

import random

from odetx.data.base import SPLITS, DataInfo, Splits
from odetx.data.sequences import PAD_ID, PaddedTokens, check_generator_options, padded_len
from odetx.errors import DataError

BIT_TOKEN = (PAD_ID + 1, PAD_ID + 2)  # token of bit 0, token of bit 1
VOCAB_SIZE = 3


def info(cfg) -> DataInfo:
    return DataInfo(kind="tokens", num_classes=2, vocab_size=VOCAB_SIZE, max_len=padded_len(cfg))


def generate(cfg) -> dict[str, tuple[list[list[int]], list[int]]]:
    """Distinct bit strings from ``data.seed``, dealt to train, val and test in order,
    so no test string is seen in training; returns token ids and labels per split."""
    check_generator_options(cfg)
    sizes = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}
    need = sum(sizes.values())
    distinct = sum(2**n for n in range(cfg.seq_len_min, cfg.seq_len_max + 1))
    if distinct < 2 * need:  # leaves room for rejection sampling to finish quickly
        raise DataError(
            f"parity: {need} distinct strings of {cfg.seq_len_min}..{cfg.seq_len_max} bits "
            f"requested, but only {distinct} exist; raise data.seq_len_max or ask for fewer"
        )
    rng = random.Random(cfg.seed)
    seen: set[tuple[int, ...]] = set()
    strings: list[tuple[int, ...]] = []
    while len(strings) < need:
        bits = tuple(
            rng.getrandbits(1) for _ in range(rng.randint(cfg.seq_len_min, cfg.seq_len_max))
        )
        if bits not in seen:
            seen.add(bits)
            strings.append(bits)
    out, start = {}, 0
    for split, n in sizes.items():
        chunk = strings[start : start + n]
        out[split] = ([[BIT_TOKEN[b] for b in s] for s in chunk], [sum(s) % 2 for s in chunk])
        start += n
    return out


def load(cfg) -> Splits:
    parts = generate(cfg)
    return Splits(*(PaddedTokens(*parts[s], padded_len(cfg)) for s in SPLITS))
