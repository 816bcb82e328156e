"""Solvers: Butcher tableaus + the odetx fixed-step integrator; torchdiffeq for adaptive ones."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import nn

from odetx.config import SolverConfig
from odetx.errors import ConfigError
from odetx.registry import Registry
from odetx.solvers.adaptive import ADAPTIVE, ADAPTIVE_DEFAULTS, AdaptiveIntegrator
from odetx.solvers.fixed import FixedStepIntegrator
from odetx.solvers.tableau import TABLEAUS, ButcherTableau


@dataclass(frozen=True)
class SolverInfo:
    name: str
    order: int
    adaptive: bool
    stages: int | None
    source: str
    reference: str


SOLVERS: Registry[SolverInfo] = Registry("solver")
for _name, _t in TABLEAUS.items():
    SOLVERS.register(_name, SolverInfo(_name, _t.order, False, _t.stages, "odetx", _t.reference))
for _name, _m in ADAPTIVE.items():
    SOLVERS.register(_name, SolverInfo(_name, _m.order, True, None, "torchdiffeq", _m.reference))

ADAPTIVE_NAMES = ", ".join(ADAPTIVE.names())

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


def resolve_solver(cfg: SolverConfig) -> SolverConfig:
    """``cfg`` with the adaptive defaults filled in (fixed-step configs are returned as is)."""
    if not SOLVERS[cfg.method].adaptive:
        return cfg
    return dataclasses.replace(
        cfg, **{k: v for k, v in ADAPTIVE_DEFAULTS.items() if getattr(cfg, k) is None}
    )


def build_integrator(
    field: nn.Module, cfg: SolverConfig, substeps: list[tuple[int, float]], t0: float, t1: float
) -> nn.Module:
    """The integrator a resolved ``cfg`` names, over ``field`` on ``[t0, t1]``."""
    info = SOLVERS[cfg.method]
    if not info.adaptive:
        return FixedStepIntegrator(field, TABLEAUS[cfg.method], substeps, cfg.steps, t0, t1)
    opts = {k: getattr(cfg, k) for k in ADAPTIVE_DEFAULTS}
    if None in opts.values():
        raise ValueError(
            f"unresolved solver options {opts}: pass the config through resolve_solver"
        )
    return AdaptiveIntegrator(
        field, cfg.method, substeps, cfg.steps, t0, t1, adjoint=cfg.adjoint, **opts
    )


__all__ = [
    "ADAPTIVE",
    "ADAPTIVE_NAMES",
    "AdaptiveIntegrator",
    "ButcherTableau",
    "FixedStepIntegrator",
    "SOLVERS",
    "TABLEAUS",
    "build_integrator",
    "resolve_solver",
    "validate_solver",
]
