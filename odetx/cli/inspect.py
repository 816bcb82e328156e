"""``odetx inspect``: the ODE reading of a trained model along depth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from odetx.analysis import inspect_checkpoint
from odetx.cli import options as o
from odetx.cli.display import console, fmt, print_solver_override

COLUMNS = {
    "group": "g", "step": "step", "t": "t", "which": "sub", "state_norm": "‖x‖",
    "attn_norm": "‖A‖", "mlp_norm": "‖M‖", "field_norm": "‖A+M‖", "cosine": "cos(A,M)",
    "kinetic": "‖A+M‖²", "jacobian_norm": "σ_max step", "local_error": "local err",
}  # fmt: skip


def inspect_cmd(
    checkpoint: o.CheckpointArg,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    per_sample: o.PerSampleOpt = None,
    controller: o.ControllerOpt = None,
    split: Annotated[str, typer.Option(help=o.SPLIT_NAMES, rich_help_panel=o.DATA)] = "test",
    n: Annotated[
        int, typer.Option("--n", help="Examples (the split's first).", rich_help_panel=o.DATA)
    ] = 16,
    data_dir: o.DataDirOpt = None,
    device: o.DeviceOpt = "cpu",
    as_json: o.JsonOpt = False,
    csv: Annotated[
        Path | None, typer.Option(help="Write the points as CSV.", rich_help_panel=o.OUTPUT)
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Draw curves along depth and token trajectories (PNG).", rich_help_panel=o.OUTPUT
        ),
    ] = None,
) -> None:
    """The ODE reading of a trained model along depth t, sampled at every solver step and
    sub-step of every group: mean token-state norm, per-token norms of the fields A, M and
    A + M, cos(A, M), kinetic energy ‖A + M‖², σ_max of each step map's Jacobian (power
    iteration), the finite-time Lyapunov exponent log σ_max(flow over a span) / span per
    group and overall, and each step's local error relative to a fine rk4 solve (32 steps)
    of A + M over the same interval."""
    result = inspect_checkpoint(
        checkpoint,
        split,
        n,
        o.solver_overrides(solver, steps, rtol, atol, per_sample, controller),
        str(data_dir) if data_dir else None,
        device or "cpu",
        csv,
        plot,
    )
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    m = result.meta
    print_solver_override(*_solvers(m))
    table = Table(
        title=f"odetx inspect — {m['model']} {m['arch']} D={m['depth']} G={m['groups']}, "
        f"{m['solver']} ({m['steps']} steps), {m['dataset']} {m['split']} × {m['examples']}",
        title_justify="left",
    )
    for c, title in COLUMNS.items():
        table.add_column(title, justify="left" if c == "which" else "right")
    for row in result.points:
        table.add_row(*(fmt(row[c]) for c in COLUMNS))
    # Piped or captured output gets every column whole; a terminal keeps its width.
    show = console if console.is_terminal else Console(width=max(console.width, 160))
    show.print(table)
    groups = Table(title="per group and overall", title_justify="left")
    for c in ("group", "t0", "t1", "ftle", "mean_field_norm", "mean_kinetic", "mean_local_error"):
        groups.add_column(c, justify="right")
    for g in [*result.groups, {"group": "all", **result.overall}]:
        groups.add_row(*(fmt(g[c]) for c in ("group", "t0", "t1", "ftle", "mean_field_norm",
                                             "mean_kinetic", "mean_local_error")))  # fmt: skip
    show.print(groups)
    if result.hardest:
        hard = Table(
            title="inputs that took the most field evaluations (per sample)", title_justify="left"
        )
        for c in ("index", "nfe", "label", "predicted", "correct"):
            hard.add_column(c, justify="right")
        for h in result.hardest:
            verdict = {True: "yes", False: "no", None: "—"}[h["correct"]]
            hard.add_row(*(fmt(h[c]) for c in ("index", "nfe", "label", "predicted")), verdict)
        show.print(hard)


def _solvers(m):
    from odetx.config import SolverConfig

    now = SolverConfig(m["solver"], m["steps"], m["rtol"], m["atol"], per_sample=m["per_sample"])
    trained = SolverConfig(m["trained_solver"], m["trained_steps"], m["rtol"], m["atol"])
    return (now, trained) if m["solver_overridden"] else (now, now)
