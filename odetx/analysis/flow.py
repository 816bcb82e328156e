"""The trajectory a trained stack's solver produces, and measures of its flow.

Everything here takes an ODE stack's blocks (integrators with a ``field`` called as
``field(which, t, x, mask)`` and a span ``t0``, ``t1``) and the stack's input tokens,
so it reads any backbone, arch, weight sharing and solver alike.

Definitions (the README's ``odetx inspect`` section says the same):

- norms are per-token L2 norms averaged over the real tokens of every example;
- kinetic energy is ``‖A + M‖²`` per token (the integrand of the kinetic regulariser
  of Finlay et al. 2020), averaged likewise;
- the spectral norm ``σ_max`` of a map is found by power iteration on ``JᵀJ``
  (``J v`` by forward-mode AD, ``Jᵀ u`` by reverse mode), per example, since
  examples never interact; the finite-time Lyapunov exponent of a span of length T
  is ``log σ_max(flow map over the span) / T``, averaged over examples;
- the local error of a step is ``‖trained step − fine solve‖ / ‖fine solve‖`` from
  the same state over the same interval, Frobenius norms over an example's real
  tokens, averaged over examples; the fine solve integrates the unsplit field
  A + M with :data:`FINE` (so a split arch's splitting error counts too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from odetx.config import SolverConfig
from odetx.solvers import SOLVERS, build_integrator
from odetx.solvers.field import ATTN, BOTH, MLP

# The reference for local errors: far below any trained step's error for smooth fields.
FINE = SolverConfig("rk4", steps=32)
WHICH_LABEL = {ATTN: "A", MLP: "M", BOTH: "A+M"}

StateMap = Callable[[Tensor], Tensor]


@dataclass
class Point:
    """The state at one sample time of one group's trajectory.

    ``step`` counts the group's solver steps completed (0: the group's start);
    ``substep`` the sub-steps of the arch taken in the current step; ``which`` names the
    sub-field of the sub-step that ended here (``start`` at a group's start).
    """

    group: int
    step: int
    substep: int
    t: float
    which: str
    x: Tensor
    step_end: bool


def real(mask: Tensor | None, x: Tensor) -> Tensor:
    """``(B, N, 1)`` weights: 1 on real tokens, 0 on padding."""
    if mask is None:
        return torch.ones_like(x[..., :1])
    return mask.unsqueeze(-1).to(x.dtype)


def token_mean(values: Tensor, w: Tensor) -> float:
    """Mean of per-token ``values`` ``(B, N)`` over the real tokens."""
    w = w.squeeze(-1)
    return float((values * w).sum() / w.sum().clamp_min(1.0))


def substep_map(
    block: nn.Module, solver: SolverConfig, which: int, t: float, h: float, mask: Tensor | None
) -> StateMap:
    """One sub-step of the trained integrator: sub-field ``which`` advanced by ``h`` from ``t``.

    Fixed-step integrators (learned ones too) take their own ``rk_step``; an adaptive one
    is rebuilt over just this sub-flow, which is how it integrates each sub-flow anyway.
    """
    if not SOLVERS[solver.method].adaptive:
        return lambda x: block.rk_step(which, t, x, h, mask)
    one = dataclasses.replace(solver, steps=1)
    timed = bool(getattr(block, "time_dependent", True))
    sub = build_integrator(block.field, one, [(which, 1.0)], t, t + h, time_dependent=timed)
    return lambda x: sub(x, mask)


def step_times(block: nn.Module) -> tuple[int, float]:
    steps = int(block.steps)
    return steps, (float(block.t1) - float(block.t0)) / steps


def substeps_of(block: nn.Module) -> list[tuple[int, float]]:
    """The arch's ``(which, fraction)`` sub-steps, as the integrator holds them."""
    if hasattr(block, "which"):
        return list(zip(block.which, block.fraction, strict=True))
    return list(block.substeps)


def step_map(
    block: nn.Module, solver: SolverConfig, n: int, mask: Tensor | None
) -> tuple[StateMap, list[tuple[int, StateMap]]]:
    """Step ``n`` of ``block`` as one map, and its sub-steps ``(which, map)`` in order."""
    _, h = step_times(block)
    t = float(block.t0) + n * h
    subs = [(w, substep_map(block, solver, w, t, f * h, mask)) for w, f in substeps_of(block)]

    def whole(x: Tensor) -> Tensor:
        for _, f in subs:
            x = f(x)
        return x

    return whole, subs


def trajectory(
    blocks: list[nn.Module], solver: SolverConfig, x: Tensor, mask: Tensor | None
) -> list[Point]:
    """The states at every solver step and sub-step boundary of every group, in order.

    A group's first point is the previous group's last state, at the same t; the
    sub-step boundaries within a step sit at equal shares of the step on the t axis
    (a split arch's intermediate states belong to no single time).
    """
    points = []
    with torch.no_grad():
        for g, block in enumerate(blocks):
            steps, h = step_times(block)
            t0 = float(block.t0)
            points.append(Point(g, 0, 0, t0, "start", x, True))
            for n in range(steps):
                _, subs = step_map(block, solver, n, mask)
                for s, (w, f) in enumerate(subs):
                    x = f(x)
                    last = s == len(subs) - 1
                    t = t0 + (n + (s + 1) / len(subs)) * h
                    points.append(Point(g, n + 1 if last else n, s + 1, t, WHICH_LABEL[w], x, last))
    return points


@dataclass(frozen=True)
class FieldStats:
    attn: float
    mlp: float
    both: float
    cosine: float
    kinetic: float


def field_stats(field: nn.Module, t: float, x: Tensor, mask: Tensor | None) -> FieldStats:
    """Norms of A, M and A + M at ``x``, the cosine between A and M, and ``‖A + M‖²``,
    per token, averaged over real tokens."""
    with torch.no_grad():
        a, m = field(ATTN, t, x, mask), field(MLP, t, x, mask)
    w = real(mask, x)
    both = a + m
    cos = torch.nn.functional.cosine_similarity(a, m, dim=-1, eps=1e-12)
    return FieldStats(
        attn=token_mean(a.norm(dim=-1), w),
        mlp=token_mean(m.norm(dim=-1), w),
        both=token_mean(both.norm(dim=-1), w),
        cosine=token_mean(cos, w),
        kinetic=token_mean(both.pow(2).sum(-1), w),
    )


def _per_example_norm(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (v.dim() - 1)))


def jvp(f: StateMap, x: Tensor, v: Tensor) -> Tensor:
    """``J v`` of ``f`` at ``x``: forward mode, run without autograd's graph (which keeps
    layers that fuse their backward on the plain path), attention on its math kernel, the
    one with forward-mode derivatives. Where some operation has none (torchdiffeq's
    adaptive solves), by reverse mode twice: ``J v = ∂/∂u (Jᵀu · v)``."""
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), fwAD.dual_level():
            return fwAD.unpack_dual(f(fwAD.make_dual(x, v))).tangent
    except NotImplementedError:
        pass
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        y = f(xg)
        u = torch.zeros_like(y, requires_grad=True)
        (back,) = torch.autograd.grad(y, xg, u, create_graph=True)
        (out,) = torch.autograd.grad(back, u, v)
    return out


def spectral_norm(
    f: StateMap, x: Tensor, mask: Tensor | None, iters: int = 20, seed: int = 0
) -> Tensor:
    """``σ_max`` of the Jacobian of ``f`` at ``x``, one per example ``(B,)``, restricted to
    the real tokens (padding is neither perturbed nor measured), by ``iters`` rounds of
    power iteration on ``JᵀJ``.

    ``f`` must map each example on its own (as every stack does): the Jacobian is then
    block-diagonal over examples, and one batched iteration finds every block's norm.
    """
    w = real(mask, x)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * w
    v = v / _per_example_norm(v)
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(xg)
    sigma = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(iters):
        u = jvp(f, x, v) * w
        sigma = u.flatten(1).norm(dim=1)
        if i == iters - 1:
            break
        (back,) = torch.autograd.grad(y, xg, u, retain_graph=True)
        back = back * w
        v = back / _per_example_norm(back)
    return sigma.detach()


def relative_error(got: Tensor, ref: Tensor, mask: Tensor | None) -> Tensor:
    """``‖got − ref‖ / ‖ref‖`` per example, over its real tokens."""
    w = real(mask, ref)
    return ((got - ref) * w).flatten(1).norm(dim=1) / (ref * w).flatten(1).norm(dim=1).clamp_min(
        1e-30
    )


def fine_map(block: nn.Module, t: float, h: float, mask: Tensor | None) -> StateMap:
    """The unsplit field A + M integrated by :data:`FINE` over ``[t, t + h]``."""
    fine = build_integrator(block.field, FINE, [(BOTH, 1.0)], t, t + h)
    return lambda x: fine(x, mask)


def local_error(
    block: nn.Module, solver: SolverConfig, n: int, x: Tensor, mask: Tensor | None
) -> Tensor:
    """Relative local error of ``block``'s step ``n`` from ``x``, one per example."""
    _, h = step_times(block)
    t = float(block.t0) + n * h
    whole, _ = step_map(block, solver, n, mask)
    with torch.no_grad():
        return relative_error(whole(x), fine_map(block, t, h, mask)(x), mask)
