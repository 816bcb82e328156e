"""Positions (``model.pos``): how a model knows where each token sits.

- ``learned``: a table of learned positions added to the embeddings (``pos_embed``;
  GPT-2, ViT, BERT): absolute, so a model reads at most its table's length.
- ``rope``: rotary position embedding (Su et al. 2021) inside attention: queries and
  keys are rotated by angles proportional to their positions, so their products
  depend on relative positions only. GPT-NeoX/Llama's "rotate half" layout (the first
  and the second half of the rotary dims pair up, not adjacent dims), inverse
  frequencies ``theta^(-2i/rot)``; ``model.rope_fraction`` rotates the first
  ``round(head_dim · fraction)`` dims of each head and passes the rest through
  (GPT-NeoX's ``rotary_pct``).
- ``none``: no positions at all (causal attention alone tells order; NoPE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from odetx.registry import Registry


def rotary_dims(head_dim: int, fraction: float) -> int:
    """How many dims of each head rotate: ``round(head_dim · fraction)``."""
    return round(head_dim * fraction)


class Rotary(nn.Module):
    """Rotate ``x`` (B, heads, N, head_dim) at positions ``start, start + 1, …``.

    The angles are computed on each call (no table, so any position works and nothing
    is stored): in float32 as Hugging Face's rotary embeddings, in float64 for float64
    inputs; cos and sin are then cast to ``x``'s dtype.
    """

    def __init__(self, head_dim: int, fraction: float = 1.0, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.rot = rotary_dims(head_dim, fraction)
        self.theta = theta

    def forward(self, x: Tensor, start: int) -> Tensor:
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        exps = torch.arange(0, self.rot, 2, device=x.device).to(dtype) / self.rot  # (rot/2,)
        inv_freq = 1.0 / torch.pow(self.theta, exps)
        pos = torch.arange(start, start + x.shape[-2], device=x.device).to(dtype)  # (N,)
        freqs = pos[:, None] * inv_freq[None, :]  # (N, rot/2)
        emb = torch.cat([freqs, freqs], dim=-1)  # (N, rot)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        half = self.rot // 2
        xr = x[..., : self.rot]
        rotated = torch.cat([-xr[..., half:], xr[..., :half]], dim=-1)  # "rotate half"
        out = xr * cos + rotated * sin
        if self.rot == self.head_dim:
            return out
        return torch.cat([out, x[..., self.rot :]], dim=-1)


class NoRotary(nn.Module):
    """The place of :class:`Rotary` in attention without rotary positions."""

    def forward(self, x: Tensor, start: int) -> Tensor:
        return x


@dataclass(frozen=True)
class Positions:
    """A way of telling positions, registered by name.

    Args:
        name: registry name (``model.pos``).
        learned: the backbone adds a learned table (``pos_embed``) to its embeddings.
        rotary: attention rotates queries and keys (:class:`Rotary`).
        description: one line for ``odetx list``.
    """

    name: str
    learned: bool
    rotary: bool
    description: str

    @property
    def rolls(self) -> bool:
        """Whether a generation's key/value cache may roll past the context: with no
        absolute positions, a cached key stays valid when the oldest token leaves."""
        return not self.learned


POSITIONS: Registry[Positions] = Registry("positions")
for _p in (
    Positions("learned", True, False, "a learned table added to the embeddings (GPT-2, ViT)"),
    Positions("rope", False, True, "rotary: queries and keys rotated in attention (Llama, NeoX)"),
    Positions("none", False, False, "no positions (causal attention alone orders tokens)"),
):
    POSITIONS.register(_p.name, _p)
