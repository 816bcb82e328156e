"""Windows of a token stream for language models, read from a memory map.

A :class:`TokenFile` maps a run of ids in a file (the bytes of a text file, or a
prepared uint16/uint32 token file) and opens the map lazily in each process that
reads it, so DataLoader workers share the page cache and nothing is copied whole.
Training reads ``count`` windows at random offsets drawn from ``(seed, epoch)``;
evaluation reads consecutive windows that score every token after the first once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from odetx.data.base import IGNORE_INDEX
from odetx.errors import DataInputError


@dataclass
class TokenFile:
    """``count`` ids of ``dtype`` from byte ``offset`` of ``path`` (or, for small built-in
    texts, an array in memory), with the UTF-8 bytes of text they encode."""

    path: Path | None
    dtype: np.dtype
    offset: int
    count: int
    text_bytes: int
    vocab_size: int
    array: np.ndarray | None = None

    @classmethod
    def in_memory(cls, ids: np.ndarray, text_bytes: int, vocab_size: int) -> TokenFile:
        return cls(None, ids.dtype, 0, len(ids), text_bytes, vocab_size, ids)

    def ids(self) -> np.ndarray:
        if self.array is None:
            self.array = np.memmap(
                self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.count,)
            )
        return self.array

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["array"] = None  # a worker maps the file itself rather than unpickling it
        return state

    def __len__(self) -> int:
        return self.count

    def window(self, start: int, length: int) -> Tensor:
        w = np.asarray(self.ids()[start : start + length], dtype=np.int64)
        if self.vocab_size < 256 or self.dtype.itemsize > 1:  # bytes are always in range
            top = int(w.max()) if len(w) else 0
            if top >= self.vocab_size:
                where = self.path if self.path is not None else "the text"
                raise DataInputError(
                    f"{where} holds the token id {top} (near token {start:,}), outside the "
                    f"vocabulary of {self.vocab_size}: the file is damaged or was made by "
                    "another tokenizer"
                )
        return torch.from_numpy(w)

    def check_ids(self, chunk: int = 1 << 20) -> None:
        """Every id in range. Read with plain reads, a chunk at a time, not through the
        map: the pages stay page cache rather than this process's resident memory."""
        if self.path is None:
            self.window(0, self.count)
            return
        if self.vocab_size >= 1 << (8 * self.dtype.itemsize):
            return  # every value the file can hold is an id
        top, at = 0, 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while at < self.count:
                ids = np.fromfile(f, dtype=self.dtype, count=min(chunk, self.count - at))
                if len(ids) == 0:
                    break
                top = max(top, int(ids.max()))
                if top >= self.vocab_size:
                    self.window(at + int(np.argmax(ids >= self.vocab_size)), 1)
                at += len(ids)

    @property
    def tokens_per_byte(self) -> float:
        return self.count / self.text_bytes if self.text_bytes else 1.0


class RandomWindows(Dataset):
    """``count`` windows at offsets drawn from ``(seed, epoch)``; :meth:`set_epoch`
    redraws them, so an epoch's windows depend on nothing a resume could lose."""

    def __init__(self, tokens: TokenFile, context: int, count: int, seed: int) -> None:
        self.tokens, self.context, self.count, self.seed = tokens, context, count, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        high = len(self.tokens) - self.context  # windows of context + 1 tokens
        self.offsets = torch.randint(0, high, (self.count,), generator=gen)

    @property
    def tokens_per_byte(self) -> float:
        return self.tokens.tokens_per_byte

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        w = self.tokens.window(int(self.offsets[i]), self.context + 1)
        return w[:-1], w[1:]  # inputs (T,), next-token targets (T,)


class ContiguousWindows(Dataset):
    """Windows at offsets 0, T, 2T, …; the last one ends at the last token and scores
    only what the others did not, so every token but the first is scored once."""

    def __init__(self, tokens: TokenFile, context: int, limit: int = 0) -> None:
        self.tokens, self.context = tokens, context
        n = len(tokens) - 1  # tokens that have a predecessor: the ones scored
        self.full = n // context
        self.tail = n % context
        count = self.full + (1 if self.tail else 0)
        # ``limit`` > 0: that many windows, evenly spaced over the split (a corpus of
        # gigabytes is validated on a sample, as nanoGPT's eval_iters does).
        self.picked = (
            np.unique(np.linspace(0, count - 1, limit).round().astype(np.int64))
            if 0 < limit < count
            else None
        )

    @property
    def tokens_per_byte(self) -> float:
        return self.tokens.tokens_per_byte

    def __len__(self) -> int:
        if self.picked is not None:
            return len(self.picked)
        return self.full + (1 if self.tail else 0)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self.picked is not None:
            i = int(self.picked[i])
        last = self.tail and i == self.full
        start = len(self.tokens) - 1 - self.context if last else i * self.context
        w = self.tokens.window(start, self.context + 1)
        x, y = w[:-1], w[1:].clone()
        if last:
            y[: self.context - self.tail] = IGNORE_INDEX  # scored by the window before
        return x, y


def check_length(tokens: TokenFile, context: int, where: str) -> None:
    if len(tokens) < context + 1:
        raise DataInputError(
            f"{where} has {len(tokens)} tokens, fewer than one window of "
            f"data.context + 1 = {context + 1}; give more text or a shorter context"
        )
