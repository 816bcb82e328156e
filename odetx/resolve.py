"""Resolve a parsed config once, against the registries, into the plain value every part takes.

Above :mod:`odetx.config` (the schema) and the registries it names — datasets,
presets and archs, solvers, precision modes — and below everything that runs a
config (training, evaluation, compare, export, the CLI). A resolved config has
the preset's dimensions, the group count and the solver defaults filled in, so
what is saved with a run is exactly what ran.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from odetx.config import Config, ModelConfig, SolverConfig, load_config
from odetx.data import DATASETS, DataInfo
from odetx.models import build_model, check_kind, resolve_model
from odetx.runtime.precision import AMP_DTYPES
from odetx.solvers import resolve_solver, validate_solver


def resolve(cfg: Config) -> Config:
    """``cfg`` checked against every registry, with presets and solver defaults filled in.

    Resolving a resolved config returns it unchanged.

    Raises:
        ConfigError: naming the first key that no registry accepts.
    """
    dataset = DATASETS.lookup(cfg.data.name, "data.name")
    AMP_DTYPES.lookup(cfg.train.amp, "train.amp")
    validate_solver(cfg.solver)
    model = resolve_model(cfg.model)
    check_kind(model, dataset.kind)
    data = cfg.data
    if data.context == 0 and model.context:  # text windows as long as the model reads
        data = dataclasses.replace(data, context=model.context)
    return dataclasses.replace(cfg, model=model, data=data, solver=resolve_solver(cfg.solver))


def build_config(
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Parse (:func:`odetx.config.load_config`) and :func:`resolve`: the config a run uses."""
    return resolve(load_config(file, overrides, base))


def create_model(model: ModelConfig, solver: SolverConfig, info: DataInfo) -> nn.Module:
    """Resolve ``model`` and ``solver`` on their own and build the network, for library use
    (``create_model(ModelConfig(preset="vit-micro"), SolverConfig("rk4"), info)``)."""
    validate_solver(solver)
    return build_model(resolve_model(model), resolve_solver(solver), info)
