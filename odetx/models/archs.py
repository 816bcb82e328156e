"""Archs (``--arch``, ``model.arch``): the splitting scheme of a layer step.

An arch says how one layer step combines the attention field A and the MLP
field M. It is data — a sequence of ``(sub-field, fraction of the step)`` — so a
new splitting is one registry entry and every solver runs it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from odetx.registry import Registry
from odetx.solvers.field import ATTN, BOTH, MLP


@dataclass(frozen=True)
class Arch:
    """A splitting of dx/dt = A(x) + M(x) into sub-flows applied in order.

    Args:
        name: registry name (``--arch``).
        substeps: ``(which, fraction)`` pairs, applied left to right.
        order: order of the splitting error (0: unsplit, limited by the solver only).
        description: one line for ``odetx list``.
    """

    name: str
    substeps: tuple[tuple[int, float], ...]
    order: int
    description: str

    def __post_init__(self) -> None:
        # Consistency, as a tableau's rows sum to c: over one step the arch integrates A
        # and M each for exactly the whole step (BOTH counts for both), so it approximates
        # the flow of A + M at all. Fractions may be negative (higher-order splittings
        # step backwards), never zero.
        if not self.substeps:
            raise ValueError(f"{self.name}: an arch needs at least one substep")
        span = {ATTN: 0.0, MLP: 0.0}
        for which, fraction in self.substeps:
            if which not in (ATTN, MLP, BOTH):
                raise ValueError(
                    f"{self.name}: a substep's field is ATTN, MLP or BOTH, not {which}"
                )
            if fraction == 0:
                raise ValueError(f"{self.name}: a substep of zero length does nothing")
            for field in (ATTN, MLP):
                if which in (field, BOTH):
                    span[field] += fraction
        for field, word in ((ATTN, "attention"), (MLP, "MLP")):
            if abs(span[field] - 1.0) > 1e-9:
                raise ValueError(
                    f"{self.name}: the {word} field is integrated over {span[field]:g} of the "
                    "step, not 1"
                )
        if self.order < 0:
            raise ValueError(f"{self.name}: the splitting order is 0 (unsplit) or more")


ARCHS: Registry[Arch] = Registry("arch")

for _a in (
    Arch(
        "sequential",
        ((ATTN, 1.0), (MLP, 1.0)),
        1,
        "Lie–Trotter: attention then MLP (the standard pre-LN layer)",
    ),
    Arch(
        "parallel",
        ((BOTH, 1.0),),
        0,
        "unsplit A + M in one step (Zhong et al. 2022; GPT-J/PaLM style)",
    ),
    Arch(
        "strang",
        ((MLP, 0.5), (ATTN, 1.0), (MLP, 0.5)),
        2,
        "Strang–Marchuk: half MLP, attention, half MLP (Macaron-like, one shared MLP)",
    ),
):
    ARCHS.register(_a.name, _a)
