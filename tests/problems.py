"""ODE problems with known solutions, shared by the solver tests."""

from __future__ import annotations

import math

import torch
from torch import nn

from odetx.solvers.field import BOTH


class FunctionField(nn.Module):
    """Adapts a plain ``f(t, y)`` to the odetx field convention (``which`` ignored)."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f = f
        self.calls: list[float] = []

    def forward(self, which: int, t: float, x: torch.Tensor, mask=None) -> torch.Tensor:
        self.calls.append(float(t))
        return self.f(t, x)


def linear_problem(dtype=torch.float64):
    """dy/dt = A y with a rotation-plus-decay A; y(t) = expm(A t) y0."""
    a = torch.tensor([[-0.3, 1.0], [-1.0, -0.3]], dtype=dtype)
    y0 = torch.tensor([1.0, 0.5], dtype=dtype)

    def f(t, y):
        return y @ a.T

    def exact(t):
        return torch.linalg.matrix_exp(a * t) @ y0

    return f, y0, exact


def time_dependent_problem(dtype=torch.float64):
    """dy/dt = cos(t) y, so y(t) = y0 exp(sin t): exercises the stage times."""
    y0 = torch.tensor([1.0, -2.0], dtype=dtype)

    def f(t, y):
        return math.cos(float(t)) * y

    def exact(t):
        return y0 * math.exp(math.sin(t))

    return f, y0, exact


UNSPLIT = [(BOTH, 1.0)]
