"""Runge–Kutta steps with trained combination weights (Li et al., ODE Transformer, ACL 2022).

The stages are those of a fixed tableau (heun, rk4); only how they are combined
is learned, per group and per sub-field (A, M or A + M) of the splitting scheme.
At initialisation each integrator computes its base method exactly, bit for bit:
the learned part is written as a correction to the tableau's sum that is exactly
zero at its initial parameters. With trained coefficients the step is no longer a
Runge–Kutta method of any fixed order, so none is claimed.

The coefficients are parameters of the integrator, under ``<block>.coef.``: a
state dict of a learned-RK model carries them beside the field's weights.
"""

from dataclasses import dataclass
from typing import List

import torch
from torch import Tensor, nn

from odetx.registry import Registry
from odetx.solvers.fixed import FixedStepIntegrator, weighted_sum
from odetx.solvers.tableau import HEUN, RK4, ButcherTableau

# The submodule holding an integrator's learned coefficients (its state-dict prefix).
COEF = "coef"


class _Coefficients(nn.Module):
    """A plain holder, not ``nn.Linear``: the backbones' weight initialisation
    (:func:`odetx.models.fields.init_weights`) must leave the zeros in place."""

    def __init__(self, **shapes: tuple[int, ...]) -> None:
        super().__init__()
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))


def _slots(substeps: list[tuple[int, float]]) -> List[int]:
    """Row of the coefficients each sub-field code uses (-1: not in the scheme).

    The two half-steps of M in the Strang scheme share one row: one set of
    coefficients per sub-field, not per sub-step.
    """
    used = sorted({w for w, _ in substeps})
    return [used.index(w) if w in used else -1 for w in range(3)]


class _LearnedIntegrator(FixedStepIntegrator):
    """Declares its attributes for TorchScript, which reads a class's own annotations
    only, so a subclass that declares one must repeat its base's."""

    a: List[List[float]]
    b: List[float]
    c: List[float]
    which: List[int]
    fraction: List[float]
    steps: int
    slot: List[int]


class GatedRK2Integrator(_LearnedIntegrator):
    """Heun's stages with a learned gate (the learnable-γ RK2 block of the ODE Transformer).

    With increments ``F1 = h k1``, ``F2 = h k2`` (``k2`` evaluated at ``y + F1``)::

        y' = y + g ⊙ F1 + (1 − g) ⊙ F2,    g = sigmoid(w · [F1; F2] + b)

    one gate value per token, one ``(w, b)`` per sub-field. Computed as Heun's sum
    plus ``h (g − ½)(k1 − k2)`` (the same value), which is exactly zero when
    ``w = 0, b = 0`` (then ``g = ½``): the initial step *is* Heun's, bit for bit.
    """

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
        width: int = 0,
    ) -> None:
        super().__init__(field, tableau, substeps, steps, t0, t1, drop_path, depth)
        if width <= 0:
            raise ValueError(f"the gate needs the model width, got {width}")
        self.slot = _slots(substeps)
        rows = max(self.slot) + 1
        self.width = width
        self.coef = _Coefficients(gate_weight=(rows, 2 * width), gate_bias=(rows,))

    def combine(self, which: int, x: Tensor, ks: List[Tensor], h: float) -> Tensor:
        out = weighted_sum(x, ks, self.b, h)
        s = self.slot[which]
        w = self.coef.gate_weight[s]
        # w · [F1; F2] without building the concatenation: (B, N, d) @ (d,) -> (B, N)
        logit = (ks[0] @ w[: self.width] + ks[1] @ w[self.width :]) * h + self.coef.gate_bias[s]
        g = torch.sigmoid(logit).unsqueeze(-1)  # (B, N, 1)
        return out + (g - 0.5) * (ks[0] - ks[1]) * h


class WeightedRKIntegrator(_LearnedIntegrator):
    """A tableau's stages with learned solution weights ``b_i + δ_i`` (δ = 0 at start).

    The step is the tableau's own sum plus ``h Σ δ_i k_i``, exactly zero at
    initialisation, so the initial step is the base method's, bit for bit. The
    weights are free (not constrained to sum to 1): the layer may learn to scale
    its increment.
    """

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
        width: int = 0,
    ) -> None:
        super().__init__(field, tableau, substeps, steps, t0, t1, drop_path, depth)
        self.slot = _slots(substeps)
        self.coef = _Coefficients(weight_offset=(max(self.slot) + 1, len(tableau.b)))

    def combine(self, which: int, x: Tensor, ks: List[Tensor], h: float) -> Tensor:
        out = weighted_sum(x, ks, self.b, h)
        delta = self.coef.weight_offset[self.slot[which]]
        extra = ks[0] * delta[0]
        for i in range(1, len(ks)):
            extra = extra + ks[i] * delta[i]
        return out + extra * h

    @torch.jit.unused
    def weights(self) -> Tensor:
        """The learned solution weights ``b + δ``, one row per sub-field."""
        offset = self.coef.weight_offset.detach()
        return offset + torch.tensor(self.b, dtype=offset.dtype, device=offset.device)


@dataclass(frozen=True)
class LearnedMethod:
    """A solver with trained coefficients, registered like a tableau.

    Args:
        name: registry name.
        base: the tableau whose stages it evaluates and which it equals at initialisation.
        integrator: the integrator class (a :class:`FixedStepIntegrator` subclass).
        reference: where it comes from and what is learned.
    """

    name: str
    base: ButcherTableau
    integrator: type[FixedStepIntegrator]
    reference: str


LEARNED: Registry[LearnedMethod] = Registry("learned solver")
for _m in (
    LearnedMethod(
        "rk2-learned",
        HEUN,
        GatedRK2Integrator,
        "Li et al., ODE Transformer (ACL 2022): heun's stages, learned gate g·F1 + (1−g)·F2; "
        "heun at init",
    ),
    LearnedMethod(
        "rk4-learned",
        RK4,
        WeightedRKIntegrator,
        "after Li et al., ODE Transformer (ACL 2022): rk4's stages, learned stage weights; "
        "rk4 at init",
    ),
):
    LEARNED.register(_m.name, _m)


def is_coefficient(key: str) -> bool:
    """Whether a state-dict key is a learned solver coefficient."""
    return f".{COEF}." in f".{key}"


def fit_coefficients(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """``state`` for ``model`` built with another solver than the one it was trained with.

    Learned coefficients the model has no place for are dropped (another solver
    ignores them); coefficients it has and ``state`` lacks keep their initial
    values, so a learned solver on weights trained with another starts as its base
    method. Every other key is left for strict loading to check.
    """
    own = model.state_dict()
    out = {k: v for k, v in state.items() if k in own or not is_coefficient(k)}
    for k, v in own.items():
        if k not in out and is_coefficient(k):
            out[k] = v
    return out
