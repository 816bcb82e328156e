"""Attentions (``model.attn``): what the attention field A of a layer computes.

An attention kind builds the module A's sub-field evaluates after its norm,
``build(dim, heads, qkv_bias, dropout, causal, parts, comp) -> module`` called as
``(x, mask, t)``: ``x`` is ``(B, N, dim)``, ``mask`` a ``(B, N)`` key-padding mask (True
where a token is real) or None, ``t`` the depth time its ``parts.linear`` projections
may read (:mod:`odetx.models.time`). The built-in kind, ``softmax``, is multi-head
scaled dot-product attention (:class:`odetx.models.fields.Attention`, registered there);
plugins add others (:func:`odetx.plugins.attention`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from odetx.registry import Registry


@dataclass(frozen=True)
class AttentionKind:
    """An attention, registered by name.

    Args:
        name: registry name (``model.attn``).
        build: ``(dim, heads, qkv_bias, dropout, causal, parts, comp) -> module`` called
            as ``(x, mask, t)``.
        description: one line for ``odetx list``.
        cached: generation may keep its keys and values (:mod:`odetx.models.kvcache`):
            only attention built on :class:`~odetx.models.fields.SelfAttend`; any other
            reads the whole window at every generated token.
        fused: :class:`~odetx.models.fused.FusedParallelField` has a form of it
            (``model.fused``).
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    cached: bool = False
    fused: bool = False


ATTENTIONS: Registry[AttentionKind] = Registry("attention")
