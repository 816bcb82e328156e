"""Sweeps: a base config and grids of overrides; each cell is one run directory.

A sweep file::

    base: ../default.yaml          # a config file (relative to this file), or a mapping
    out: runs/sweeps/paper         # where the cell run directories go
    set: {train.epochs: 20}        # overrides for every cell (optional)
    experiments:                   # named grids; each is a cartesian product
      schemes:
        grid: {model.arch: [sequential, parallel, strang], train.seed: [0, 1, 2]}
      solvers:
        set: {model.groups: 1}
        grid: {solver.method: [euler, midpoint, rk4], train.seed: [0, 1, 2]}

Cells whose directory already holds ``summary.json`` are skipped, and a cell
stopped part-way resumes from its ``last.pt``, so an interrupted sweep resumes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odetx.config import Config, build_config, merge, read_yaml
from odetx.errors import ConfigError
from odetx.training import RunDir, Trainer, prepare_resume

SWEEP_KEYS = {"base", "out", "set", "experiments"}
EXPERIMENT_KEYS = {"set", "grid"}


@dataclass(frozen=True)
class Cell:
    experiment: str
    overrides: dict[str, Any]
    config: Config
    run_dir: Path


def _slug(overrides: dict[str, Any]) -> str:
    parts = [f"{key.split('.')[-1]}={value}" for key, value in overrides.items()]
    return re.sub(r"[^A-Za-z0-9=.,_-]", "_", ",".join(parts)) or "base"


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {value!r}")
    return value


def load_sweep(path: str | Path) -> list[Cell]:
    """Expand a sweep file into validated cells (every cell's config is checked up front)."""
    path = Path(path)
    spec = read_yaml(path)
    for key in spec:
        if key not in SWEEP_KEYS:
            raise ConfigError(
                f"sweep.{key}", f"unknown key; valid keys are: {', '.join(sorted(SWEEP_KEYS))}"
            )
    base = spec.get("base")
    if isinstance(base, str):
        base_tree = merge(Config().to_dict(), read_yaml(path.parent / base))
    else:
        base_tree = merge(Config().to_dict(), _mapping(base, "sweep.base"))
    out = Path(spec.get("out") or Path("runs") / "sweeps" / path.stem)
    common = _mapping(spec.get("set"), "sweep.set")
    experiments = _mapping(spec.get("experiments"), "sweep.experiments")
    if not experiments:
        raise ConfigError("sweep.experiments", "names no experiment")
    cells = []
    for name, exp in experiments.items():
        exp = _mapping(exp, f"sweep.experiments.{name}")
        for key in exp:
            if key not in EXPERIMENT_KEYS:
                raise ConfigError(
                    f"sweep.experiments.{name}.{key}", "unknown key; use set and grid"
                )
        grid = _mapping(exp.get("grid"), f"sweep.experiments.{name}.grid")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"sweep.experiments.{name}.grid.{key}", "expected a non-empty list"
                )
        fixed = {**common, **_mapping(exp.get("set"), f"sweep.experiments.{name}.set")}
        for combo in itertools.product(*grid.values()):
            varied = dict(zip(grid.keys(), combo, strict=True))
            run_dir = out / name / _slug(varied)
            overrides = {**fixed, **varied, "train.out": str(run_dir)}
            cells.append(
                Cell(name, varied, build_config(overrides=overrides, base=base_tree), run_dir)
            )
    return cells


def run_sweep(
    cells: list[Cell], make_reporter: Callable[[Cell], Any] | None = None
) -> Iterator[tuple[Cell, str]]:
    """Train each cell; yields ``(cell, status)``: ``done``, ``resumed`` or ``skipped``."""
    for cell in cells:
        run = RunDir(cell.run_dir)
        if run.is_complete():
            yield cell, "skipped"
            continue
        reporter = make_reporter(cell) if make_reporter else None
        if run.last.exists():
            cfg, ckpt, run_dir = prepare_resume(run.path, {})
            Trainer(cfg, run_dir, ckpt=ckpt, reporter=reporter).fit()
            yield cell, "resumed"
        else:
            Trainer(cell.config, cell.run_dir, reporter=reporter).fit()
            yield cell, "done"
