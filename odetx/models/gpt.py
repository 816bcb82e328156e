"""Decoder-only language model (GPT-2, Radford et al. 2019; sizes after nanoGPT).

Token embedding, learned positions, the same :class:`~odetx.models.ode.ODEStack` as
the ViT with causal attention (so every arch, solver and weight sharing applies),
final LayerNorm, and a head tied to the token embedding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.models.fields import init_weights
from odetx.models.ode import ODEStack


class GPT(nn.Module):
    """``forward(tokens)``: ids ``(B, T)``, ``T <= model.context`` -> logits ``(B, T, vocab)``."""

    def __init__(self, model: ModelConfig, solver: SolverConfig, info: DataInfo) -> None:
        super().__init__()
        self.context = model.context
        self.token_embed = nn.Embedding(info.vocab_size, model.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, model.context, model.dim))
        self.drop = nn.Dropout(model.dropout)
        self.stack = ODEStack(model, solver, causal=True)
        self.norm = nn.LayerNorm(model.dim)
        self.apply(init_weights)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.forward_from(tokens, 0)

    def forward_from(self, tokens: Tensor, start: int) -> Tensor:
        """Logits of ``tokens`` placed at positions ``start, start + 1, …`` (generation
        with a key/value cache feeds the new tokens only)."""
        T = tokens.shape[1]
        x = self.token_embed(tokens) + self.pos_embed[:, start : start + T]  # (B, T, dim)
        x = self.norm(self.stack(self.drop(x)))
        return x @ self.token_embed.weight.t()  # (B, T, vocab): the head is the embedding
