"""Regularised dynamics: kinetic energy, Jacobian norm and random end times.

RNODE (Finlay et al. 2020) adds ``λ_K ∫‖f(x, t)‖² dt`` and ``λ_J ∫‖∇_x f‖_F² dt`` to
the loss, so the learned field stays straight and smooth and an adaptive solver needs
fewer steps; STEER (Ghosh et al. 2020) integrates each training batch to a random end
time. All three act in training only and through a separate path: the integrators'
own ``forward`` (the one that is scripted and exported) is untouched, and with every
term off this module is never entered.

What ``f`` is. The unsplit (parallel) scheme integrates ``A + M``; the split schemes
(sequential, strang) integrate each sub-field over its own share of the step, so the
kinetic term there is the sum over sub-flows of ``∫‖A‖²`` and ``∫‖M‖²`` over their
shares. Norms are summed over features and averaged over tokens (and the batch).

Fixed-step solvers take the integrals from the solver's own stages,
``Σ_i b_i h ‖k_i‖²``, at no extra field evaluation; adaptive ones carry an augmented
state ``(x, e_K, e_J)`` with ``de/dt`` the integrands (adjoint is refused by the
config check: the augmented state's gradient would need its own adjoint).

The Jacobian term is a Hutchinson estimate, ``E_ε‖εᵀ ∂f/∂x‖² = ‖∂f/∂x‖_F²`` with
``ε ~ N(0, I)``: one probe per stage (fixed-step) or per sub-flow solve (adaptive),
one vector–Jacobian product each, kept in the graph so the term trains.

STEER on a stack of ``G`` groups: each group's end time ``t1`` moves to ``t1 + u``,
``u ~ U[−b, b]``, drawn per group and per batch, while the next group still starts
at its own ``t0``. Each group owns its weights and its span, so perturbing the ends
one by one is STEER applied to every block; moving the whole stack's ``T`` instead
would leave every inner group's span fixed when ``G > 1``. ``b`` must stay below
the group span so no span collapses or reverses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from odetx.config import TrainConfig
from odetx.errors import SolverError
from odetx.solvers.adaptive import AdaptiveIntegrator
from odetx.solvers.fixed import FixedStepIntegrator


def sq_norm(k: Tensor) -> Tensor:
    """``‖k‖²`` over the feature axis, averaged over every other axis (tokens, batch)."""
    return k.pow(2).sum(-1).mean()


@dataclass(frozen=True)
class Terms:
    """Which terms a training step collects (weights and the STEER half-width)."""

    kinetic: float = 0.0
    jacobian: float = 0.0
    steer: float = 0.0

    @classmethod
    def of(cls, train: TrainConfig) -> Terms:
        return cls(train.reg_kinetic, train.reg_jacobian, train.steer)

    @property
    def active(self) -> bool:
        return self.kinetic > 0.0 or self.jacobian > 0.0 or self.steer > 0.0


@dataclass
class Collected:
    """Penalties summed over the stack's groups during one forward."""

    kinetic: Tensor | float = 0.0
    jacobian: Tensor | float = 0.0
    end_times: list[float] = field(default_factory=list)

    def loss(self, terms: Terms) -> Tensor | float:
        return terms.kinetic * self.kinetic + terms.jacobian * self.jacobian


def hutchinson(k: Tensor, x: Tensor) -> Tensor:
    """One-probe estimate of ``‖∂k/∂x‖_F²`` per token, averaged over tokens (a VJP)."""
    eps = torch.randn_like(k)
    (vjp,) = torch.autograd.grad(k, x, eps, create_graph=True)
    return sq_norm(vjp)


def fixed_penalised(
    block: FixedStepIntegrator, x: Tensor, mask: Tensor | None, t1: float, terms: Terms
) -> tuple[Tensor, Tensor, Tensor]:
    """The block's step loop over ``[t0, t1]`` from its stages, with the integrals
    ``Σ b_i h ‖k_i‖²`` and ``Σ b_i h ‖εᵢᵀ J_i‖²`` beside it. Integrators whose update
    weights are learned override ``combine``; the quadrature uses the tableau's ``b``."""
    kinetic = x.new_zeros(())
    jacobian = x.new_zeros(())
    h = (t1 - block.t0) / block.steps
    for n in range(block.steps):
        t = block.t0 + n * h
        for which, frac in zip(block.which, block.fraction, strict=True):
            hs = frac * h
            ks: list[Tensor] = []
            for i, row in enumerate(block.a):
                xi = x
                for j, a_ij in enumerate(row):
                    if a_ij != 0.0:
                        xi = torch.add(xi, ks[j], alpha=hs * a_ij)  # as the integrator rounds
                if terms.jacobian > 0.0 and not xi.requires_grad:
                    xi = xi.requires_grad_()
                k = block.field(which, t + block.c[i] * hs, xi, mask)
                ks.append(k)
                w = block.b[i] * hs
                if w == 0.0:
                    continue
                if terms.kinetic > 0.0:
                    kinetic = kinetic + w * sq_norm(k)
                if terms.jacobian > 0.0:
                    jacobian = jacobian + w * hutchinson(k, xi)
            x = block.combine(which, x, ks, hs)
    return x, kinetic, jacobian


class _Augmented(nn.Module):
    """``d(x, e_K, e_J)/dt = (f, ‖f‖², ‖εᵀ∂f/∂x‖²)`` for one sub-field (NFE still counted)."""

    def __init__(self, func: nn.Module, eps: Tensor | None, kinetic: bool) -> None:
        super().__init__()
        object.__setattr__(self, "func", func)
        self.eps = eps
        self.kinetic = kinetic

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, ...]:
        x = state[0]
        if self.eps is not None and not x.requires_grad:
            x = x.requires_grad_()
        f = self.func(t, x)
        zero = f.new_zeros(())
        de_k = sq_norm(f) if self.kinetic else zero
        de_j = zero
        if self.eps is not None:
            (vjp,) = torch.autograd.grad(f, x, self.eps, create_graph=True)
            de_j = sq_norm(vjp)
        return f, de_k, de_j


def adaptive_penalised(
    block: AdaptiveIntegrator, x: Tensor, mask: Tensor | None, t1: float, terms: Terms
) -> tuple[Tensor, Tensor, Tensor]:
    """The block's sub-flow solves over ``[t0, t1]`` with the integrals carried along."""
    if block.adjoint:
        raise SolverError("train.reg_kinetic/reg_jacobian/steer do not support solver.adjoint")
    for func in block.funcs:
        func.mask = mask
    kinetic = x.new_zeros(())
    jacobian = x.new_zeros(())
    h = (t1 - block.t0) / block.steps
    options = {"max_num_steps": block.max_num_steps}
    for n in range(block.steps):
        t = block.t0 + n * h
        for func, (_, frac) in zip(block.funcs, block.substeps, strict=True):
            eps = torch.randn_like(x) if terms.jacobian > 0.0 else None
            aug = _Augmented(block.held(func), eps, terms.kinetic > 0.0)
            span = torch.tensor([t, t + frac * h], dtype=x.dtype, device=x.device)
            state = (x, x.new_zeros(()), x.new_zeros(()))
            try:
                xs, ek, ej = odeint(
                    aug,
                    state,
                    span,
                    rtol=block.rtol,
                    atol=block.atol,
                    method=block.method,
                    options=options,
                )
            except AssertionError as e:
                if "max_num_steps" not in str(e):
                    raise
                raise SolverError(
                    f"{block.method} needed more than max_num_steps={block.max_num_steps} "
                    "steps; loosen rtol/atol or raise solver.max_num_steps"
                ) from None
            x, kinetic, jacobian = xs[-1], kinetic + ek[-1], jacobian + ej[-1]
    return x, kinetic, jacobian


# Integrator type → its penalised forward; looked up along the MRO, so a subclass of
# FixedStepIntegrator (the learned RK methods) is covered unless it registers its own.
Penalised = Callable[[nn.Module, Tensor, "Tensor | None", float, Terms], tuple[Tensor, ...]]
PENALISED: dict[type, Penalised] = {
    FixedStepIntegrator: fixed_penalised,
    AdaptiveIntegrator: adaptive_penalised,
}


def _penalised_for(block: nn.Module) -> Penalised:
    for cls in type(block).__mro__:
        if cls in PENALISED:
            return PENALISED[cls]
    raise SolverError(f"{type(block).__name__} cannot collect regularisation terms")


def steer_end(t0: float, t1: float, b: float, generator: torch.Generator | None = None) -> float:
    """``t1 + u`` with ``u ~ U[−b, b]`` (``b`` is checked below the span ``t1 − t0``)."""
    if b == 0.0:
        return t1
    u = (torch.rand((), generator=generator).item() * 2.0 - 1.0) * b
    return t1 + u


@contextlib.contextmanager
def collecting(stack: nn.Module, terms: Terms) -> Iterator[Collected]:
    """While open, every group of ``stack`` (an ``ODEStack``) runs its penalised path
    and adds its terms to the yielded :class:`Collected`. The blocks' ``forward`` is
    shadowed by an instance attribute for the duration and restored after, so the
    model's class code, scripting and export never see this path."""
    collected = Collected()
    blocks = list(stack.blocks)
    for block in blocks:
        run = _penalised_for(block)

        def forward(x: Tensor, mask: Tensor | None = None, _b=block, _run=run) -> Tensor:
            t1 = steer_end(_b.t0, _b.t1, terms.steer)
            collected.end_times.append(t1)
            out, kinetic, jacobian = _run(_b, x, mask, t1, terms)
            collected.kinetic = collected.kinetic + kinetic
            collected.jacobian = collected.jacobian + jacobian
            return out

        object.__setattr__(block, "forward", forward)
    try:
        yield collected
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


def reg_columns(terms: Terms, sums: dict[str, float]) -> dict[str, float]:
    """The epoch's mean penalties as metrics.csv columns, for the terms that are on."""
    batches = max(sums.get("batches", 0), 1)
    cols = {}
    for key, weight in (("reg_kinetic", terms.kinetic), ("reg_jacobian", terms.jacobian)):
        if weight > 0.0:
            cols[key] = sums[key] / batches
    return cols
