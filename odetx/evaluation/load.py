"""Rebuild a trained model from its checkpoint alone, optionally with another solver."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odetx.artefacts.checkpoint import load_checkpoint, resolve_checkpoint_path
from odetx.config import Config, SolverConfig, as_written, from_dict
from odetx.data.base import DataInfo
from odetx.errors import CheckpointError, ConfigError
from odetx.models import build_model
from odetx.models.archs import ARCHS
from odetx.models.factory import resolve_model
from odetx.origins import require
from odetx.resolve import resolve
from odetx.runtime.device import resolve_device
from odetx.solvers import fit_coefficients, resolve_solver, validate_solver


@dataclass
class LoadedModel:
    model: nn.Module
    config: Config
    info: DataInfo
    trained_solver: SolverConfig
    solver: SolverConfig
    path: Path
    state: dict = dataclasses.field(repr=False, default_factory=dict)
    weights: str = "raw"  # "ema": the checkpoint's weight average; "raw": the trained weights
    trained_arch: str = ""  # the arch it was trained (or imported) with

    @property
    def overridden(self) -> bool:
        return self.solver != self.trained_solver

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def rebuild(self, solver: SolverConfig, arch: str | None = None) -> nn.Module:
        """The trained weights in a new model integrated by a resolved ``solver`` (and ``arch``).

        Every arch and solver shares the field's parameter layout, so its weights fit any
        of them; learned solver coefficients are dropped or start at their initial values
        when the solver changes (:func:`odetx.solvers.fit_coefficients`).
        """
        model_cfg = self.config.model
        if arch is not None:
            model_cfg = dataclasses.replace(model_cfg, arch=arch)
        model = build_model(model_cfg, solver, self.info)
        state = self.state
        if solver.method != self.trained_solver.method:
            state = fit_coefficients(state, model)  # learned coefficients follow the solver
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise CheckpointError(
                f"{self.path}: weights do not fit the model it describes ({first})"
            ) from None
        return model.to(self.device if self.model is not None else "cpu").eval()


def override_solver(trained: SolverConfig, overrides: dict[str, Any]) -> SolverConfig:
    """The trained solver with ``overrides``; naming a new method starts from its defaults,
    but a per-sample solve keeps the trained step-size controller unless one is named."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = trained
    if "method" in overrides and overrides["method"] != trained.method:
        kept = trained.controller if overrides.get("per_sample") else SolverConfig.controller
        base = SolverConfig(method=overrides["method"], adjoint=False, controller=kept)
    if overrides.get("per_sample") is False and "controller" not in overrides:
        base = dataclasses.replace(base, controller=SolverConfig.controller)
    cfg = from_dict(SolverConfig, {**dataclasses.asdict(base), **overrides}, "solver.")
    validate_solver(cfg)
    return resolve_solver(cfg)


def load_model(
    checkpoint: str | Path,
    solver_overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    ema: bool = True,
    arch: str | None = None,
) -> LoadedModel:
    """Load ``checkpoint`` (a file or a run directory, then its ``best.pt``).

    A checkpoint of a run with ``train.ema`` carries the weight average beside the raw
    weights; it is the model loaded unless ``ema`` is False (``--no-ema``). ``arch``
    integrates the same weights with another arch (its config then says so; the
    trained one stays in ``trained_arch``).
    """
    path = resolve_checkpoint_path(checkpoint, "best.pt")
    ckpt = load_checkpoint(path)
    try:
        parsed = from_dict(Config, as_written(ckpt["config"]))
        info = from_dict(DataInfo, ckpt["data_info"])
    except ConfigError as e:
        raise CheckpointError(f"{path} carries an invalid config ({e})") from None
    require(parsed.plugins, str(path))  # loaded where they can be, else named in one line
    try:
        config = resolve(parsed)
    except ConfigError as e:
        raise CheckpointError(f"{path} carries an invalid config ({e})") from None
    solver = override_solver(config.solver, solver_overrides or {})
    trained_arch = config.model.arch
    if arch is not None and arch != trained_arch:
        ARCHS.lookup(arch, "--arch")
        model_cfg = dataclasses.replace(config.model, arch=arch)
        config = dataclasses.replace(config, model=resolve_model(model_cfg))
    weights = "ema" if ema and "model_ema" in ckpt else "raw"
    state = ckpt["model_ema"] if weights == "ema" else ckpt["model"]
    loaded = LoadedModel(None, config, info, config.solver, solver, path, state, weights)
    loaded.trained_arch = trained_arch
    loaded.model = loaded.rebuild(solver).to(resolve_device(device, "--device"))
    return loaded
