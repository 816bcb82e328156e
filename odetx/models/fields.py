"""The two vector fields of a transformer layer: A(x) = MHA(LN_a x), M(x) = MLP(LN_m x).

What they are built of (norm, MLP, positions, key/value heads, biases) are the
components of :mod:`odetx.models.components`; the defaults are the plain pre-LN layer.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.attention import ATTENTIONS, AttentionKind
from odetx.models.components import PLAIN, Components
from odetx.models.mlps import MLP, MLPS
from odetx.models.positions import NoRotary, Rotary
from odetx.models.time import AUTONOMOUS, NoNorm, TimeParts, init_time_parts
from odetx.solvers.field import Field

__all__ = ["AUTONOMOUS", "MLP", "Attention", "LayerField", "SelfAttend", "attend", "init_weights"]


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``.

    ``mask`` is a key-padding mask ``(B, N)``, True where a token is real;
    ``causal`` lets each token attend to itself and earlier tokens only; ``parts``
    builds the projections (time-dependent ones take the depth time ``t``); ``comp``
    sets the key/value heads, rotary positions and the output projection's bias.

    ``qkv`` is one linear layer of ``(heads + 2·kv_heads)·head_dim`` outputs, its rows
    all query heads, then all key heads, then all value heads.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        parts: TimeParts = AUTONOMOUS,
        comp: Components = PLAIN,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        kv_heads = comp.kv_heads or heads
        head_dim = dim // heads
        self.qkv = parts.linear(dim, (heads + 2 * kv_heads) * head_dim, qkv_bias)
        rope = Rotary(head_dim, comp.rope_fraction, comp.rope_theta) if comp.rope else None
        self.core = SelfAttend(heads, causal, dropout, kv_heads, rope)
        self.proj = parts.linear(dim, dim, comp.bias)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None, t: float = 0.0) -> Tensor:
        return self.proj(self.core(self.qkv(x, t), mask), t)


ATTENTIONS.register(
    "softmax",
    AttentionKind(
        "softmax",
        Attention,
        "multi-head scaled dot-product attention, softmax(q kᵀ / √d) v (Vaswani et al. 2017)",
        cached=True,
        fused=True,
    ),
)


class SelfAttend(nn.Module):
    """The parameter-free core of attention, ``qkv -> heads``: a module of its own so
    that generation can give each one a key/value cache (:mod:`odetx.models.kvcache`).

    Rotary positions (``rope``, :class:`~odetx.models.positions.Rotary`) turn the
    queries and keys of positions ``0 … N-1``; each of the ``kv_heads`` key/value heads
    serves ``heads / kv_heads`` consecutive query heads (grouped-query attention).
    """

    def __init__(
        self,
        heads: int,
        causal: bool = False,
        dropout: float = 0.0,
        kv_heads: int = 0,
        rope: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.kv_heads = kv_heads or heads
        self.causal = causal
        self.dropout = dropout
        self.rope = NoRotary() if rope is None else rope

    def split(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``qkv`` (B, N, (heads + 2·kv_heads)·head_dim) as q (B, heads, N, head_dim) and
        k, v (B, kv_heads, N, head_dim), views of it."""
        h, kv = self.heads, self.kv_heads
        head_dim = qkv.shape[-1] // (h + 2 * kv)
        q, k, v = qkv.split([h * head_dim, kv * head_dim, kv * head_dim], dim=-1)
        q = q.unflatten(-1, (h, head_dim)).transpose(1, 2)
        k = k.unflatten(-1, (kv, head_dim)).transpose(1, 2)
        v = v.unflatten(-1, (kv, head_dim)).transpose(1, 2)
        return q, k, v

    def expand(self, kv: Tensor) -> Tensor:
        """Keys or values (B, kv_heads, L, head_dim) repeated to (B, heads, L, head_dim),
        each head ``heads / kv_heads`` times in a row (Hugging Face's ``repeat_kv``)."""
        if self.kv_heads == self.heads:
            return kv
        B, kvh, L, d = kv.shape
        n = self.heads // self.kv_heads
        return kv[:, :, None].expand(B, kvh, n, L, d).reshape(B, kvh * n, L, d)

    def forward(self, qkv: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = self.split(qkv)
        q, k = self.rope(q, 0), self.rope(k, 0)
        p = self.dropout if self.training else 0.0
        return attend(q, self.expand(k), self.expand(v), mask, p, self.causal)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    dropout_p: float = 0.0,
    causal: bool = False,
) -> Tensor:
    """Attention of q, k, v (B, heads, N, head_dim); the heads concatenated, (B, N, dim)."""
    attn_mask: Tensor | None = None
    if mask is not None:
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, N): broadcast over heads and queries
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=causal
    )
    return y.transpose(1, 2).flatten(2)  # (B, N, heads * head_dim)


class LayerField(Field):
    """One group's weights, evaluated as A, M or A + M (``which``: ``ATTN``, ``MLP``, ``BOTH``).

    ``parts`` (:mod:`odetx.models.time`, ``model.time``) builds the norms and
    projections: autonomous ones ignore ``t`` (a group's weights do not change within
    its span); time-dependent ones read it.

    With ``model.fused`` a shared-norm layer is built as
    :class:`odetx.models.fused.FusedParallelField` instead, which stores the
    projections fused.

    Args:
        shared_norm: one norm feeds both fields (the parallel formulation of
            GPT-J/PaLM); otherwise A and M each have their own.
        causal: attention to earlier tokens only (language models).
        comp: the norm, MLP, positions, key/value heads and biases.
    """

    # The components are plain data for rebuilding the field (the fused layer), not
    # something its forward reads.
    __jit_ignored_attributes__ = ["comp"]

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        shared_norm: bool = False,
        causal: bool = False,
        parts: TimeParts = AUTONOMOUS,
        comp: Components = PLAIN,
    ) -> None:
        super().__init__()
        self.comp = comp
        self.shared_norm = shared_norm
        self.norm_a = parts.norm(dim, comp.norm, comp.norm_eps)
        self.attn = ATTENTIONS[comp.attn].build(dim, heads, qkv_bias, dropout, causal, parts, comp)
        # NoNorm keeps the attribute scriptable when the norm is shared.
        self.norm_m = NoNorm() if shared_norm else parts.norm(dim, comp.norm, comp.norm_eps)
        hidden = comp.hidden(dim, mlp_ratio)
        self.mlp = MLPS[comp.mlp].build(dim, hidden, dropout, parts, comp.bias)

    def forward(self, which: int, t: float, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if which == self.ATTN:
            return self.attn(self.norm_a(x, t), mask, t)
        if self.shared_norm:
            h = self.norm_a(x, t)
            if which == self.MLP:
                return self.mlp(h, t)
            return self.attn(h, mask, t) + self.mlp(h, t)
        if which == self.MLP:
            return self.mlp(self.norm_m(x, t), t)
        return self.attn(self.norm_a(x, t), mask, t) + self.mlp(self.norm_m(x, t), t)


def init_weights(module: nn.Module) -> None:
    """ViT/DeiT initialisation: truncated normal (std 0.02) linears (the norms of
    :mod:`odetx.models.time` start at unit gain and zero bias on their own)."""
    init_time_parts(module)
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
