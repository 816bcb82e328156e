"""Integrate one trained model with many solvers: accuracy, cost and convergence order.

The convergence view measures each setting's error against a fine unsplit solve
of the model's own field A + M, in float64, so the fitted slope is the
empirical order of the whole layer step: Lie–Trotter ≈ 1, Strang ≈ 2, and the
parallel scheme the order of its solver.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from odetx.compare.table import Column, ResultTable
from odetx.config import SolverConfig
from odetx.data import DATASETS
from odetx.errors import ConfigError
from odetx.inference import LoadedModel, load_model, override_solver
from odetx.solvers import SOLVERS
from odetx.training.evaluate import evaluate
from odetx.training.loop import make_loader

REFERENCE = SolverConfig(method="rk4", steps=256)

COLUMNS = [
    Column("scheme", "scheme"),
    Column("solver", "solver"),
    Column("steps", "steps"),
    Column("acc", "accuracy", "max", "{:.4f}"),
    Column("delta_acc", "Δ acc vs trained", "max", "{:+.4f}"),
    Column("loss", "loss", "min", "{:.4f}"),
    Column("nfe", "NFE", "min", "{:.4g}"),
    Column("samples_per_s", "samples/s", "max", "{:.0f}"),
    Column("error", "rel. error vs fine solve", "min", "{:.2e}"),
    Column("order", "empirical order", None, "{:.2f}"),
]


@dataclass(frozen=True)
class Setting:
    scheme: str
    solver: SolverConfig


def settings(
    loaded: LoadedModel,
    methods: list[str],
    steps: list[int],
    rtol: float | None,
    atol: float | None,
    schemes: list[str],
) -> list[Setting]:
    """Every (scheme, solver, steps) to try; adaptive solvers take the tolerances instead."""
    out = []
    for scheme in schemes:
        for method in methods or [loaded.trained_solver.method]:
            if method not in SOLVERS:
                raise ConfigError("solver.method", f"unknown solver {method!r}")
            if SOLVERS[method].adaptive:
                cfgs = [{"method": method, "rtol": rtol, "atol": atol}]
            else:
                if rtol is not None or atol is not None:
                    pass  # tolerances only apply to the adaptive solvers in the list
                cfgs = [
                    {"method": method, "steps": n} for n in steps or [loaded.trained_solver.steps]
                ]
            out += [Setting(scheme, override_solver(loaded.trained_solver, c)) for c in cfgs]
    return out


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def fit_order(steps: list[int], errors: list[float]) -> float | None:
    """Slope of log(error) against log(step size); None with fewer than two usable points."""
    pts = [(s, e) for s, e in zip(steps, errors, strict=True) if e > 0 and math.isfinite(e)]
    if len(pts) < 2:
        return None
    s, e = np.array(pts, dtype=float).T
    return float(-np.polyfit(np.log(s), np.log(e), 1)[0])


def compare_solvers(
    checkpoint: str | Path,
    methods: list[str],
    steps: list[int],
    rtol: float | None = None,
    atol: float | None = None,
    schemes: list[str] | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    convergence_samples: int = 64,
) -> ResultTable:
    """Evaluate ``checkpoint`` under every setting; returns the table (rows carry raw values)."""
    loaded = load_model(checkpoint, device=device)
    cfg = loaded.config
    data_cfg = dataclasses.replace(cfg.data, root=data_root) if data_root else cfg.data
    dataset = DATASETS[data_cfg.name].load(data_cfg)[split]
    loader = make_loader(dataset, batch_size or 2 * cfg.train.batch_size, False, 0)
    dev = next(loaded.model.parameters()).device
    probe = next(iter(make_loader(dataset, convergence_samples, False, 0)))
    probe_inputs = [t.to(dev) for t in probe[:-1]]
    probe_inputs = [t.double() if t.is_floating_point() else t for t in probe_inputs]

    with torch.no_grad():
        reference = loaded.rebuild(REFERENCE, arch="parallel").double()(*probe_inputs)
    trained = evaluate(loaded.model, loader, dev)

    rows: list[dict[str, Any]] = []
    for s in settings(loaded, methods, steps, rtol, atol, schemes or [cfg.model.arch]):
        model = loaded.rebuild(s.solver, arch=s.scheme)
        result = evaluate(model, loader, dev)
        with torch.no_grad():
            out = model.double()(*probe_inputs)
        adaptive = SOLVERS[s.solver.method].adaptive
        rows.append(
            {
                "scheme": s.scheme,
                "solver": s.solver.method,
                "steps": None if adaptive else s.solver.steps,
                "rtol": s.solver.rtol,
                "atol": s.solver.atol,
                "acc": result.acc,
                "delta_acc": result.acc - trained.acc,
                "loss": result.loss,
                "nfe": result.nfe,
                "samples_per_s": result.samples_per_s,
                "error": _relative_error(out, reference),
                "trained": s.scheme == cfg.model.arch and s.solver == loaded.trained_solver,
            }
        )
    for key in {(r["scheme"], r["solver"]) for r in rows if r["steps"] is not None}:
        line = [r for r in rows if (r["scheme"], r["solver"]) == key and r["steps"] is not None]
        order = fit_order([r["steps"] for r in line], [r["error"] for r in line])
        for r in line:
            r["order"] = order
    table = ResultTable(f"{Path(loaded.path)} on {data_cfg.name} {split}", COLUMNS, rows)
    trained_label = (
        f"trained with {cfg.model.arch} / {loaded.trained_solver.method}"
        f" ({loaded.trained_solver.steps} step(s)): accuracy {trained.acc:.4f}, NFE {trained.nfe:g}"
    )
    table.notes += [
        trained_label,
        f"error: relative L2 distance of the logits from an unsplit rk4 solve with "
        f"{REFERENCE.steps} steps per group, float64, on {len(probe[-1])} {split} samples",
        "empirical order: slope of log(error) against log(step size) over --steps",
    ]
    return table
