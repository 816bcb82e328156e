"""An odetx plugin: linear attention in the field, the SSPRK3 tableau, and a preset.

- ``model.attn: linear`` — the attention field A with softmax(q kᵀ) replaced by the
  kernel φ(q) φ(k)ᵀ, φ = elu + 1 (Katharopoulos et al., *Transformers are RNNs*, ICML
  2020): cost linear in the number of tokens.
- ``--solver ssprk3`` — the strong-stability-preserving third-order Runge–Kutta method
  (Shu & Osher 1988), run by odetx's own integrator, so it exports.
- ``--model vit-micro-linear`` — ``vit-micro`` with the linear attention.

Installed (``pip install -e examples/plugin``), it is loaded by every odetx command through
its entry point; without installing, ``--plugin odetx_linattn`` with this folder on
``PYTHONPATH`` does the same.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odetx.errors import ConfigError
from odetx.plugins import attention, preset, tableau

__version__ = "0.1.0"

EPS = 1e-6  # keeps the normaliser away from zero (φ > 0, so it only matters for masked rows)


class LinearAttention(nn.Module):
    """Multi-head linear attention: ``y_i = φ(q_i) Σ_j φ(k_j) v_jᵀ / φ(q_i) Σ_j φ(k_j)``.

    Non-causal, the sums run over every real token (``mask``); causal, over ``j ≤ i``
    (prefix sums). Called as ``(x, mask, t)`` like odetx's softmax attention; its
    projections come from ``parts``, so every ``model.time`` mode works. Scriptable.
    """

    def __init__(self, dim, heads, qkv_bias, dropout, causal, parts, comp) -> None:
        super().__init__()
        if comp.kv_heads not in (0, heads):
            raise ConfigError("model.kv_heads", "linear attention has a key/value head per head")
        if comp.rope:
            raise ConfigError("model.pos", "linear attention takes learned positions or none")
        self.heads = heads
        self.causal = causal
        self.eps = EPS
        self.qkv = parts.linear(dim, 3 * dim, qkv_bias)
        self.proj = parts.linear(dim, dim, comp.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None, t: float = 0.0) -> Tensor:
        B, N, D = x.shape
        qkv = self.qkv(x, t).view(B, N, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
        q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        if mask is not None:  # padding keys take no part in any sum
            k = k * mask[:, None, :, None].to(k.dtype)
        if self.causal:
            kv = torch.einsum("bhnd,bhne->bhnde", k, v).cumsum(2)  # (B, heads, N, hd, hd)
            num = torch.einsum("bhnd,bhnde->bhne", q, kv)
            den = (q * k.cumsum(2)).sum(-1, keepdim=True)  # (B, heads, N, 1)
        else:
            kv = torch.einsum("bhnd,bhne->bhde", k, v)  # (B, heads, hd, hd)
            num = torch.einsum("bhnd,bhde->bhne", q, kv)
            den = (q * k.sum(2, keepdim=True)).sum(-1, keepdim=True)
        y = num / (den + self.eps)
        return self.proj(y.transpose(1, 2).flatten(2), t)  # (B, N, dim)


attention(
    "linear",
    LinearAttention,
    "linear attention: φ(q) (φ(k)ᵀ v), φ = elu + 1 (Katharopoulos et al. 2020); O(N)",
)

tableau(
    "ssprk3",
    order=3,
    c=[0, 1, 0.5],
    a=[[], [1], [0.25, 0.25]],
    b=[1 / 6, 1 / 6, 2 / 3],
    reference="Shu & Osher (1988), strong-stability-preserving RK3",
)

preset(
    "vit-micro-linear",
    "vit",
    depth=6,
    dim=96,
    heads=4,
    mlp_ratio=2.0,
    patch_size=4,
    dropout=0.1,
    attn="linear",
    description="vit-micro with linear attention (odetx-linattn)",
)
