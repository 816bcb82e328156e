"""Decoder-only language model (GPT-2, Radford et al. 2019; sizes after nanoGPT).

Token embedding, positions (``model.pos``: a learned table, rotary inside attention,
or none), the same :class:`~odetx.models.ode.ODEStack` as the ViT with causal
attention (so every arch, solver and weight sharing applies), a final norm, and a
head tied to the token embedding or, with ``model.tie_head: false``, its own
``head`` (``Linear(dim, vocab, bias=False)``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.models.components import final_norm
from odetx.models.fields import init_weights
from odetx.models.ode import ODEStack
from odetx.models.positions import POSITIONS


class GPT(nn.Module):
    """``forward(tokens)``: ids ``(B, T)``, ``T <= model.context`` -> logits ``(B, T, vocab)``."""

    def __init__(self, model: ModelConfig, solver: SolverConfig, info: DataInfo) -> None:
        super().__init__()
        self.context = model.context
        self.token_embed = nn.Embedding(info.vocab_size, model.dim)
        if POSITIONS[model.pos].learned:
            self.pos_embed = nn.Parameter(torch.zeros(1, model.context, model.dim))
        else:
            self.register_parameter("pos_embed", None)
        self.drop = nn.Dropout(model.dropout)
        self.stack = ODEStack(model, solver, causal=True)
        self.norm = final_norm(model)
        self.head = None if model.tie_head else nn.Linear(model.dim, info.vocab_size, bias=False)
        self.apply(init_weights)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        if self.pos_embed is not None:
            nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.forward_from(tokens, 0)

    def forward_from(self, tokens: Tensor, start: int) -> Tensor:
        """Logits of ``tokens`` placed at positions ``start, start + 1, …`` (generation
        with a key/value cache feeds the new tokens only). Rotary positions are relative:
        without a cache ``start`` changes nothing; with one, the cache places the tokens."""
        T = tokens.shape[1]
        x = self.token_embed(tokens)  # (B, T, dim)
        pos = self.pos_embed
        if pos is not None:
            x = x + pos[:, start : start + T]
        x = self.norm(self.stack(self.drop(x)))
        if self.head is not None:
            return self.head(x)  # (B, T, vocab)
        return x @ self.token_embed.weight.t()  # (B, T, vocab): the head is the embedding
