"""The fused parallel layer (PaLM, Chowdhery et al. 2022; ViT-22B, Dehghani et al. 2023).

With one shared norm, the attention's input projection (Q, K, V) and the MLP's
first layer read the same input, so they are one matmul; the two output
projections are one weight applied to both halves. ``model.fused`` builds every
field as :class:`FusedParallelField`; this module also converts state dicts
between the layouts, so weights move freely between a fused and an unfused model.

Per field prefix ``P`` (e.g. ``stack.blocks.0.field.``), with ``q`` the Q, K, V
projection's rows (``3d``; ``(heads + 2·kv_heads)·head_dim`` with ``model.kv_heads``)::

    unfused                              fused
    P.attn.qkv.{weight,bias}  (q, d)     P.in_proj.weight (q + h, d), P.in_proj.bias
    P.mlp.fc1.{weight,bias}   (h, d)
    P.attn.proj.{weight,bias} (d, d)     P.out_proj.weight (d, d + h)
    P.mlp.fc2.{weight,bias}   (d, h)     P.attn_out_bias (d), P.mlp_out_bias (d)

Every norm (``model.norm``), positions (``model.pos``) and key/value head count fuse;
a gated MLP (``swiglu``) and a layer without biases (``model.bias=false``) do not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.components import PLAIN, Components
from odetx.models.fields import AUTONOMOUS, LayerField, SelfAttend
from odetx.models.mlps import MLPS
from odetx.models.positions import Rotary
from odetx.models.time import BasisNorm, FiLMNorm, TimeParts
from odetx.solvers import FixedStepIntegrator
from odetx.solvers.field import Field

_QKV = "attn.qkv.weight"
_IN = "in_proj.weight"


def fuse_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with every shared-norm field's projections in the fused layout."""
    out = dict(state)
    for key in [k for k in state if k.endswith(_QKV)]:
        p = key[: -len(_QKV)]
        if p + "norm_m.weight" in state:
            raise ValueError(f"{p or 'the field'} has two norms; only a shared norm fuses")
        if p + "mlp.fc1.bias" not in state:
            raise ValueError(f"{p or 'the field'} has no MLP biases; the fused layer needs them")
        qkv_w, fc1_w = out.pop(p + "attn.qkv.weight"), out.pop(p + "mlp.fc1.weight")
        qkv_b = out.pop(p + "attn.qkv.bias", None)
        if qkv_b is None:
            qkv_b = qkv_w.new_zeros(qkv_w.shape[0])
        out[p + "in_proj.weight"] = torch.cat([qkv_w, fc1_w])
        out[p + "in_proj.bias"] = torch.cat([qkv_b, out.pop(p + "mlp.fc1.bias")])
        out[p + "out_proj.weight"] = torch.cat(
            [out.pop(p + "attn.proj.weight"), out.pop(p + "mlp.fc2.weight")], 1
        )
        out[p + "attn_out_bias"] = out.pop(p + "attn.proj.bias")
        out[p + "mlp_out_bias"] = out.pop(p + "mlp.fc2.bias")
    return out


def unfuse_state_dict(state: dict[str, Tensor], qkv_bias: bool = True) -> dict[str, Tensor]:
    """The inverse of :func:`fuse_state_dict`; ``qkv_bias`` is the unfused model's setting."""
    out = dict(state)
    for key in [k for k in state if k.endswith(_IN)]:
        p = key[: -len(_IN)]
        w_in, b_in = out.pop(p + "in_proj.weight"), out.pop(p + "in_proj.bias")
        w_out = out.pop(p + "out_proj.weight")
        dim = w_out.shape[0]
        hidden = w_out.shape[1] - dim
        qkv = w_in.shape[0] - hidden  # 3·dim, or fewer rows with grouped-query attention
        out[p + "attn.qkv.weight"], out[p + "mlp.fc1.weight"] = w_in.split([qkv, hidden])
        qkv_b, out[p + "mlp.fc1.bias"] = b_in.split([qkv, hidden])
        if qkv_bias:
            out[p + "attn.qkv.bias"] = qkv_b
        elif qkv_b.any():
            raise ValueError(f"{p}in_proj.bias has a non-zero qkv part but qkv_bias=False")
        out[p + "attn.proj.weight"], out[p + "mlp.fc2.weight"] = w_out.split(
            [dim, w_out.shape[1] - dim], 1
        )
        out[p + "attn.proj.bias"] = out.pop(p + "attn_out_bias")
        out[p + "mlp.fc2.bias"] = out.pop(p + "mlp_out_bias")
    return {k: v.contiguous() for k, v in out.items()}


def split_k(a: Tensor, g: Tensor, w_a: Tensor, w_g: Tensor, bias: Tensor) -> Tensor:
    """``[a, g] @ [w_a, w_g]^T + bias`` accumulated in one buffer, never concatenating.

    Concatenating ``a`` and ``g`` would cost a copy forward and a split backward;
    on CPU that made a DeiT-Ti training step ~15% slower.
    """
    out = torch.addmm(bias, a.flatten(0, -2), w_a.t())
    return torch.addmm(out, g.flatten(0, -2), w_g.t()).view(a.shape)


class _InProj(torch.autograd.Function):
    """``h @ w^T + b`` as one matmul, returned as its first ``n`` columns and the rest.

    Autograd's own backward of a split concatenates the two output gradients into a
    fresh (rows, 3d + h) buffer; this one consumes them apart (split-K for the input
    gradient, each weight block written in place), which saved ~3% of a layer's
    training step (measured on CPU). Under autocast it computes in the autocast
    dtype, as ``F.linear`` would, and returns gradients in the parameters' dtypes.
    """

    @staticmethod
    def forward(ctx: Any, h: Tensor, w: Tensor, b: Tensor, n: int) -> tuple[Tensor, Tensor]:
        out = torch.addmm(b, h, w.t())
        ctx.n, ctx.dtypes = n, (h.dtype, w.dtype, b.dtype)
        ctx.save_for_backward(h.to(out.dtype), w.to(out.dtype))
        return out[:, :n], out[:, n:]

    @staticmethod
    def backward(ctx: Any, d_first: Tensor, d_rest: Tensor) -> tuple:
        h, w = ctx.saved_tensors
        n, (h_dtype, w_dtype, b_dtype) = ctx.n, ctx.dtypes
        d_first, d_rest = d_first.to(h.dtype), d_rest.to(h.dtype)
        dh = torch.addmm(torch.mm(d_first, w[:n]), d_rest, w[n:])
        dw = torch.empty_like(w)
        torch.mm(d_first.t(), h, out=dw[:n])
        torch.mm(d_rest.t(), h, out=dw[n:])
        db = torch.cat([d_first.sum(0), d_rest.sum(0)])
        return dh.to(h_dtype), dw.to(w_dtype), db.to(b_dtype), None


class FusedParallelField(Field):
    """A shared-norm :class:`LayerField` (with Q, K, V biases) whose projections are
    stored fused; its state dict is :func:`fuse_state_dict` of the unfused one's.

    ``which`` = 0 or 1 (A or M alone, as the split schemes and ``odetx compare``
    need) uses slices of the fused weights. There is no dropout: the MLP's output
    dropout has no place in the fused sum (the config refuses the combination).

    ``in_gemm`` says how A + M computes the input projection: ``"one"`` matmul
    with the fused weight, ``"two"`` over its Q-K-V and MLP row blocks, or
    ``"auto"``: one on accelerators, two on CPU. On CPU one matmul buys nothing
    (the GEMM time is the same) and leaves Q, K, V and the MLP's pre-activation
    as strided column slices, which GELU and its backward read ~2x slower: a
    DeiT-Ti training step was ~9% slower than with two.

    ``parts`` builds the shared norm, so ``model.time`` ``film`` applies as in the
    unfused field (its ``norm_a.film.*`` weights keep their names in both layouts);
    ``basis`` time-dependent projections have no fused form (the config refuses them).
    ``comp`` (:class:`~odetx.models.components.Components`) sets the norm, the GELU,
    rotary positions and key/value heads; gated MLPs and missing biases have no fused form.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        causal: bool = False,
        parts: TimeParts = AUTONOMOUS,
        comp: Components = PLAIN,
    ) -> None:
        super().__init__()
        if parts.mode == "basis":
            raise ValueError("FusedParallelField has no time-basis projections")
        mlp = MLPS[comp.mlp]
        if mlp.gated or not comp.bias:
            raise ValueError("FusedParallelField needs an ungated MLP with biases")
        self.dim, self.heads, self.hidden = dim, heads, comp.hidden(dim, mlp_ratio)
        kv_heads, head_dim = comp.kv_heads or heads, dim // heads
        self.qkv_width = (heads + 2 * kv_heads) * head_dim  # Q, K, V rows of in_proj
        self.causal = causal
        self.gelu = mlp.gelu  # GELU's approximate
        rope = Rotary(head_dim, comp.rope_fraction, comp.rope_theta) if comp.rope else None
        self.core = SelfAttend(heads, causal, 0.0, kv_heads, rope)
        self.norm_a = parts.norm(dim, comp.norm, comp.norm_eps)
        self.in_proj = nn.Linear(dim, self.qkv_width + self.hidden)
        self.out_proj = nn.Linear(dim + self.hidden, dim, bias=False)
        self.attn_out_bias = nn.Parameter(torch.zeros(dim))
        self.mlp_out_bias = nn.Parameter(torch.zeros(dim))
        self.in_gemm = "auto"

    def forward(self, which: int, t: float, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.norm_a(x, t)
        d3 = self.qkv_width
        w_in, b_in, w_out = self.in_proj.weight, self.in_proj.bias, self.out_proj.weight
        if which == self.ATTN:
            y = self.core(F.linear(h, w_in[:d3], b_in[:d3]), mask)
            return F.linear(y, w_out[:, : self.dim], self.attn_out_bias)
        if which == self.MLP:
            y = F.gelu(F.linear(h, w_in[d3:], b_in[d3:]), approximate=self.gelu)
            return F.linear(y, w_out[:, self.dim :], self.mlp_out_bias)
        one = self.in_gemm == "one" or (self.in_gemm == "auto" and h.device.type != "cpu")
        if not one:
            q_k_v, pre = F.linear(h, w_in[:d3], b_in[:d3]), F.linear(h, w_in[d3:], b_in[d3:])
        elif torch.jit.is_scripting() or not torch.is_grad_enabled():
            q_k_v, pre = F.linear(h, w_in, b_in).split([d3, self.hidden], -1)
        else:
            q_k_v, pre = self._in_proj_for_training(h, w_in, b_in, d3)
        a, g = self.core(q_k_v, mask), F.gelu(pre, approximate=self.gelu)
        w_a, w_g = w_out.split([self.dim, self.hidden], 1)
        return split_k(a, g, w_a, w_g, self.attn_out_bias + self.mlp_out_bias)

    @torch.jit.unused
    def _in_proj_for_training(
        self, h: Tensor, w: Tensor, b: Tensor, n: int
    ) -> tuple[Tensor, Tensor]:
        q_k_v, pre = _InProj.apply(h.flatten(0, -2), w, b, n)
        return q_k_v.unflatten(0, h.shape[:-1]), pre.unflatten(0, h.shape[:-1])


def to_fused_fields(model: nn.Module) -> nn.Module:
    """Swap every shared-norm :class:`LayerField` of a built fixed-step model for a
    :class:`FusedParallelField` holding the same weights (in place; returns ``model``);
    ``model.fused`` builds the fused fields from the start."""
    for parent in list(model.modules()):
        f = getattr(parent, "field", None)
        if isinstance(f, LayerField) and f.shared_norm:
            if not isinstance(parent, FixedStepIntegrator):
                # The adaptive integrator's sub-fields hold the field it was built with.
                raise ValueError("only fixed-step integrators can swap their field")
            if f.attn.dropout > 0.0 or f.mlp.drop.p > 0.0:
                raise ValueError("FusedParallelField has no dropout")
            if f.attn.qkv.bias is None:
                raise ValueError("FusedParallelField always has Q, K, V biases")
            if isinstance(f.norm_a, BasisNorm):
                raise ValueError("FusedParallelField has no time-basis projections")
            parts = TimeParts("film") if isinstance(f.norm_a, FiLMNorm) else AUTONOMOUS
            dim = f.norm_a.weight.shape[-1]
            hidden = f.mlp.fc2.in_features
            new = FusedParallelField(
                dim,
                f.attn.heads,
                hidden / dim,
                f.attn.causal,
                parts,
                dataclasses.replace(f.comp, mlp_hidden=hidden),
            )
            new.load_state_dict(fuse_state_dict(f.state_dict()))
            parent.field = new.to(f.norm_a.weight)
    return model
