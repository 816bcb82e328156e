"""Token datasets padded to one length, and the data options every generator shares.

The training loop builds plain ``DataLoader``s without a ``collate_fn``, so each
example is already padded to ``max_len`` and carries its own mask; default
collation then stacks them into ``(tokens (B, L), mask (B, L), label (B,))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from odetx.errors import ConfigError, DataError

PAD_ID = 0  # every vocabulary reserves id 0 for padding; the encoder embeds it as zeros


def padded_len(cfg) -> int:
    """The length token examples are padded to: ``data.max_len``, or ``data.seq_len_max``."""
    return cfg.max_len if cfg.max_len > 0 else cfg.seq_len_max


def check_generator_options(
    cfg, sizes: Sequence[str] = ("train_size", "val_size", "test_size")
) -> None:
    """Refuse impossible generator settings, naming the key (before any example is drawn)."""
    for key in sizes:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"data.{key}", f"must be positive, got {getattr(cfg, key)}")
    if cfg.seq_len_min <= 0:
        raise ConfigError("data.seq_len_min", f"must be positive, got {cfg.seq_len_min}")
    if cfg.seq_len_max < cfg.seq_len_min:
        raise ConfigError(
            "data.seq_len_max", f"{cfg.seq_len_max} is below data.seq_len_min {cfg.seq_len_min}"
        )
    if cfg.max_len < 0:
        raise ConfigError("data.max_len", f"must be >= 0 (0 means seq_len_max), got {cfg.max_len}")
    if 0 < cfg.max_len < cfg.seq_len_max:
        raise ConfigError(
            "data.max_len",
            f"{cfg.max_len} cannot hold sequences of data.seq_len_max {cfg.seq_len_max}",
        )


class PaddedTokens(Dataset):
    """Sequences stored once as a compact ``(N, max_len)`` matrix of token ids.

    Items are ``(tokens LongTensor (L,), mask BoolTensor (L,), label)``; the mask
    is True on real tokens. Ids are kept in ``uint8`` (every vocabulary here is
    tiny) because LRA-sized sets would take gigabytes as int64.
    """

    def __init__(
        self, sequences: Sequence[Sequence[int]], labels: Sequence[int], max_len: int
    ) -> None:
        self.tokens = torch.full((len(sequences), max_len), PAD_ID, dtype=torch.uint8)
        for i, seq in enumerate(sequences):
            if len(seq) > max_len:
                raise DataError(
                    f"example {i} has {len(seq)} tokens, more than data.max_len {max_len}; "
                    "raise it with --set data.max_len=N"
                )
            self.tokens[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.uint8)
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        row = self.tokens[i]
        return row.long(), row != PAD_ID, self.labels[i]

    def lengths(self) -> Tensor:
        """Real tokens per example, shape ``(N,)``."""
        return (self.tokens != PAD_ID).sum(dim=1)
