"""The two vector fields of a transformer layer: A(x) = MHA(LN_a x), M(x) = MLP(LN_m x)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``.

    ``mask`` is a key-padding mask ``(B, N)``, True where a token is real.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.proj(self.mix(self.qkv(x), mask))

    def mix(self, qkv: Tensor, mask: Tensor | None = None) -> Tensor:
        return attend(qkv, self.heads, mask, self.dropout if self.training else 0.0)


def attend(qkv: Tensor, heads: int, mask: Tensor | None, dropout_p: float) -> Tensor:
    """Attention of projected ``qkv`` (B, N, 3·dim); the heads concatenated, (B, N, dim)."""
    B, N, C3 = qkv.shape
    C = C3 // 3
    q, k, v = qkv.reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)
    # q, k, v: each (B, heads, N, head_dim)
    attn_mask: Tensor | None = None
    if mask is not None:
        attn_mask = mask[:, None, None, :]  # (B, 1, 1, N): broadcast over heads and queries
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    return y.transpose(1, 2).reshape(B, N, C)  # (B, N, heads * head_dim)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class LayerField(nn.Module):
    """One group's weights, evaluated as A, M or A + M (``which`` = 0, 1, 2).

    The fields are autonomous (a group's weights do not change within its span),
    so ``t`` is accepted for the solver interface and ignored.

    With a shared norm the unsplit field A + M can be computed as one *fused
    parallel layer* (PaLM, Chowdhery et al. 2022; ViT-22B, Dehghani et al. 2023):
    the attention's input projection and the MLP's first projection share their
    input, so they become one matmul, and so do the two output projections,
    ``out = [heads, gelu(h)] @ [W_proj, W_fc2]^T``. It is off by default
    (``fused``, a runtime attribute; :func:`odetx.models.fused.set_fused`). The
    parameters keep the unfused layout (one checkpoint format) and the input
    weights are concatenated per evaluation;
    :class:`odetx.models.fused.FusedParallelField` stores them fused instead.

    Args:
        shared_norm: one LayerNorm feeds both fields (the parallel formulation of
            GPT-J/PaLM); otherwise A and M each have their own.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        shared_norm: bool = False,
    ) -> None:
        super().__init__()
        self.shared_norm = shared_norm
        # Only a shared norm gives both fields one input (set_fused turns this on).
        self.fused: bool = False
        self.norm_a = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias, dropout)
        # Identity keeps the attribute scriptable when the norm is shared.
        self.norm_m = nn.Identity() if shared_norm else nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, which: int, t: float, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if which == 0:
            return self.attn(self.norm_a(x), mask)
        if self.shared_norm:
            h = self.norm_a(x)
            if which == 1:
                return self.mlp(h)
            # The MLP's output dropout has no place in the fused sum: train unfused then.
            if self.fused and not (self.training and self.mlp.dropout > 0.0):
                return self.fused_parallel(h, mask)
            return self.attn(h, mask) + self.mlp(h)
        if which == 1:
            return self.mlp(self.norm_m(x))
        return self.attn(self.norm_a(x), mask) + self.mlp(self.norm_m(x))

    def fused_parallel(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """A + M of the normed input ``h`` (B, N, dim) with one input and one output matmul."""
        qkv, fc1 = self.attn.qkv, self.mlp.fc1
        qkv_b = qkv.bias
        if qkv_b is None:
            qkv_b = torch.zeros(qkv.weight.shape[0], dtype=h.dtype, device=h.device)
        w_in = torch.cat([qkv.weight, fc1.weight])  # (3·dim + hidden, dim)
        z = F.linear(h, w_in, torch.cat([qkv_b, fc1.bias]))  # (B, N, 3·dim + hidden)
        q_k_v, pre = z.split([qkv.weight.shape[0], fc1.weight.shape[0]], -1)
        proj, fc2 = self.attn.proj, self.mlp.fc2
        return fused_output(
            self.attn.mix(q_k_v, mask),
            self.mlp.drop(F.gelu(pre)),
            proj.weight,
            fc2.weight,
            proj.bias + fc2.bias,
        )


def fused_output(a: Tensor, g: Tensor, w_a: Tensor, w_g: Tensor, bias: Tensor) -> Tensor:
    """``[a, g] @ [w_a, w_g]^T + bias``, accumulated in one buffer (a split-K matmul).

    Concatenating ``a`` and ``g`` first costs a copy forward and a split backward;
    on CPU that made the whole training step ~20% slower than two matmuls into one
    output (benchmarks/README.md).
    """
    out = torch.addmm(bias, a.flatten(0, -2), w_a.t())
    return torch.addmm(out, g.flatten(0, -2), w_g.t()).view(a.shape)


def init_weights(module: nn.Module) -> None:
    """ViT/DeiT initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
