"""The vector-field calling convention shared by every integrator.

A field is an ``nn.Module`` called as ``field(which, t, x, mask)`` where
``which`` picks the sub-field: :data:`ATTN` (A), :data:`MLP` (M) or
:data:`BOTH` (A + M). Splitting schemes are sequences of ``(which, fraction)``.
"""

from __future__ import annotations

from torch import nn

ATTN = 0
MLP = 1
BOTH = 2

# NFE unit: one evaluation of the full field A + M. A split scheme evaluates A
# and M separately at about half the cost each, so each counts one half; then
# a parallel layer's NFE equals torchdiffeq's count and schemes compare at cost.
FIELD_WEIGHT = {ATTN: 0.5, MLP: 0.5, BOTH: 1.0}


class Field(nn.Module):
    """Base of every vector field: the sub-field codes as attributes, because
    TorchScript reads a module's constants but not module globals."""

    __constants__ = ["ATTN", "MLP", "BOTH"]
    ATTN = ATTN
    MLP = MLP
    BOTH = BOTH
