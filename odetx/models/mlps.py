"""MLPs (``model.mlp``): the field M(x) = MLP(norm(x)) that each token runs alone.

Every kind keeps the parameter names ``fc1`` (in) and ``fc2`` (out), so weight
sharing, time dependence and the state dict's layout work alike for all:

- ``gelu``: ``fc2(gelu(fc1 x))`` with the exact (erf) GELU (ViT, BERT).
- ``gelu_tanh``: the same with GELU's tanh approximation (GPT-2's ``gelu_new``, GPT-J).
- ``swiglu``: ``fc2(silu(gate) · up)`` (Shazeer 2020; Llama): ``fc1`` has 2·hidden rows
  stored as ``[gate; up]``, gate first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from odetx.models.time import AUTONOMOUS, TimeParts
from odetx.registry import Registry


class MLP(nn.Module):
    """``fc2(gelu(fc1 x))``; ``approximate`` is GELU's (``"none"`` or ``"tanh"``)."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        dropout: float = 0.0,
        parts: TimeParts = AUTONOMOUS,
        approximate: str = "none",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = parts.linear(dim, hidden, bias)
        self.fc2 = parts.linear(hidden, dim, bias)
        self.drop = nn.Dropout(dropout)
        self.approximate = approximate

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        h = F.gelu(self.fc1(x, t), approximate=self.approximate)
        return self.drop(self.fc2(self.drop(h), t))


class GatedMLP(nn.Module):
    """SwiGLU: ``fc2(silu(gate) · up)`` with ``[gate; up] = fc1 x`` (``fc1``: 2·hidden rows)."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        dropout: float = 0.0,
        parts: TimeParts = AUTONOMOUS,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = parts.linear(dim, 2 * hidden, bias)
        self.fc2 = parts.linear(hidden, dim, bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, t: float = 0.0) -> Tensor:
        gate, up = self.fc1(x, t).chunk(2, dim=-1)  # each (..., hidden)
        return self.drop(self.fc2(self.drop(F.silu(gate) * up), t))


@dataclass(frozen=True)
class MLPKind:
    """An MLP, registered by name.

    Args:
        name: registry name (``model.mlp``).
        build: ``(dim, hidden, dropout, parts, bias) -> module`` called as ``(x, t)``.
        gated: ``fc1`` holds a gate and a value, 2·hidden rows (the fused layer has no
            place for them).
        gelu: GELU's ``approximate`` for the ungated kinds (what the fused layer applies).
        description: one line for ``odetx list``.
    """

    name: str
    build: Callable[[int, int, float, TimeParts, bool], nn.Module]
    gated: bool
    gelu: str
    description: str


MLPS: Registry[MLPKind] = Registry("MLP")
for _k in (
    MLPKind(
        "gelu",
        lambda d, h, p, parts, bias: MLP(d, h, p, parts, "none", bias),
        False,
        "none",
        "fc2(gelu(fc1 x)), exact GELU (ViT, BERT)",
    ),
    MLPKind(
        "gelu_tanh",
        lambda d, h, p, parts, bias: MLP(d, h, p, parts, "tanh", bias),
        False,
        "tanh",
        "fc2(gelu(fc1 x)), GELU's tanh approximation (GPT-2's gelu_new, GPT-J)",
    ),
    MLPKind(
        "swiglu",
        lambda d, h, p, parts, bias: GatedMLP(d, h, p, parts, bias),
        True,
        "",
        "fc2(silu(gate) * up), fc1 = [gate; up] (Shazeer 2020; Llama)",
    ),
):
    MLPS.register(_k.name, _k)
