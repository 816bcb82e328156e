"""The exported signature of each kind of model: its inputs, example and parity batches.

The artefact keeps the eager ``forward`` signature, so a caller feeds it exactly
what an odetx data loader yields:

- images: ``forward(images)``, ``images`` float32 ``(B, C, H, W)`` at the trained size;
- text (language models): ``forward(tokens)``, ``tokens`` int64 ``(B, T)``,
  ``1 <= T <= context``; returns next-token logits ``(B, T, vocab)``;
- tokens: ``forward(tokens, mask)``, ``tokens`` int64 ``(B, N)`` (id 0 is padding) and
  ``mask`` bool ``(B, N)``, True on real tokens, ``1 <= N <= max_len``. The mask is an
  input, not derived from the ids, because the encoder treats it as the only truth
  about padding (for odetx's datasets it equals ``tokens != 0``).

The batch dimension is free in both formats; for ``pt2`` it and the sequence length
are declared dynamic with :class:`torch.export.Dim`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from odetx.data.base import DataInfo
from odetx.registry import Registry

Inputs = tuple[Tensor, ...]

# Export traces with this batch: sizes 0 and 1 would be specialised into the graph.
EXAMPLE_BATCH = 2


class ImageInputs:
    """``forward(images)`` for the ViT."""

    call = "logits = m(images)"

    def __init__(self, info: DataInfo) -> None:
        self.shape = (info.in_chans, info.image_size, info.image_size)
        self.num_classes = info.num_classes

    def describe(self) -> list[str]:
        c, h, w = self.shape
        return [
            f"images: float32 (B, {c}, {h}, {w})",
            f"returns logits: float32 (B, {self.num_classes})",
        ]

    def sample(self, batch: int, gen: torch.Generator, short: bool = False) -> Inputs:
        return (torch.randn(batch, *self.shape, generator=gen),)

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        return ({0: torch.export.Dim("batch", min=1)},)


class TokenInputs:
    """``forward(tokens, mask)`` for the sequence encoder."""

    call = "logits = m(tokens, mask)"

    def __init__(self, info: DataInfo) -> None:
        self.vocab_size = info.vocab_size
        self.max_len = info.max_len
        self.num_classes = info.num_classes

    def describe(self) -> list[str]:
        return [
            "tokens: int64 (B, N), id 0 = padding",
            f"mask: bool (B, N), True on real tokens; 1 <= N <= {self.max_len}",
            f"returns logits: float32 (B, {self.num_classes})",
        ]

    def sample(self, batch: int, gen: torch.Generator, short: bool = False) -> Inputs:
        """Random ids with random real lengths (at least one token), padded after them.

        ``short`` halves the padded length, to exercise the dynamic sequence dimension.
        """
        n = max(1, self.max_len // 2) if short else self.max_len
        lengths = torch.randint(1, n + 1, (batch,), generator=gen)
        mask = torch.arange(n)[None, :] < lengths[:, None]  # (B, N)
        tokens = torch.randint(1, self.vocab_size, (batch, n), generator=gen)
        return tokens.masked_fill(~mask, 0), mask

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        batch = torch.export.Dim("batch", min=1)
        if self.max_len < 2:  # a length-1 dimension cannot be traced as dynamic
            return ({0: batch}, {0: batch})
        length = torch.export.Dim("tokens", min=1, max=self.max_len)
        return ({0: batch, 1: length}, {0: batch, 1: length})


class TextInputs:
    """``forward(tokens)`` for the causal language model."""

    call = "logits = m(tokens)"

    def __init__(self, info: DataInfo) -> None:
        self.vocab_size = info.vocab_size
        self.context = info.max_len

    def describe(self) -> list[str]:
        return [
            f"tokens: int64 (B, T), ids < {self.vocab_size}; 1 <= T <= {self.context}",
            f"returns next-token logits: float32 (B, T, {self.vocab_size})",
        ]

    def sample(self, batch: int, gen: torch.Generator, short: bool = False) -> Inputs:
        """Random ids; ``short`` halves the length, to exercise the dynamic dimension."""
        n = max(1, self.context // 2) if short else self.context
        return (torch.randint(0, self.vocab_size, (batch, n), generator=gen),)

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        batch = torch.export.Dim("batch", min=1)
        if self.context < 2:
            return ({0: batch},)
        return ({0: batch, 1: torch.export.Dim("tokens", min=1, max=self.context)},)


INPUTS: Registry[type] = Registry("input kind")
INPUTS.register("image", ImageInputs)
INPUTS.register("tokens", TokenInputs)
INPUTS.register("text", TextInputs)


def input_spec(info: DataInfo) -> ImageInputs | TokenInputs | TextInputs:
    """The signature of a model trained on data described by ``info``."""
    return INPUTS[info.kind](info)
