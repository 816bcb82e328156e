"""Integrate one trained model with many solvers: accuracy, cost and convergence order.

The convergence view measures each setting's error against a fine unsplit solve
of the model's own field A + M, in float64, so the fitted slope is the
empirical order of the whole layer step: Lie–Trotter ≈ 1, Strang ≈ 2, and the
parallel arch the order of its solver (Hairer, Lubich & Wanner, *Geometric
Numerical Integration*, §II.5 on splitting orders).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from odetx.compare.table import Column, ResultTable
from odetx.config import SolverConfig
from odetx.data import check_split
from odetx.errors import ConfigError
from odetx.evaluation import (
    EvalResult,
    LoadedModel,
    eval_loader,
    evaluate,
    load_model,
    load_split,
    override_solver,
)
from odetx.models import ARCHS
from odetx.runtime.loaders import make_loader
from odetx.solvers import ADAPTIVE, ADAPTIVE_NAMES, CONTROLLERS, EMBEDDED_NAMES, SOLVERS

# The reference: rk4 on the unsplit field with this many steps per group; the same
# solve at half the steps estimates the reference's own error.
REFERENCE = SolverConfig(method="rk4", steps=256)
# Points within this factor of the reference's own error measure the reference, not
# the setting, and are left out of the fitted order.
REFERENCE_MARGIN = 10.0

COLUMNS = [
    Column("arch", "arch"),
    Column("solver", "solver"),
    Column("steps", "steps"),
    Column("acc", "acc", "max", "{:.4f}"),
    Column("delta_acc", "Δ acc", "max", "{:+.4f}"),
    Column("top5", "top-5", "max", "{:.4f}"),
    Column("loss", "loss", "min", "{:.4f}"),
    Column("bpb", "bits/byte", "min", "{:.4f}"),
    Column("delta_bpb", "Δ bits/byte", "min", "{:+.4f}"),
    Column("nfe", "NFE", "min", "{:.4g}"),
    Column("nfe_p90", "NFE p90", "min", "{:.4g}"),
    Column("nfe_max", "NFE max", "min", "{:.4g}"),
    Column("rtol", "rtol", None, "{:g}"),
    Column("samples_per_s", "samples/s", "max", "{:.0f}"),
    Column("error", "error", "min", "{:.2e}"),
    Column("local_order", "local order", None, "{:.2f}"),
    Column("order", "fit order", None, "{:.2f}"),
    Column("expected_order", "theory", None, "{}"),
]


@dataclass(frozen=True)
class Setting:
    arch: str
    solver: SolverConfig


def expected_order(arch: str, method: str) -> int | None:
    """The order theory predicts: the solver's, capped by the arch's splitting (0: unsplit);
    ``None`` for a solver with learned coefficients, of which theory says nothing."""
    split, solver = ARCHS[arch].order, SOLVERS[method].order
    if solver is None:
        return None
    return solver if split == 0 else min(split, solver)


Tolerances = list[tuple[float | None, float | None]]


def tolerance_pairs(
    rtol: float | list[float] | None, atol: float | list[float] | None
) -> Tolerances:
    """``(rtol, atol)`` for each adaptive setting: one per ``rtol`` (a list sweeps them);
    one ``atol`` applies to all, several pair up with the ``rtol`` values, and with
    several ``rtol`` and no ``atol`` each takes ``atol = rtol``."""
    rtols = rtol if isinstance(rtol, list) else [rtol]
    atols = atol if isinstance(atol, list) else [atol]
    if len(atols) == 1:
        if atols[0] is None and len(rtols) > 1:
            return [(r, r) for r in rtols]
        return [(r, atols[0]) for r in rtols]
    if len(rtols) == 1:
        return [(rtols[0], a) for a in atols]
    if len(rtols) != len(atols):
        raise ConfigError("--atol", f"give one value or one per --rtol ({len(rtols)})")
    return list(zip(rtols, atols, strict=True))


def _row_name(cfg: SolverConfig) -> str:
    """``dopri5``, ``dopri5 per sample``, ``dopri5 per sample (pi)``: the controller is
    named when it is not the default."""
    if not cfg.per_sample:
        return cfg.method
    other = cfg.controller != SolverConfig.controller
    return f"{cfg.method} per sample" + (f" ({cfg.controller})" if other else "")


def _modes(method: str, per_sample: bool) -> list[bool]:
    """``per_sample`` values to run ``method`` with: torchdiffeq's batch-shared steps where
    it has the method, and odetx's per-sample ones with ``--per-sample`` (or only them)."""
    modes = [False] if method in ADAPTIVE else []
    if SOLVERS[method].per_sample and (per_sample or not modes):
        modes.append(True)
    return modes


def settings(
    loaded: LoadedModel,
    methods: list[str],
    steps: list[int],
    rtol: float | list[float] | None,
    atol: float | list[float] | None,
    archs: list[str],
    per_sample: bool = False,
    controllers: list[str] | None = None,
) -> list[Setting]:
    """Every (arch, solver, steps) to try; adaptive solvers take the tolerances instead,
    each batch-shared and, with ``per_sample``, per sample too (once per controller in
    ``controllers``; none: the trained one).

    Raises:
        ConfigError: tolerances with no adaptive solver, steps with no fixed-step one,
            ``per_sample`` with no embedded pair.
    """
    methods = list(dict.fromkeys(methods or [loaded.trained_solver.method]))
    for method in methods:
        SOLVERS.lookup(method, "--solver")
    fixed = [m for m in methods if not SOLVERS[m].adaptive]
    if per_sample and not any(SOLVERS[m].per_sample for m in methods):
        raise ConfigError(
            "--per-sample", f"needs an embedded pair among the solvers ({EMBEDDED_NAMES})"
        )
    for c in controllers or []:
        CONTROLLERS.lookup(c, "--controller")
    if controllers and not any(True in _modes(m, per_sample) for m in methods):
        raise ConfigError(
            "--controller", "chooses the per-sample solves' controller: add --per-sample"
        )
    given = [v for v in (rtol, atol) if v not in (None, [])]
    if given and len(fixed) == len(methods):
        raise ConfigError(
            "--rtol" if rtol not in (None, []) else "--atol",
            f"applies to adaptive solvers ({ADAPTIVE_NAMES}); "
            f"{', '.join(methods)} {'is' if len(methods) == 1 else 'are'} fixed-step",
        )
    if steps and not fixed:
        raise ConfigError(
            "--steps", f"applies to fixed-step solvers; {', '.join(methods)} adapt their steps"
        )
    tols = tolerance_pairs(rtol, atol)
    out = []
    for arch in dict.fromkeys(archs):
        for method in methods:
            if SOLVERS[method].adaptive:
                cfgs = [
                    {"method": method, "rtol": r, "atol": a, "per_sample": each, "controller": c}
                    for r, a in tols
                    for each in _modes(method, per_sample)
                    for c in (list(dict.fromkeys(controllers or [None])) if each else [None])
                ]
            else:
                trained_steps = loaded.trained_solver.steps
                cfgs = [
                    {"method": method, "steps": n} for n in dict.fromkeys(steps or [trained_steps])
                ]
            out += [Setting(arch, override_solver(loaded.trained_solver, c)) for c in cfgs]
    return out


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def fit_order(steps: list[int], errors: list[float]) -> float | None:
    """Empirical order: the least-squares slope of log(error) against log(h), h ∝ 1/steps.

    Points with a zero or non-finite error are left out; ``None`` with fewer than two left.
    """
    pts = [(s, e) for s, e in zip(steps, errors, strict=True) if e > 0 and math.isfinite(e)]
    if len({s for s, _ in pts}) < 2:
        return None
    s, e = np.array(pts, dtype=float).T
    return float(-np.polyfit(np.log(s), np.log(e), 1)[0])


@torch.no_grad()
def _logits64(model: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    return model.double()(*inputs)


def compare_solvers(
    checkpoint: str | Path,
    methods: list[str],
    steps: list[int],
    rtol: float | list[float] | None = None,
    atol: float | list[float] | None = None,
    archs: list[str] | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    convergence_samples: int = 64,
    convergence_tokens: int = 256,
    ema: bool = True,
    per_sample: bool = False,
    controllers: list[str] | None = None,
) -> ResultTable:
    """Evaluate ``checkpoint`` under every setting; returns the table (rows carry raw values).

    Each row holds accuracy, loss, NFE and throughput on ``split``, the accuracy
    difference from the trained-with setting, and the float64 relative error of
    the logits against a fine unsplit solve on ``convergence_samples`` examples
    (language models: windows holding about ``convergence_tokens`` tokens);
    rows of one fixed-step (arch, solver) share its fitted empirical order. Adaptive rows
    run at each tolerance, batch-shared and, with ``per_sample``, per sample; NFE is then
    the mean field evaluations per sample, beside their p90 and max.
    """
    check_split(split)
    loaded = load_model(checkpoint, device=device, ema=ema)
    model_cfg = loaded.config.model
    todo = settings(
        loaded, methods, steps, rtol, atol, archs or [model_cfg.arch], per_sample, controllers
    )
    dataset = load_split(loaded, split, data_root)
    loader = eval_loader(loaded, dataset, batch_size)
    dev = loaded.device
    if loaded.info.kind == "text":  # a window is many examples: keep the fine solve cheap
        convergence_samples = max(1, convergence_tokens // loaded.info.max_len)
    probe = next(iter(make_loader(dataset, convergence_samples, False)))
    probe_inputs = [t.to(dev) for t in probe[:-1]]
    probe_inputs = [t.double() if t.is_floating_point() else t for t in probe_inputs]

    reference = _logits64(loaded.rebuild(REFERENCE, arch="parallel"), probe_inputs)
    coarse = dataclasses.replace(REFERENCE, steps=REFERENCE.steps // 2)
    # rk4 halves its error 16-fold per doubling: the coarse solve's error is ~15x the fine one's.
    reference_error = (
        relative_error(_logits64(loaded.rebuild(coarse, arch="parallel"), probe_inputs), reference)
        / 15
    )
    trained = evaluate(loaded.model, loader, dev)
    span = model_cfg.depth / model_cfg.groups

    rows: list[dict[str, Any]] = []
    for s in todo:
        is_trained = s.arch == model_cfg.arch and s.solver == loaded.trained_solver
        model = loaded.rebuild(s.solver, arch=s.arch)
        result: EvalResult = trained if is_trained else evaluate(model, loader, dev)
        adaptive = SOLVERS[s.solver.method].adaptive
        stats = result.nfe_per_sample or {}
        rows.append(
            {
                "arch": s.arch,
                "solver": _row_name(s.solver),
                "per_sample": s.solver.per_sample,
                "controller": s.solver.controller if s.solver.per_sample else None,
                "steps": None if adaptive else s.solver.steps,
                "h": None if adaptive else span / s.solver.steps,
                "rtol": s.solver.rtol,
                "atol": s.solver.atol,
                "acc": result.acc,
                "delta_acc": result.acc - trained.acc,
                "top5": result.top5,
                "loss": result.loss,
                "bpb": result.bpb if result.lm else None,
                "delta_bpb": result.bpb - trained.bpb if result.lm else None,
                "nfe": result.nfe,
                **{f"nfe_{k}": v for k, v in stats.items()},
                "samples_per_s": result.samples_per_s,
                "error": relative_error(_logits64(model, probe_inputs), reference),
                "order": None,
                "local_order": None,
                "expected_order": None if adaptive else expected_order(s.arch, s.solver.method),
                "trained": is_trained,
            }
        )
    for key in dict.fromkeys((r["arch"], r["solver"]) for r in rows if r["steps"] is not None):
        line = [r for r in rows if (r["arch"], r["solver"]) == key and r["steps"] is not None]
        usable = sorted(
            (r for r in line if r["error"] > REFERENCE_MARGIN * reference_error),
            key=lambda r: r["steps"],
        )
        order = fit_order([r["steps"] for r in usable], [r["error"] for r in usable])
        for r in line:
            r["order"] = order
        for coarse, fine in itertools.pairwise(usable):  # pre-asymptotic at first, then settles
            fine["local_order"] = fit_order(
                [coarse["steps"], fine["steps"]], [coarse["error"], fine["error"]]
            )

    table = ResultTable(f"{loaded.path} on {loaded.config.data.name} {split}", COLUMNS, rows)
    ts = loaded.trained_solver
    if SOLVERS[ts.method].adaptive:
        how = f"rtol {ts.rtol:g}, atol {ts.atol:g}" + (", per sample" if ts.per_sample else "")
    else:
        how = f"{ts.steps} step{'s' if ts.steps != 1 else ''}"
    table.notes += [
        f"trained with {model_cfg.arch} / {ts.method} ({how}): accuracy {trained.acc:.4f}, "
        f"NFE {trained.nfe:g} (italic row; Δ acc is the difference from it)",
        "NFE: full-field evaluations per forward (A or M alone counts one half), all groups; "
        "per sample: the mean over samples of each one's own, beside their p90 and max",
        f"error: relative L2 distance of the logits from an unsplit rk4 solve with "
        f"{REFERENCE.steps} steps per group (its own error ≈ {reference_error:.1e}), float64, "
        f"{len(probe[-1])} {split} samples",
        "fit order: least-squares slope of log(error) against log(step size) over --steps; "
        "local order: the slope from the previous step count (settles as h shrinks); "
        "theory: the order the arch's splitting and the solver predict",
    ]
    if loaded.info.classes:
        table.notes.append(f"classes, in label order: {', '.join(loaded.info.classes)}")
    return table
