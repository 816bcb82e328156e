"""Norms (``model.norm``): what normalises the state before each field and at the end.

A norm kind is the parameter-free normalisation, called as ``fn(x, weight, bias)``;
the parts of :mod:`odetx.models.time` own the gain and bias (autonomous, FiLM or a
Legendre basis in t) and hand them over, so each kind works with every time mode.

- ``layernorm``: ``(x - mean) / sqrt(var + eps) · weight + bias`` (Ba et al. 2016), what
  GPT-2, GPT-NeoX and the ViT use.
- ``rmsnorm``: ``x · rsqrt(mean(x²) + eps) · weight`` (Zhang & Sennrich 2019), Llama's;
  computed in float32 for half-precision inputs, as Hugging Face's ``LlamaRMSNorm``. No
  bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odetx.registry import Registry


class LayerNormFn(nn.Module):
    """``F.layer_norm`` over the last dimension with a given gain and bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.normalized_shape = (dim,)
        self.eps = eps

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


class RMSNormFn(nn.Module):
    """``x · rsqrt(mean(x²) + eps) · weight`` over the last dimension (no centring)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.normalized_shape = (dim,)
        self.eps = eps

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # Half precision squares in float32 (Llama's); float64 stays float64.
        h = x.float() if x.dtype == torch.float16 or x.dtype == torch.bfloat16 else x
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        y = weight * h.to(x.dtype)
        if bias is not None:
            y = y + bias
        return y


@dataclass(frozen=True)
class NormKind:
    """A normalisation, registered by name.

    Args:
        name: registry name (``model.norm``).
        fn: ``(dim, eps) -> module`` called as ``fn(x, weight, bias)``.
        bias: whether the norm has a bias (a ``bias`` parameter beside ``weight``).
        eps: the epsilon used when ``model.norm_eps`` is unset.
        description: one line for ``odetx list``.
    """

    name: str
    fn: type[nn.Module]
    bias: bool
    eps: float
    description: str


NORMS: Registry[NormKind] = Registry("norm")
for _n in (
    # 1e-5: torch's default, which every odetx backbone has always used.
    NormKind("layernorm", LayerNormFn, True, 1e-5, "LayerNorm: centred, scaled, gain and bias"),
    # 1e-6: Hugging Face's LlamaConfig default rms_norm_eps.
    NormKind("rmsnorm", RMSNormFn, False, 1e-6, "RMSNorm (Llama): scaled by the RMS, gain only"),
):
    NORMS.register(_n.name, _n)
