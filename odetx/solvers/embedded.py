"""Embedded Runge–Kutta pairs: a tableau, a second solution row and its error order.

A pair propagates the higher-order solution ``b`` and compares it with the embedded
lower-order one ``b̂``; their difference ``h Σ (b_i − b̂_i) k_i`` estimates the local
error of the step, which the step-size controller reads
(:mod:`odetx.solvers.persample`). Like :class:`~odetx.solvers.tableau.ButcherTableau`
each pair checks itself on construction (its error row sums to zero: both rows are
consistent) and derives FSAL ("first same as last": the last stage is evaluated at the
new solution, so it is the next step's first stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odetx.registry import Registry
from odetx.solvers.tableau import _TOL, ButcherTableau


@dataclass(frozen=True)
class EmbeddedTableau(ButcherTableau):
    """An explicit Runge–Kutta pair.

    Args:
        error: ``b − b̂``, the weights of the error estimate (one per stage).
        error_order: the order ``q`` of the embedded solution; step sizes scale as
            ``err^(−1/(q + 1))`` (the controller's ``k = q + 1``).
    """

    error: tuple[float, ...] = ()
    error_order: int = 0
    fsal: bool = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.error) != self.stages:
            raise ValueError(f"{self.name}: the error row must have {self.stages} entries")
        if abs(sum(self.error)) > _TOL:
            raise ValueError(f"{self.name}: the error row sums to {sum(self.error)}, not 0")
        if not 0 < self.error_order < self.order:
            raise ValueError(f"{self.name}: error order {self.error_order} not below {self.order}")
        last = self.a[-1]
        fsal = (
            self.c[-1] == 1.0
            and self.b[-1] == 0.0
            and all(abs(x - y) <= _TOL for x, y in zip(last, self.b, strict=False))
        )
        object.__setattr__(self, "fsal", fsal)

    @property
    def embedded(self) -> ButcherTableau:
        """The lower-order solution ``b̂ = b − error`` as a tableau of its own (for tests)."""
        b_hat = tuple(b - e for b, e in zip(self.b, self.error, strict=True))
        return ButcherTableau(f"{self.name}-embedded", self.error_order, self.c, self.a, b_hat)


EMBEDDED: Registry[EmbeddedTableau] = Registry("embedded Runge–Kutta pair")


def _register(t: EmbeddedTableau) -> EmbeddedTableau:
    return EMBEDDED.register(t.name, t)


_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B_HAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
DOPRI5 = _register(
    EmbeddedTableau(
        "dopri5",
        5,
        (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
        (
            (),
            (1 / 5,),
            (3 / 40, 9 / 40),
            (44 / 45, -56 / 15, 32 / 9),
            (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
            (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
            _DP_B[:6],
        ),
        _DP_B,
        "Dormand & Prince (1980), 5(4), FSAL; the error row of Hairer's DOPRI5",
        error=tuple(b - bh for b, bh in zip(_DP_B, _DP_B_HAT, strict=True)),
        error_order=4,
    )
)
_BS_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
BOSH3 = _register(
    EmbeddedTableau(
        "bosh3",
        3,
        (0.0, 1 / 2, 3 / 4, 1.0),
        ((), (1 / 2,), (0.0, 3 / 4), _BS_B[:3]),
        _BS_B,
        "Bogacki & Shampine (1989), 3(2), FSAL",
        error=tuple(b - bh for b, bh in zip(_BS_B, (7 / 24, 1 / 4, 1 / 3, 1 / 8), strict=True)),
        error_order=2,
    )
)
HEUN_EULER = _register(
    EmbeddedTableau(
        "adaptive_heun",
        2,
        (0.0, 1.0),
        ((), (1.0,)),
        (0.5, 0.5),
        "Heun–Euler 2(1): Heun's trapezoidal rule with Euler embedded",
        error=(-0.5, 0.5),
        error_order=1,
    )
)
# Tsitouras (2011), "Runge–Kutta pairs of order 5(4) satisfying only the first column
# simplifying assumption", Comput. Math. Appl. 62; coefficients as in its Table 1.
_TS_B = (
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
    0.0,
)
TSIT5 = _register(
    EmbeddedTableau(
        "tsit5",
        5,
        (0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
        (
            (),
            (0.161,),
            (-0.008480655492356989, 0.335480655492357),
            (2.897153057105493, -6.359448489975075, 4.3622954328695815),
            (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
            (
                5.86145544294642,
                -12.92096931784711,
                8.159367898576159,
                -0.071584973281401,
                -0.028269050394068383,
            ),
            _TS_B[:6],
        ),
        _TS_B,
        "Tsitouras (2011), 5(4), FSAL",
        error=(
            -0.00178001105222577714,
            -0.0008164344596567469,
            0.007880878010261995,
            -0.1447110071732629,
            0.5823571654525552,
            -0.45808210592918697,
            1 / 66,
        ),
        error_order=4,
    )
)
