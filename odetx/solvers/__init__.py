"""Solvers: Butcher tableaus + the odetx fixed-step integrator; torchdiffeq for adaptive ones."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from odetx.errors import ConfigError
from odetx.registry import Registry
from odetx.solvers.adaptive import ADAPTIVE_METHODS, AdaptiveIntegrator
from odetx.solvers.fixed import FixedStepIntegrator
from odetx.solvers.tableau import TABLEAUS, ButcherTableau


@dataclass(frozen=True)
class SolverInfo:
    name: str
    order: int
    adaptive: bool
    stages: int | None
    source: str


SOLVERS: Registry[SolverInfo] = Registry("solver")
for _name, _t in TABLEAUS.items():
    SOLVERS.register(_name, SolverInfo(_name, _t.order, False, _t.stages, "odetx"))
for _name, _order in zip(ADAPTIVE_METHODS, (5, 3, 2, 8), strict=True):
    SOLVERS.register(_name, SolverInfo(_name, _order, True, None, "torchdiffeq"))

ADAPTIVE_DEFAULTS = {"rtol": 1e-3, "atol": 1e-4, "max_num_steps": 1000}


def validate_solver(cfg) -> None:
    """Refuse solver options that do not apply or make no sense (torchdiffeq only warns)."""
    if cfg.method not in SOLVERS:
        raise ConfigError(
            "solver.method", f"unknown solver {cfg.method!r}; choose one of: {', '.join(SOLVERS)}"
        )
    if cfg.steps <= 0:
        raise ConfigError("solver.steps", f"must be a positive integer, got {cfg.steps}")
    info = SOLVERS[cfg.method]
    if not info.adaptive:
        for key in ("rtol", "atol", "max_num_steps"):
            if getattr(cfg, key) is not None:
                raise ConfigError(
                    f"solver.{key}",
                    f"applies to adaptive solvers ({', '.join(ADAPTIVE_METHODS)}); "
                    f"{cfg.method} is fixed-step (set solver.steps instead)",
                )
        if cfg.adjoint:
            raise ConfigError(
                "solver.adjoint",
                f"the adjoint method needs an adaptive solver ({', '.join(ADAPTIVE_METHODS)}); "
                f"{cfg.method} backpropagates through its steps directly",
            )
        return
    for key in ("rtol", "atol"):
        value = getattr(cfg, key)
        if value is not None and value <= 0:
            raise ConfigError(f"solver.{key}", f"must be positive, got {value}")
    if cfg.max_num_steps is not None and cfg.max_num_steps <= 0:
        raise ConfigError("solver.max_num_steps", f"must be positive, got {cfg.max_num_steps}")


def resolve_solver(cfg):
    """``cfg`` with the adaptive defaults filled in (fixed-step configs are returned as is)."""
    if not SOLVERS[cfg.method].adaptive:
        return cfg
    return dataclasses.replace(
        cfg, **{k: v for k, v in ADAPTIVE_DEFAULTS.items() if getattr(cfg, k) is None}
    )


def build_integrator(
    field: nn.Module, cfg, substeps: list[tuple[int, float]], t0: float, t1: float
) -> nn.Module:
    """The integrator ``cfg`` (a SolverConfig) names, over ``field`` on ``[t0, t1]``."""
    info = SOLVERS[cfg.method]
    if not info.adaptive:
        return FixedStepIntegrator(field, TABLEAUS[cfg.method], substeps, cfg.steps, t0, t1)
    cfg = resolve_solver(cfg)
    opts = {k: getattr(cfg, k) for k in ADAPTIVE_DEFAULTS}
    return AdaptiveIntegrator(
        field, cfg.method, substeps, cfg.steps, t0, t1, adjoint=cfg.adjoint, **opts
    )


__all__ = [
    "ADAPTIVE_METHODS",
    "AdaptiveIntegrator",
    "ButcherTableau",
    "FixedStepIntegrator",
    "SOLVERS",
    "TABLEAUS",
    "build_integrator",
    "resolve_solver",
    "validate_solver",
]
