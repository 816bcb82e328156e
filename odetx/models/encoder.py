"""Transformer encoder for token sequences (Vaswani et al. 2017; pooling after BERT, 2019).

The same :class:`~odetx.models.ode.ODEStack` as the ViT, so every arch, solver
and weight-sharing choice applies unchanged; only the embedding and the pooling
differ. Padding never reaches the answer: attention ignores padded keys, padded
states start at zero whatever their token ids, and pooling reads real tokens only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.data.sequences import PAD_ID
from odetx.models.components import final_norm
from odetx.models.fields import init_weights
from odetx.models.ode import ODEStack
from odetx.models.positions import POSITIONS
from odetx.registry import Registry


class ClsPool(nn.Module):
    """A learned class token before the sequence; its final state is the summary."""

    prefix = 1

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def prepend(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, dim)
        real = torch.ones_like(mask[:, :1])  # (B, 1): the class token is always real
        return torch.cat([cls, x], dim=1), torch.cat([real, mask], dim=1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return x[:, 0]  # (B, dim)


class MeanPool(nn.Module):
    """The mean of the final states of the real tokens."""

    prefix = 0

    def __init__(self, dim: int) -> None:
        super().__init__()

    def prepend(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return x, mask

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, N, 1)
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)  # (B, dim)


POOLS: Registry[type[nn.Module]] = Registry("pooling")
POOLS.register("cls", ClsPool)
POOLS.register("mean", MeanPool)


class Encoder(nn.Module):
    """Token embedding (id 0 = padding), positions (``model.pos``), ODE stack, final norm,
    pooling (``model.pool``: ``cls`` or ``mean``), linear head.

    ``forward(tokens, mask)`` takes ``tokens`` ``(B, N)`` with ``N <= info.max_len``
    and ``mask`` ``(B, N)``, True on real tokens.
    """

    def __init__(self, model: ModelConfig, solver: SolverConfig, info: DataInfo) -> None:
        super().__init__()
        self.token_embed = nn.Embedding(info.vocab_size, model.dim, padding_idx=PAD_ID)
        self.pool = POOLS[model.pool](model.dim)
        if POSITIONS[model.pos].learned:
            n = self.pool.prefix + info.max_len
            self.pos_embed = nn.Parameter(torch.zeros(1, n, model.dim))
        else:  # rotary positions live in attention; or there are none
            self.register_parameter("pos_embed", None)
        self.pos_drop = nn.Dropout(model.dropout)
        self.stack = ODEStack(model, solver)
        self.norm = final_norm(model)
        self.head = nn.Linear(model.dim, info.num_classes)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        # BERT's std 0.02 rather than nn.Embedding's N(0, 1), which would dwarf the positions;
        # the re-draw also hits the padding row, which must stay the zero vector.
        nn.init.trunc_normal_(self.token_embed.weight, std=0.02)
        with torch.no_grad():
            self.token_embed.weight[PAD_ID].zero_()
        self.apply(init_weights)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        x, mask = self.pool.prepend(self.token_embed(tokens), mask)  # (B, prefix + N, dim)
        pos = self.pos_embed
        if pos is not None:
            x = x + pos[:, : x.shape[1]]
        # Zeroed padding makes the whole state, not just the real tokens, independent of
        # what the padding holds; adaptive solvers measure their error over all of it.
        x = self.pos_drop(x.masked_fill(~mask.unsqueeze(-1), 0.0))
        x = self.norm(self.stack(x, mask))
        return self.head(self.pool(x, mask))  # (B, classes)
