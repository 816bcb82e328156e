"""The odetx-owned fixed-step integrator: one loop runs every explicit tableau.

It is plain TorchScript-compatible PyTorch (no host syncs, no data-dependent
control flow), so a model integrated with it can be scripted, exported and
compiled. The step count is a runtime attribute, not an unrolled constant.
"""

from typing import List, Optional

import torch
from torch import Tensor, nn

from odetx.solvers.field import FIELD_WEIGHT
from odetx.solvers.tableau import ButcherTableau


def weighted_sum(x: Tensor, ks: List[Tensor], b: List[float], h: float) -> Tensor:
    """``x + h Σ b_i k_i``, skipping zero weights (a free function: TorchScript has no super())."""
    out = x
    for i in range(len(b)):
        if b[i] != 0.0:
            out = torch.add(out, ks[i], alpha=h * b[i])
    return out


class FixedStepIntegrator(nn.Module):
    """Integrate a (split) vector field over ``[t0, t1]`` with ``steps`` RK steps.

    Each step applies the splitting ``substeps`` in order: ``(which, fraction)``
    advances the sub-field ``which`` of ``field`` by ``fraction * h`` with one
    step of the tableau. ``[(2, 1.0)]`` is the unsplit field.

    Args:
        field: module called as ``field(which, t, x, mask)``.
        tableau: the explicit Runge–Kutta method.
        substeps: the splitting scheme.
        steps: solver steps over the span (runtime attribute).
        t0, t1: the time span.
        drop_path: stochastic depth at the last step of the stack (training only).
        depth: where the stack ends (the model's depth ``D``; by default ``t1``).
    """

    # Declared for TorchScript, which cannot infer the type of euler's empty stage row.
    a: List[List[float]]
    b: List[float]
    c: List[float]
    which: List[int]
    fraction: List[float]
    steps: int

    def __init__(
        self,
        field: nn.Module,
        tableau: ButcherTableau,
        substeps: list[tuple[int, float]],
        steps: int = 1,
        t0: float = 0.0,
        t1: float = 1.0,
        drop_path: float = 0.0,
        depth: float = 0.0,
    ) -> None:
        super().__init__()
        self.field = field
        self.method: str = tableau.name
        self.a = [list(row) for row in tableau.a]
        self.b = list(tableau.b)
        self.c = list(tableau.c)
        self.which = [w for w, _ in substeps]
        self.fraction = [f for _, f in substeps]
        self.steps = steps
        self.t0: float = t0
        self.t1: float = t1
        self.drop_path: float = drop_path
        self.depth: float = depth if depth > 0.0 else t1

    def rk_step(
        self, which: int, t: float, x: Tensor, h: float, mask: Optional[Tensor], drop: float = 0.0
    ) -> Tensor:
        """One tableau step on sub-field ``which``; stage ``i`` is evaluated at ``t + c_i h``.

        ``drop`` (training only) zeroes the whole step's increment of a sample with that
        probability and scales the kept ones by ``1 / (1 - drop)``: stochastic depth.
        """
        ks = self.stages(which, t, x, h, mask)
        if self.training and drop > 0.0:
            # Built from zero rather than as out - x, so the kept increment is not rounded.
            increment = self.combine(which, torch.zeros_like(x), ks, h)
            shape = [x.shape[0]] + [1] * (x.dim() - 1)
            keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - drop)
            return x + increment * (keep / (1.0 - drop))
        return self.combine(which, x, ks, h)

    def stages(
        self, which: int, t: float, x: Tensor, h: float, mask: Optional[Tensor]
    ) -> List[Tensor]:
        """The stage derivatives ``k_i`` of one step of size ``h`` from ``x``."""
        ks: List[Tensor] = []
        for i in range(len(self.b)):
            xi = x
            row = self.a[i]
            for j in range(len(row)):
                if row[j] != 0.0:
                    xi = torch.add(xi, ks[j], alpha=h * row[j])
            ks.append(self.field(which, t + self.c[i] * h, xi, mask))
        return ks

    def combine(self, which: int, x: Tensor, ks: List[Tensor], h: float) -> Tensor:
        """``x + h Σ b_i k_i``; integrators with learned weights override this."""
        return weighted_sum(x, ks, self.b, h)

    def drop_rate(self, t: float, h: float) -> float:
        """Drop-path probability of the step that starts at ``t``: linear in depth, from 0
        at the first step of the stack to ``drop_path`` at its last (timm's rule when
        every step is one layer); a stack of one step drops with ``drop_path``."""
        if self.drop_path == 0.0:
            return 0.0
        last = self.depth - h
        if last <= 0.0:
            return self.drop_path
        return self.drop_path * t / last

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        h = (self.t1 - self.t0) / self.steps
        for n in range(self.steps):
            t = self.t0 + n * h
            drop = self.drop_rate(t, h)
            for s in range(len(self.which)):
                frac = self.fraction[s]
                x = self.rk_step(self.which[s], t, x, frac * h, mask, drop)
        return x

    @torch.jit.unused
    def nfe(self) -> float:
        """Field evaluations per forward (A or M alone count one half: ``field.FIELD_WEIGHT``)."""
        per_step = sum(FIELD_WEIGHT[w] for w in self.which) * len(self.b)
        return float(self.steps * per_step)

    @torch.jit.unused
    def reset_nfe(self) -> None:
        """Fixed-step counts are static; nothing to reset."""
