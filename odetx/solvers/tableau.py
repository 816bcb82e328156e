"""Butcher tableaus for explicit Runge–Kutta methods: data that checks itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from odetx.registry import Registry

_TOL = 1e-12


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method.

    Args:
        name: registry name.
        order: classical order of accuracy.
        c: stage times as fractions of the step.
        a: strictly lower-triangular stage weights; row ``i`` has ``i`` entries.
        b: solution weights.
        reference: where the method comes from.
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    reference: str = ""
    stages: int = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.b)
        if len(self.c) != n or len(self.a) != n:
            raise ValueError(f"{self.name}: c, a and b must all have {n} stages")
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise ValueError(f"{self.name}: row {i} of a must have {i} entries (explicit)")
            # Consistency c_i = sum_j a_ij makes every stage a first-order estimate.
            if abs(sum(row) - self.c[i]) > _TOL:
                raise ValueError(f"{self.name}: row {i} of a sums to {sum(row)}, not c={self.c[i]}")
        if abs(sum(self.b) - 1.0) > _TOL:
            raise ValueError(f"{self.name}: b sums to {sum(self.b)}, not 1")
        object.__setattr__(self, "stages", n)


TABLEAUS: Registry[ButcherTableau] = Registry("fixed-step solver")


def _register(t: ButcherTableau) -> ButcherTableau:
    return TABLEAUS.register(t.name, t)


EULER = _register(ButcherTableau("euler", 1, (0.0,), ((),), (1.0,), "Euler (1768)"))
MIDPOINT = _register(
    ButcherTableau("midpoint", 2, (0.0, 0.5), ((), (0.5,)), (0.0, 1.0), "explicit midpoint rule")
)
HEUN = _register(
    ButcherTableau("heun", 2, (0.0, 1.0), ((), (1.0,)), (0.5, 0.5), "Heun's method (trapezoidal)")
)
RALSTON = _register(
    ButcherTableau(
        "ralston", 2, (0.0, 2 / 3), ((), (2 / 3,)), (0.25, 0.75), "Ralston (1962), min-error RK2"
    )
)
RK4 = _register(
    ButcherTableau(
        "rk4",
        4,
        (0.0, 0.5, 0.5, 1.0),
        ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6),
        "Kutta (1901), the classic fourth-order method",
    )
)
RK38 = _register(
    ButcherTableau(
        "rk38",
        4,
        (0.0, 1 / 3, 2 / 3, 1.0),
        ((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
        (1 / 8, 3 / 8, 3 / 8, 1 / 8),
        "Kutta (1901), the 3/8 rule",
    )
)
