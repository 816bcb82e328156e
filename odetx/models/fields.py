"""The two vector fields of a transformer layer: A(x) = MHA(LN_a x), M(x) = MLP(LN_m x)."""

import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.time import NoNorm, TimeParts, init_time_parts
from odetx.solvers.field import Field

AUTONOMOUS = TimeParts()


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``.

    ``mask`` is a key-padding mask ``(B, N)``, True where a token is real;
    ``causal`` lets each token attend to itself and earlier tokens only; ``parts``
    builds the projections (time-dependent ones take the depth time ``t``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        parts: TimeParts = AUTONOMOUS,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = parts.linear(dim, 3 * dim, qkv_bias)
        self.core = SelfAttend(heads, causal, dropout)
        self.proj = parts.linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None, t: float = 0.0) -> Tensor:
        return self.proj(self.core(self.qkv(x, t), mask), t)


class SelfAttend(nn.Module):
    """The parameter-free core of attention, ``qkv -> heads``: a module of its own so
    that generation can give each one a key/value cache (:mod:`odetx.models.kvcache`)."""

    def __init__(self, heads: int, causal: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.dropout = dropout

    def forward(self, qkv: Tensor, mask: Tensor | None = None) -> Tensor:
        p = self.dropout if self.training else 0.0
        return attend(qkv, self.heads, mask, p, self.causal)


def attend(
    qkv: Tensor, heads: int, mask: Tensor | None, dropout_p: float, causal: bool = False
) -> Tensor:
    """Attention of projected ``qkv`` (B, N, 3·dim); the heads concatenated, (B, N, dim)."""
    B, N, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)
    # q, k, v: each (B, heads, N, head_dim)
    attn_mask: Tensor | None = None
    if mask is not None:
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, N): broadcast over heads and queries
    y = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=causal
    )
    return y.transpose(1, 2).reshape(B, N, C)  # (B, N, heads * head_dim)


class MLP(nn.Module):
    def __init__(
        self, dim: int, hidden: int, dropout: float = 0.0, parts: TimeParts = AUTONOMOUS
    ) -> None:
        super().__init__()
        self.fc1 = parts.linear(dim, hidden)
        self.fc2 = parts.linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x, t))), t))


class LayerField(Field):
    """One group's weights, evaluated as A, M or A + M (``which``: ``ATTN``, ``MLP``, ``BOTH``).

    ``parts`` (:mod:`odetx.models.time`, ``model.time``) builds the norms and
    projections: autonomous ones ignore ``t`` (a group's weights do not change within
    its span); time-dependent ones read it.

    With ``model.fused`` a shared-norm layer is built as
    :class:`odetx.models.fused.FusedParallelField` instead, which stores the
    projections fused.

    Args:
        shared_norm: one LayerNorm feeds both fields (the parallel formulation of
            GPT-J/PaLM); otherwise A and M each have their own.
        causal: attention to earlier tokens only (language models).
    """

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
    ) -> None:
        super().__init__()
        self.shared_norm = shared_norm
        self.norm_a = parts.norm(dim)
        self.attn = Attention(dim, heads, qkv_bias, dropout, causal, parts)
        # NoNorm keeps the attribute scriptable when the norm is shared.
        self.norm_m = NoNorm() if shared_norm else parts.norm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout, parts)

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
    """ViT/DeiT initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
    init_time_parts(module)
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
