"""Sweeps: a base config and grids of overrides; each cell is one run directory.

A sweep file::

    base: ../default.yaml          # a config file (relative to this file), or a mapping
    out: runs/sweeps/paper         # where the cell run directories go (relative to the cwd)
    set: {train.epochs: 20}        # overrides for every cell (optional)
    experiments:                   # named grids; each is a cartesian product
      schemes:
        grid: {model.arch: [sequential, parallel, strang], train.seed: [0, 1, 2]}
      groups:
        set: {solver.method: euler}
        grid:
          # keys joined by a comma vary together: one axis of [groups, steps] pairs
          model.groups,solver.steps: [[6, 1], [3, 2], [2, 3], [1, 6]]
          train.seed: [0, 1, 2]

Cell ``experiments.E`` with grid values ``k=v, …`` lives in ``out/E/k=v,…``.
Cells whose directory already holds ``summary.json`` are skipped, and a cell
stopped part-way resumes from its ``last.pt``, so an interrupted sweep resumes
by running it again; either way the directory's config must be the cell's.
Cells of several experiments with the same config train once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from odetx.artefacts import RunDir
from odetx.config import (
    MACHINE_KEYS,
    Config,
    YamlTooLarge,
    flatten,
    load_yaml_text,
    merge,
    read_yaml,
    with_defaults,
)
from odetx.errors import ConfigError, Interrupted, OdetxError
from odetx.resolve import build_config
from odetx.training import Trainer, prepare_resume

SWEEP_KEYS = ("base", "out", "set", "experiments")
EXPERIMENT_KEYS = ("set", "grid")


@dataclass(frozen=True)
class Cell:
    experiment: str
    overrides: dict[str, Any]  # the grid values that make this cell
    config: Config
    run_dir: Path
    shared: bool = False  # an earlier cell of the sweep has the same config and trains it


def _slug(overrides: dict[str, Any]) -> str:
    short = [key.split(".")[-1] for key in overrides]
    parts = [
        f"{name if short.count(name) == 1 else key}={value}"
        for key, name, value in zip(overrides, short, overrides.values(), strict=True)
    ]
    return re.sub(r"[^A-Za-z0-9=.,_+-]", "_", ",".join(parts)) or "base"


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {value!r}")
    return value


def _overrides(value: Any, key: str) -> dict[str, Any]:
    """A ``set`` block as dotted overrides (nested sections are flattened)."""
    out = flatten(_mapping(value, key))
    if "train.out" in out:
        raise ConfigError(f"{key}.train.out", "is the sweep's to choose; set out: instead")
    return out


def _axes(grid: dict[str, Any], key: str) -> list[tuple[list[str], list[list[Any]]]]:
    """Each grid entry as (keys, values per point); ``a,b: [[1, 2], …]`` ties keys together."""
    axes = []
    for name, values in grid.items():
        where = f"{key}.{name}"
        keys = [k.strip() for k in str(name).split(",")]
        if "train.out" in keys:
            raise ConfigError(where, "train.out is the sweep's to choose; set out: instead")
        if not isinstance(values, list) or not values:
            raise ConfigError(where, f"expected a non-empty list of values, got {values!r}")
        points = []
        for v in values:
            point = v if len(keys) > 1 else [v]
            if not isinstance(point, list) or len(point) != len(keys):
                raise ConfigError(where, f"expected a list of {len(keys)} values, got {v!r}")
            if any(isinstance(p, (dict, list)) for p in point):
                raise ConfigError(where, f"expected plain values, got {v!r}")
            points.append(point)
        if len({repr(p) for p in points}) < len(points):
            raise ConfigError(where, f"lists a value twice: {values!r}")
        axes.append((keys, points))
    return axes


def setting_of(cfg: Config) -> dict[str, Any]:
    """What a run computes: its resolved config without the machine keys."""
    return {k: v for k, v in flatten(cfg.to_dict()).items() if k not in MACHINE_KEYS}


def load_sweep(path: str | Path, out: str | Path | None = None) -> list[Cell]:
    """Expand a sweep file into validated cells (every cell's config is checked up front).

    Args:
        path: the sweep file.
        out: where the cell directories go, instead of the file's ``out``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--sweep", f"no such file: {path}")
    try:
        spec = read_yaml(path)
    except ConfigError as e:
        raise ConfigError("--sweep", str(e).removeprefix("--config: ")) from None
    for key in spec:
        if key not in SWEEP_KEYS:
            raise ConfigError(
                f"{path.name}: {key}", f"unknown key; valid keys are: {', '.join(SWEEP_KEYS)}"
            )
    base = spec.get("base")
    if isinstance(base, str):
        try:
            base_tree = merge(Config().to_dict(), read_yaml(path.parent / base))
        except ConfigError as e:
            raise ConfigError(f"{path.name}: base", str(e).removeprefix("--config: ")) from None
    else:
        base_tree = merge(Config().to_dict(), _mapping(base, f"{path.name}: base"))
    if out is None and spec.get("out") is not None and not isinstance(spec["out"], str):
        raise ConfigError(f"{path.name}: out", f"expected a folder name, got {spec['out']!r}")
    root = Path(out or spec.get("out") or Path("runs") / "sweeps" / path.stem)
    common = _overrides(spec.get("set"), f"{path.name}: set")
    experiments = _mapping(spec.get("experiments"), f"{path.name}: experiments")
    if not experiments:
        raise ConfigError(f"{path.name}: experiments", "names no experiment")
    cells: list[Cell] = []
    trained_by: dict[str, Path] = {}  # setting -> the first cell's directory
    for name, exp in experiments.items():
        where = f"{path.name}: experiments.{name}"
        exp = _mapping(exp, where)
        for key in exp:
            if key not in EXPERIMENT_KEYS:
                raise ConfigError(f"{where}.{key}", "unknown key; use set and grid")
        fixed = {**common, **_overrides(exp.get("set"), f"{where}.set")}
        axes = _axes(_mapping(exp.get("grid"), f"{where}.grid"), f"{where}.grid")
        for combo in itertools.product(*(points for _, points in axes)):
            varied = {
                k: v
                for (keys, _), point in zip(axes, combo, strict=True)
                for k, v in zip(keys, point, strict=True)
            }
            run_dir = root / str(name) / _slug(varied)
            try:
                cfg = build_config(
                    overrides={**fixed, **varied, "train.out": str(run_dir)}, base=base_tree
                )
            except ConfigError as e:
                raise ConfigError(f"{where} cell {_slug(varied)}", str(e)) from None
            key = repr(sorted(setting_of(cfg).items()))
            first = trained_by.setdefault(key, run_dir)
            cells.append(Cell(str(name), varied, cfg, first, shared=first != run_dir))
    return cells


def _check_same(run: RunDir, tree: dict[str, Any], cell: Cell) -> None:
    """Refuse a directory that holds a run of another config than the cell's."""
    have = {k: v for k, v in with_defaults(flatten(tree)).items() if k not in MACHINE_KEYS}
    want = setting_of(cell.config)
    diff = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
    if diff:
        k = diff[0]
        raise ConfigError(
            k,
            f"{run.path} holds a run with {k}={have.get(k)!r}, the sweep asks for "
            f"{want.get(k)!r}; move that directory away or give the sweep another out",
        )


def plan(cells: list[Cell]) -> list[str]:
    """What each cell needs, checked before any training: ``trained`` (fresh), ``resumed``
    (stopped part-way), ``skipped`` (already complete) or ``shared`` (an earlier cell has
    the same config).

    Raises:
        ConfigError: a cell's directory holds a run of another config.
    """
    statuses = []
    for cell in cells:
        run = RunDir(cell.run_dir)
        if cell.shared:
            statuses.append("shared")
            continue
        if run.is_complete() or run.last.exists():
            try:
                tree = load_yaml_text(run.config.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError, YamlTooLarge) as e:
                raise OdetxError(f"cannot read {run.config}: {e}") from None
            _check_same(run, tree, cell)
        statuses.append(
            "skipped" if run.is_complete() else "resumed" if run.last.exists() else "trained"
        )
    return statuses


def run_sweep(
    cells: list[Cell],
    make_reporter: Callable[[Cell], Any] | None = None,
    announce: Callable[[int, int, Cell, str], None] | None = None,
) -> list[str]:
    """Train each cell that needs it; returns :func:`plan`'s status per cell.

    ``announce(i, n, cell, status)`` is called before any work on cell ``i`` of ``n``
    (from 1).

    Raises:
        ConfigError: a cell's directory holds a run of another config (before any training).
        Interrupted: Ctrl-C; finished epochs are kept and a rerun resumes them.
    """
    statuses = plan(cells)
    for i, (cell, status) in enumerate(zip(cells, statuses, strict=True), 1):
        if announce:
            announce(i, len(cells), cell, status)
        if status not in ("trained", "resumed"):
            continue
        reporter = make_reporter(cell) if make_reporter else None
        try:
            if status == "resumed":
                machine = flatten(cell.config.to_dict())
                resume = prepare_resume(cell.run_dir, {k: machine[k] for k in MACHINE_KEYS})
                _check_same(RunDir(resume.run_dir), resume.config.to_dict(), cell)
                Trainer(resume.config, resume.run_dir, resume.checkpoint, reporter).fit()
            else:
                Trainer(cell.config, cell.run_dir, reporter=reporter).fit()
        except Interrupted:
            raise Interrupted(f"interrupted in {cell.run_dir}") from None
        except OdetxError as e:
            err = OdetxError(f"sweep cell {cell.run_dir}: {e}")
            err.exit_code = e.exit_code
            raise err from None
    return statuses
