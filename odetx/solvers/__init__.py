"""Solvers: Butcher tableaus + the odetx fixed-step integrator; torchdiffeq for adaptive ones,
and odetx's own per-sample adaptive integrator for embedded pairs (``solver.per_sample``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from odetx.config import SolverConfig
from odetx.errors import ConfigError
from odetx.registry import Registry
from odetx.solvers.adaptive import ADAPTIVE, ADAPTIVE_DEFAULTS, AdaptiveIntegrator
from odetx.solvers.controllers import CONTROLLERS
from odetx.solvers.embedded import EMBEDDED, EmbeddedTableau
from odetx.solvers.fixed import FixedStepIntegrator
from odetx.solvers.learned import LEARNED, fit_coefficients, is_coefficient
from odetx.solvers.persample import PerSampleIntegrator
from odetx.solvers.tableau import TABLEAUS, ButcherTableau


@dataclass(frozen=True)
class SolverInfo:
    name: str
    order: int | None  # None: learned coefficients, no order claimed
    kind: str  # "fixed-step", "adaptive" or "learned": which builder makes its integrator
    stages: int | None
    source: str
    reference: str

    @property
    def adaptive(self) -> bool:
        return self.kind == "adaptive"

    @property
    def per_sample(self) -> bool:
        """Whether odetx has the method as an embedded pair (``solver.per_sample``)."""
        return self.name in EMBEDDED


SOLVERS: Registry[SolverInfo] = Registry("solver")
for _name, _t in TABLEAUS.items():
    SOLVERS.register(
        _name, SolverInfo(_name, _t.order, "fixed-step", _t.stages, "odetx", _t.reference)
    )
for _name, _m in ADAPTIVE.items():
    _source = "torchdiffeq; odetx per sample" if _name in EMBEDDED else "torchdiffeq"
    SOLVERS.register(_name, SolverInfo(_name, _m.order, "adaptive", None, _source, _m.reference))
for _name, _e in EMBEDDED.items():
    if _name not in ADAPTIVE:  # odetx's own pairs: per sample only
        SOLVERS.register(
            _name,
            SolverInfo(_name, _e.order, "adaptive", _e.stages, "odetx per sample", _e.reference),
        )
for _name, _l in LEARNED.items():
    SOLVERS.register(
        _name, SolverInfo(_name, None, "learned", _l.base.stages, "odetx", _l.reference)
    )

ADAPTIVE_NAMES = ", ".join(n for n, i in SOLVERS.items() if i.adaptive)
EMBEDDED_NAMES = ", ".join(EMBEDDED.names())

Substeps = list[tuple[int, float]]

# Far beyond any useful integration (each step is a pass through a whole layer), low
# enough that a typo is refused at once instead of running for days or allocating the
# activations of a billion steps.
MAX_STEPS = 1_000_000


def validate_solver(cfg: SolverConfig) -> None:
    """Refuse solver options that do not apply or make no sense (torchdiffeq only warns)."""
    info = SOLVERS.lookup(cfg.method, "solver.method")
    if cfg.steps <= 0:
        raise ConfigError("solver.steps", f"must be a positive integer, got {cfg.steps}")
    if cfg.steps > MAX_STEPS:
        raise ConfigError("solver.steps", f"must be at most {MAX_STEPS:,}")
    check_per_sample(cfg)
    if not info.adaptive:
        for key in ("rtol", "atol", "max_num_steps"):
            if getattr(cfg, key) is not None:
                raise ConfigError(
                    f"solver.{key}",
                    f"applies to adaptive solvers ({ADAPTIVE_NAMES}); "
                    f"{cfg.method} is fixed-step (set solver.steps instead)",
                )
        if cfg.adjoint:
            raise ConfigError(
                "solver.adjoint",
                f"the adjoint method needs an adaptive solver ({ADAPTIVE_NAMES}); "
                f"{cfg.method} backpropagates through its steps directly",
            )
        return
    for key in ("rtol", "atol"):
        value = getattr(cfg, key)
        # Written so that NaN (false in every comparison) is refused too.
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"solver.{key}", f"must be a positive finite number, got {value}")
    n = cfg.max_num_steps
    if n is not None and not 0 < n <= MAX_STEPS:
        raise ConfigError(
            "solver.max_num_steps", f"must lie in 1..{MAX_STEPS:,}, got {cfg.max_num_steps}"
        )


def check_per_sample(cfg: SolverConfig) -> None:
    """``solver.per_sample`` needs one of odetx's embedded pairs; odetx's own pairs
    (tsit5) run only per sample; the adjoint method is torchdiffeq's, batch-shared."""
    if cfg.per_sample and cfg.method not in EMBEDDED:
        raise ConfigError(
            "solver.per_sample",
            f"needs an embedded Runge–Kutta pair ({EMBEDDED_NAMES}); {cfg.method} is not one",
        )
    if cfg.per_sample and cfg.adjoint:
        raise ConfigError(
            "solver.adjoint",
            "per-sample steps backpropagate through their steps directly; "
            "set solver.adjoint=false (the adjoint is torchdiffeq's, batch-shared)",
        )
    CONTROLLERS.lookup(cfg.controller, "solver.controller")
    if not cfg.per_sample and cfg.controller != SolverConfig.controller:
        raise ConfigError(
            "solver.controller",
            "chooses per-sample steps' controller; batch-shared solvers (torchdiffeq) step "
            "with their own integral one: add --per-sample or drop it",
        )
    if not cfg.per_sample and cfg.method in EMBEDDED and cfg.method not in ADAPTIVE:
        raise ConfigError(
            "solver.per_sample",
            f"{cfg.method} is odetx's own embedded pair and runs per sample only; "
            "add --per-sample (solver.per_sample=true)",
        )


def resolve_solver(cfg: SolverConfig) -> SolverConfig:
    """``cfg`` with the adaptive defaults filled in (fixed-step configs are returned as is)."""
    if not SOLVERS[cfg.method].adaptive:
        return cfg
    return dataclasses.replace(
        cfg, **{k: v for k, v in ADAPTIVE_DEFAULTS.items() if getattr(cfg, k) is None}
    )


def build_integrator(
    field: nn.Module,
    cfg: SolverConfig,
    substeps: list[tuple[int, float]],
    t0: float,
    t1: float,
    *,
    width: int = 0,
    drop_path: float = 0.0,
    depth: float = 0.0,
    time_dependent: bool = True,
) -> nn.Module:
    """The integrator a resolved ``cfg`` names, over ``field`` on ``[t0, t1]``.

    ``width`` is the model's ``dim`` (learned gates read the state); ``drop_path``
    and ``depth`` (the stack's end) set stochastic depth, which only fixed-step
    integrators apply (an adaptive one is only ever built with it for evaluation,
    where it is off). ``time_dependent=False`` tells a per-sample integrator that the
    field ignores ``t``, so samples at different times share one evaluation.
    """
    if cfg.per_sample:
        return _per_sample(field, cfg, substeps, t0, t1, time_dependent)
    build = _BUILDERS[SOLVERS[cfg.method].kind]
    return build(field, cfg, substeps, t0, t1, width, drop_path, depth)


# Each builder: (field, cfg, substeps, t0, t1, width, drop_path, depth) -> integrator.
def _fixed(
    field: nn.Module, cfg: SolverConfig, substeps: Substeps, t0: float, t1: float, *extra: float
) -> nn.Module:
    _, drop_path, depth = extra
    tableau = TABLEAUS[cfg.method]
    return FixedStepIntegrator(field, tableau, substeps, cfg.steps, t0, t1, drop_path, depth)


def _learned(
    field: nn.Module, cfg: SolverConfig, substeps: Substeps, t0: float, t1: float, *extra: float
) -> nn.Module:
    width, drop_path, depth = extra
    m = LEARNED[cfg.method]
    return m.integrator(field, m.base, substeps, cfg.steps, t0, t1, drop_path, depth, int(width))


def _adaptive(
    field: nn.Module, cfg: SolverConfig, substeps: Substeps, t0: float, t1: float, *extra: float
) -> nn.Module:
    opts = {k: getattr(cfg, k) for k in ADAPTIVE_DEFAULTS}
    if None in opts.values():
        raise ValueError(
            f"unresolved solver options {opts}: pass the config through resolve_solver"
        )
    return AdaptiveIntegrator(
        field, cfg.method, substeps, cfg.steps, t0, t1, adjoint=cfg.adjoint, **opts
    )


def _per_sample(
    field: nn.Module,
    cfg: SolverConfig,
    substeps: Substeps,
    t0: float,
    t1: float,
    time_dependent: bool,
) -> nn.Module:
    opts = {k: getattr(cfg, k) for k in ADAPTIVE_DEFAULTS}
    if None in opts.values():
        raise ValueError(
            f"unresolved solver options {opts}: pass the config through resolve_solver"
        )
    return PerSampleIntegrator(
        field, EMBEDDED[cfg.method], substeps, cfg.steps, t0, t1,
        time_dependent=time_dependent, controller=cfg.controller, **opts,
    )  # fmt: skip


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "fixed-step": _fixed,
    "learned": _learned,
    "adaptive": _adaptive,
}


__all__ = [
    "ADAPTIVE",
    "ADAPTIVE_NAMES",
    "AdaptiveIntegrator",
    "CONTROLLERS",
    "EMBEDDED",
    "EMBEDDED_NAMES",
    "EmbeddedTableau",
    "PerSampleIntegrator",
    "ButcherTableau",
    "FixedStepIntegrator",
    "LEARNED",
    "SOLVERS",
    "TABLEAUS",
    "build_integrator",
    "fit_coefficients",
    "is_coefficient",
    "resolve_solver",
    "validate_solver",
]
