"""Per-sample adaptive integration: every sample takes its own steps (``solver.per_sample``).

An embedded Runge–Kutta pair (:mod:`odetx.solvers.embedded`) with, per sample: its own
time ``t`` and step ``h``, an error norm over that sample's real tokens and channels
only (padding excluded), Hairer's initial step, a step-size controller and a step
count checked against ``solver.max_num_steps``. A sample whose solve reached the end
of its span leaves the active set: its state is scattered into the output and the
batch is compacted (gathered), so later field evaluations go only to samples still
integrating. A sample's steps therefore depend on that sample alone, and so does its
result: solved in any batch it equals the sample solved alone, to float rounding
(batched kernels may sum in another order).

The step-size controller is one of :mod:`odetx.solvers.controllers` (``integral`` by
default, as torchdiffeq steps; or Gustafsson's ``pi``), with its constants and sources there.
The initial step is Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4 ("starting step
size"), per sample: two field evaluations, ``f(t0, x0)`` (the first stage of the first
step) and one trial.

Scriptable: loops over tensors, plain-typed attributes (``rtol``, ``atol``,
``max_num_steps`` stay runtime attributes of a scripted model), no Python structures
that TorchScript rejects. In training the random draws of the field (dropout) are held
fixed within a solve, as :class:`~odetx.solvers.adaptive.AdaptiveIntegrator` does;
while a field draws noise the finished samples stay in the batch, frozen, so that each
sample keeps its own masks through the solve (compaction would move it to another row).
"""

import torch
from torch import Tensor, nn

from odetx.config import SolverConfig
from odetx.errors import SolverError
from odetx.solvers.controllers import (
    CONTROLLERS,
    FACTOR_MAX,
    FACTOR_MIN,
    PREV_FLOOR,
    SAFETY,
)
from odetx.solvers.embedded import EmbeddedTableau
from odetx.solvers.field import FIELD_WEIGHT


def draws_noise(field: nn.Module) -> bool:
    """Whether ``field`` has dropout (an ``nn.Dropout`` or a ``dropout`` rate above 0)."""
    for m in field.modules():
        if isinstance(m, nn.Dropout) and m.p > 0.0:
            return True
        rate = getattr(m, "dropout", 0.0)
        if isinstance(rate, float) and rate > 0.0:
            return True
    return False


@torch.jit.unused
def _held_call(
    field: nn.Module, which: int, t: float, x: Tensor, mask: Tensor | None, seed: int
) -> Tensor:
    """``field`` with torch's generator seeded alike before the call: one solve, one noise."""
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed(seed)
        return field(which, t, x, mask)


@torch.jit.unused
def _raise(message: str) -> None:
    raise SolverError(message)


@torch.jit.unused
def _new_seed() -> int:
    return int(torch.randint(0, 2**62, (1,)).item())


def rms(v: Tensor, mask: Tensor | None) -> Tensor:
    """Root mean square of each sample of ``v`` ``(B, …)``, over its real tokens and
    channels when ``mask`` ``(B, N)`` marks them (``v`` is then ``(B, N, d)``)."""
    if mask is None:
        return v.flatten(1).pow(2).mean(1).sqrt()
    w = mask.to(v.dtype)  # (B, N)
    per_token = v.pow(2).sum(-1)  # (B, N)
    count = w.sum(1).clamp_min(1.0) * v.shape[-1]
    return ((per_token * w).sum(1) / count).sqrt()


class PerSampleIntegrator(nn.Module):
    """Integrate a (split) field over ``[t0, t1]`` with per-sample adaptive steps.

    Like :class:`~odetx.solvers.adaptive.AdaptiveIntegrator`, each of ``steps``
    splitting steps solves every sub-flow of the scheme adaptively over its share of the
    step (the unsplit scheme with one step is one solve over the span).

    Args:
        field: module called as ``field(which, t, x, mask)``.
        tableau: the embedded pair.
        substeps: the splitting scheme ``[(which, fraction)]``.
        steps: splitting steps over the span.
        t0, t1: the time span.
        rtol, atol: tolerances (runtime attributes).
        max_num_steps: steps (accepted or not) one sample may try per sub-flow solve.
        controller: the step-size controller's name (:data:`CONTROLLERS`).
        time_dependent: the field reads ``t``; it is then evaluated once per distinct
            time among the active samples (the field takes one time per call), otherwise
            once per stage for all of them.
    """

    a: list[list[float]]
    b: list[float]
    c: list[float]
    e: list[float]
    which: list[int]
    fraction: list[float]
    weight: list[float]

    def __init__(
        self,
        field: nn.Module,
        tableau: EmbeddedTableau,
        substeps: list[tuple[int, float]],
        steps: int = 1,
        t0: float = 0.0,
        t1: float = 1.0,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        max_num_steps: int = 1000,
        time_dependent: bool = True,
        controller: str = SolverConfig.controller,
    ) -> None:
        super().__init__()
        self.field = field
        self.method: str = tableau.name
        self.a = [list(row) for row in tableau.a]
        self.b = list(tableau.b)
        self.c = list(tableau.c)
        self.e = list(tableau.error)
        self.fsal: bool = tableau.fsal
        self.which = [w for w, _ in substeps]
        self.fraction = [f for _, f in substeps]
        self.weight = [FIELD_WEIGHT[w] for w, _ in substeps]
        self.steps: int = steps
        self.t0: float = t0
        self.t1: float = t1
        self.rtol: float = rtol
        self.atol: float = atol
        self.max_num_steps: int = max_num_steps
        self.time_dependent: bool = time_dependent
        k = tableau.error_order + 1
        self.k: int = k
        self.safety: float = SAFETY
        self.factor_min: float = FACTOR_MIN
        self.factor_max: float = FACTOR_MAX
        rule = CONTROLLERS[controller]
        self.controller: str = rule.name
        self.beta1: float = rule.alpha / k
        self.beta2: float = rule.beta / k
        self.accept_min: float = rule.accept_min
        self.prev_floor: float = PREV_FLOOR
        self.noisy: bool = draws_noise(field)
        # Field evaluations of each sample in the last forward (its NFE), and their mean
        # summed over the forwards since reset_nfe.
        self.sample_nfe: Tensor = torch.zeros(0, dtype=torch.float64)
        self.total_nfe: float = 0.0

    # ------------------------------------------------------------ field evaluation

    def call(self, which: int, t: float, x: Tensor, mask: Tensor | None, seed: int) -> Tensor:
        if seed >= 0 and not torch.jit.is_scripting():
            return _held_call(self.field, which, t, x, mask, seed)
        return self.field(which, t, x, mask)

    def evaluate(
        self,
        which: int,
        t: Tensor,
        x: Tensor,
        mask: Tensor | None,
        seed: int,
        rows: Tensor,
    ) -> Tensor:
        """The field at per-sample times ``t`` ``(A,)``; ``rows`` are the samples'
        places in the whole batch (a noisy time-dependent field draws per sample)."""
        if not self.time_dependent:
            return self.call(which, self.t0, x, mask, seed)
        if seed >= 0 and self.noisy:  # each sample alone, with its own held noise
            out = torch.zeros_like(x)
            for i in range(x.shape[0]):
                m = mask[i : i + 1] if mask is not None else None
                y = self.call(which, float(t[i]), x[i : i + 1], m, seed + int(rows[i]))
                out = out.index_copy(0, torch.tensor([i], device=x.device), y)
            return out
        times, group = torch.unique(t, return_inverse=True)
        if times.shape[0] == 1:
            return self.call(which, float(times[0]), x, mask, seed)
        out = torch.zeros_like(x)
        for u in range(times.shape[0]):
            sel = (group == u).nonzero().squeeze(1)
            m = mask.index_select(0, sel) if mask is not None else None
            y = self.call(which, float(times[u]), x.index_select(0, sel), m, seed)
            out = out.index_copy(0, sel, y)
        return out

    # ------------------------------------------------------------ the solve

    def fail(self, message: str) -> None:
        if torch.jit.is_scripting():
            raise RuntimeError(message)
        _raise(message)

    def initial_step(
        self,
        which: int,
        t: Tensor,
        x: Tensor,
        f0: Tensor,
        mask: Tensor | None,
        seed: int,
        rows: Tensor,
    ) -> Tensor:
        """Hairer's starting step per sample (one trial evaluation), float64 ``(B,)``."""
        x, f0 = x.detach(), f0.detach()
        scale = self.atol + x.abs() * self.rtol
        d0 = rms(x / scale, mask).double()
        d1 = rms(f0 / scale, mask).double()
        small = (d0 < 1e-5) | (d1 < 1e-5)
        h0 = torch.where(small, torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        x1 = x + h0.to(x.dtype).view(self._shape(x)) * f0
        f1 = self.evaluate(which, t + h0, x1, mask, seed, rows)
        d2 = rms((f1 - f0) / scale, mask).double() / h0
        dmax = torch.maximum(d1, d2)
        h1 = torch.where(
            dmax <= 1e-15,
            torch.clamp_min(h0 * 1e-3, 1e-6),
            (0.01 / dmax.clamp_min(1e-300)) ** (1.0 / self.k),
        )
        return torch.minimum(100.0 * h0, h1).detach()

    def _shape(self, x: Tensor) -> list[int]:
        return [-1] + [1] * (x.dim() - 1)

    def _combine(self, ks: list[Tensor], weights: list[float]) -> Tensor | None:
        """``Σ w_i k_i`` over the nonzero weights (None if all are zero)."""
        out: Tensor | None = None
        for i in range(len(weights)):
            if weights[i] != 0.0:
                term = ks[i] * weights[i]
                out = term if out is None else out + term
        return out

    def solve(
        self,
        which: int,
        x0: Tensor,
        mask: Tensor | None,
        ta: float,
        tb: float,
        seed: int,
    ) -> tuple[Tensor, Tensor]:
        """Sub-field ``which`` from ``ta`` to ``tb``, per sample: the states at ``tb`` and
        each sample's field evaluations, float64 ``(B,)``."""
        B = x0.shape[0]
        dev = x0.device
        f64 = torch.float64
        nfe_out = torch.zeros(B, dtype=f64, device=dev)
        if B == 0:
            return x0, nfe_out
        compact = not (self.training and self.noisy)
        out = x0
        rows = torch.arange(B, device=dev)
        x = x0
        m = mask
        shape = self._shape(x0)
        t = torch.full((B,), ta, dtype=f64, device=dev)
        end = torch.full((B,), tb, dtype=f64, device=dev)
        k1 = self.evaluate(which, t, x, m, seed, rows)
        h = self.initial_step(which, t, x, k1, m, seed, rows)
        nfe = torch.full((B,), 2.0, dtype=f64, device=dev)
        prev = torch.ones(B, dtype=f64, device=dev)
        tries = torch.zeros(B, dtype=torch.long, device=dev)
        alive = torch.ones(B, dtype=torch.bool, device=dev)
        stale = torch.zeros(B, dtype=torch.bool, device=dev)
        stages = len(self.b)
        while bool(alive.any()):
            if not self.fsal and bool(stale.any()):
                # The first stage at the new state of samples that just stepped.
                sel = stale.nonzero().squeeze(1)
                ms = m.index_select(0, sel) if m is not None else None
                fresh = self.evaluate(
                    which, t.index_select(0, sel), x.index_select(0, sel), ms, seed,
                    rows.index_select(0, sel),
                )  # fmt: skip
                k1 = k1.index_copy(0, sel, fresh)
                nfe = nfe.index_add(0, sel, torch.ones_like(sel, dtype=f64))
            last = h >= end - t
            hs = torch.where(last, end - t, h)
            hx = hs.to(x.dtype).view(shape)
            ks: list[Tensor] = [k1]
            y = x
            for i in range(1, stages):
                inc = self._combine(ks, self.a[i])
                xi = x if inc is None else x + hx * inc
                ti = t + self.c[i] * hs
                if self.c[i] == 1.0:
                    ti = torch.where(last, end, ti)
                ks.append(self.evaluate(which, ti, xi, m, seed, rows))
                y = xi
            if not self.fsal:
                inc = self._combine(ks, self.b)
                y = x if inc is None else x + hx * inc
            err = self._combine(ks, self.e)
            if err is None:
                err = torch.zeros_like(x)
            scale = self.atol + torch.maximum(x.abs(), y.abs()) * self.rtol
            # Step sizes are not differentiated (as in diffrax and torchode): detached.
            ratio = rms(hx * err / scale, m).detach().double()
            ratio = torch.where(torch.isfinite(ratio), ratio, torch.full_like(ratio, 1e300))
            nfe = nfe + alive.to(f64) * float(stages - 1)
            tries = tries + alive.to(torch.long)
            accept = (ratio <= 1.0) & alive
            keep_x = accept.view(shape)
            x = torch.where(keep_x, y, x)
            t = torch.where(accept, torch.where(last, end, t + hs), t)
            if self.fsal:
                k1 = torch.where(keep_x, ks[-1], k1)
            else:
                stale = accept & ~last
            # A rejected step's retry reads its own error alone, as in Hairer's DOPRI5.
            memory = torch.where(accept, prev**self.beta2, torch.ones_like(prev))
            factor = self.safety * ratio.clamp_min(1e-10) ** (-self.beta1) * memory
            factor = factor.clamp(self.factor_min, self.factor_max)
            factor = torch.where(accept, factor.clamp_min(self.accept_min), factor.clamp_max(1.0))
            prev = torch.where(accept, ratio.clamp_min(self.prev_floor), prev)
            h = hs * factor
            done = accept & last
            alive = alive & ~done
            if bool((alive & (tries >= self.max_num_steps)).any()):
                self.fail(
                    f"{self.method} (per sample) needed more than max_num_steps="
                    f"{self.max_num_steps} steps for a sample (rtol={self.rtol}, "
                    f"atol={self.atol}); loosen rtol/atol, raise solver.max_num_steps, or use "
                    "a fixed-step solver such as rk4"
                )
            if bool((alive & (t + h <= t)).any()):
                self.fail(
                    f"{self.method} (per sample): the step size underflowed at rtol="
                    f"{self.rtol}, atol={self.atol} (non-finite values or a stiff field); "
                    "loosen rtol/atol or use a fixed-step solver"
                )
            if compact and bool(done.any()):
                fin = done.nonzero().squeeze(1)
                out = out.index_copy(0, rows.index_select(0, fin), x.index_select(0, fin))
                nfe_out = nfe_out.index_copy(0, rows.index_select(0, fin), nfe.index_select(0, fin))
                sel = alive.nonzero().squeeze(1)
                rows, x, t, h, end = (v.index_select(0, sel) for v in (rows, x, t, h, end))
                k1, prev, tries = (v.index_select(0, sel) for v in (k1, prev, tries))
                nfe, stale, alive = (v.index_select(0, sel) for v in (nfe, stale, alive))
                if m is not None:
                    m = m.index_select(0, sel)
        if not compact:
            return x, nfe
        return out, nfe_out

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        seed = -1
        if self.training and not torch.jit.is_scripting():
            seed = _new_seed()
        nfe = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        h = (self.t1 - self.t0) / self.steps
        for n in range(self.steps):
            t = self.t0 + n * h
            for s in range(len(self.which)):
                x, used = self.solve(self.which[s], x, mask, t, t + self.fraction[s] * h, seed)
                nfe = nfe + used * self.weight[s]
        self.sample_nfe = nfe
        if nfe.shape[0] > 0:
            self.total_nfe += float(nfe.mean())
        return x

    @torch.jit.unused
    def nfe(self) -> float:
        """Mean field evaluations per sample, summed over the forwards since :meth:`reset_nfe`
        (A or M alone count one half: ``field.FIELD_WEIGHT``)."""
        return self.total_nfe

    @torch.jit.unused
    def reset_nfe(self) -> None:
        self.total_nfe = 0.0


def per_sample_nfe(stack: nn.Module, batch: int) -> Tensor:
    """Field evaluations of each sample of the last forward of ``stack`` (an ODE stack,
    its groups in ``stack.blocks``), float64 ``(batch,)``: a per-sample integrator's own
    counts; every other integrator's count per forward, the same for every sample."""
    total = torch.zeros(batch, dtype=torch.float64)
    for block in stack.blocks:
        own = getattr(block, "sample_nfe", None)
        if isinstance(own, Tensor) and own.shape[0] == batch:
            total = total + own.cpu()
        else:
            total = total + float(block.nfe())
    return total
