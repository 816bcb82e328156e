"""Step-size controllers of the per-sample integrator (``solver.controller``).

After a step with error ratio ``ε_n`` (the error norm over the tolerance; the step is
accepted when ``ε_n ≤ 1``) a controller picks the next step::

    h_new = h · clamp(SAFETY · ε_n^(−α/k) · ε_prev^(β/k), low, FACTOR_MAX)

with ``k = q + 1`` (``q`` the pair's embedded order), ``ε_prev`` the ratio of the last
accepted step (floored at ``PREV_FLOOR``, starting at 1, as ``facold`` in Hairer's DOPRI5),
``low`` = ``FACTOR_MIN`` after a rejection and the controller's ``accept_min`` after an
acceptance, and no growth right after a rejection, whose retry reads its own error
alone (``β`` taken as 0, as DOPRI5 does). ``SAFETY``, ``FACTOR_MIN`` and
``FACTOR_MAX`` are DOPRI5's defaults (0.9, 0.2, 10; torchdiffeq's too).

- ``integral`` (the default, ``SolverConfig.controller``): ``α = 1, β = 0`` and an
  accepted step never shrinks the next one (``accept_min = 1``) — the elementary
  controller of Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4, as torchdiffeq's
  adaptive solvers step. On a field whose error stays far below the tolerance it grows
  the step fastest (by ``ε^(−1/k)`` per step), and a trained transformer's field mostly
  is such a field.
- ``pi``: Gustafsson's PI controller (Gustafsson, "Control theoretic techniques for
  stepsize selection in explicit Runge–Kutta methods", ACM TOMS 17, 1991; Hairer &
  Wanner, *Solving ODEs II*, §IV.2: "a good choice is α ≈ 0.7/k, β ≈ 0.4/k"), accepted
  steps may shrink (``accept_min = FACTOR_MIN``). Smoother step sequences near the
  stability limit; slower growth when the last error was small too.
"""

from __future__ import annotations

from dataclasses import dataclass

from odetx.registry import Registry

SAFETY = 0.9
FACTOR_MIN = 0.2
FACTOR_MAX = 10.0
PREV_FLOOR = 1e-4


@dataclass(frozen=True)
class StepController:
    """One step-size rule: the exponents (times ``k``) of this step's and the last accepted
    step's error ratios, and the smallest factor after an accepted step."""

    name: str
    alpha: float
    beta: float
    accept_min: float
    description: str


CONTROLLERS: Registry[StepController] = Registry("step-size controller")


def _register(c: StepController) -> StepController:
    CONTROLLERS.register(c.name, c)
    return c


_register(
    StepController(
        "integral", 1.0, 0.0, 1.0, "ε^(−1/k), accepted steps never shrink (torchdiffeq's rule)"
    )
)
_register(
    StepController(
        "pi",
        0.7,
        0.4,
        FACTOR_MIN,
        "Gustafsson's PI: ε^(−0.7/k) · ε_prev^(0.4/k) (Hairer & Wanner II, §IV.2)",
    )
)
