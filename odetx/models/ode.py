"""A stack of weight-sharing groups, each one ODE block integrated by a solver."""

from __future__ import annotations

from torch import Tensor, nn

from odetx.config import ModelConfig, SolverConfig
from odetx.models.archs import ARCHS
from odetx.models.components import components
from odetx.models.fields import LayerField
from odetx.models.fused import FusedParallelField
from odetx.models.time import TimeParts
from odetx.solvers import build_integrator


class ODEStack(nn.Module):
    """``groups`` blocks; block ``g`` owns one :class:`LayerField` (or
    :class:`FusedParallelField`) and integrates it
    over ``[g·D/G, (g+1)·D/G]``, so the whole stack spans the depth ``D``.

    With ``G = D``, one Euler step and arch ``sequential`` this is exactly the usual
    stack of pre-LN transformer layers. ``model.time`` makes each group's field depend
    on the depth time t (:mod:`odetx.models.time`), the basis over the group's span.
    """

    def __init__(self, model: ModelConfig, solver: SolverConfig, causal: bool = False) -> None:
        super().__init__()
        substeps = list(ARCHS[model.arch].substeps)
        span = model.depth / model.groups
        self.blocks = nn.ModuleList(
            build_integrator(
                _field(
                    model, causal, TimeParts(model.time, model.time_basis, g * span, (g + 1) * span)
                ),
                solver,
                substeps,
                g * span,
                (g + 1) * span,
                width=model.dim,
                drop_path=model.drop_path,
                depth=model.depth,
                time_dependent=model.time != "none",
            )
            for g in range(model.groups)
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x

    def nfe(self) -> float:
        return float(sum(block.nfe() for block in self.blocks))

    def reset_nfe(self) -> None:
        for block in self.blocks:
            block.reset_nfe()


def _field(model: ModelConfig, causal: bool, parts: TimeParts) -> nn.Module:
    """One group's weights: the fused parallel layer or the plain one."""
    comp = components(model)
    if model.fused:
        return FusedParallelField(model.dim, model.heads, model.mlp_ratio, causal, parts, comp)
    return LayerField(
        model.dim,
        model.heads,
        model.mlp_ratio,
        model.qkv_bias,
        model.dropout,
        model.shared_norm,
        causal,
        parts,
        comp,
    )
