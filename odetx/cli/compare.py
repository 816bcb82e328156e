"""``odetx compare``: solvers on one checkpoint, finished runs side by side, or a sweep."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import RichReporter, console, print_result_table
from odetx.compare.request import CompareRequest, compare
from odetx.compare.sweep import Cell
from odetx.models import ARCHS
from odetx.solvers import CONTROLLERS, SOLVERS

SWEEP = "Sweep"


def _announce(sweep: Path, i: int, total: int, cell: Cell, status: str) -> None:
    """One line per sweep cell, before any work on it."""
    if i == 1:  # every cell's directory has been checked by now
        console.print(f"sweep {sweep}: {total} cells", highlight=False, soft_wrap=True)
    what = {"shared": "same config as an earlier cell", "skipped": "complete, skipped"}
    console.print(
        f"[{i}/{total}] {cell.experiment} {cell.run_dir}: {what.get(status, status)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def compare_cmd(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="One checkpoint (or run directory with solver options): compare solvers. "
            "Run directories or globs: tabulate finished runs.",
            show_default=False,
        ),
    ] = None,
    solver: Annotated[
        list[o.Name] | None,
        typer.Option(
            "--solver",
            parser=o.choice(SOLVERS),
            metavar=o.metavar(SOLVERS),
            help="Solver to try (repeatable).",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated step counts for fixed-step solvers, e.g. 1,2,4,8; "
            "several give the convergence order.",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    rtol: Annotated[
        str | None,
        typer.Option(
            help="Relative tolerance of adaptive solvers; comma-separated values sweep them "
            "(e.g. 1e-1,1e-2,1e-3; then atol = rtol unless --atol).",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    atol: Annotated[
        str | None,
        typer.Option(
            help="Absolute tolerance (adaptive): one value, or one per --rtol.",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    per_sample: Annotated[
        bool,
        typer.Option(
            "--per-sample",
            help="Also run each adaptive embedded pair per sample (odetx's integrator), beside "
            "its batch-shared torchdiffeq solve.",
            rich_help_panel=o.SOLVER,
        ),
    ] = False,
    controller: Annotated[
        list[o.Name] | None,
        typer.Option(
            "--controller",
            parser=o.choice(CONTROLLERS),
            metavar=o.metavar(CONTROLLERS),
            help="Step-size controller of the per-sample solves (repeatable: one row each; "
            "default: the trained one).",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    arch: Annotated[
        list[o.Name] | None,
        typer.Option(
            "--arch",
            parser=o.choice(ARCHS),
            metavar=o.metavar(ARCHS),
            help="Integrate the same weights with this arch (repeatable; default: the trained "
            "one).",
            rich_help_panel=o.MODEL,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help=f"Split to evaluate on: {o.SPLIT_NAMES}.", rich_help_panel=o.DATA),
    ] = None,
    data_dir: o.DataDirOpt = None,
    batch_size: o.BatchOpt = None,
    device: o.DeviceOpt = None,
    no_ema: o.NoEmaOpt = False,
    sweep: Annotated[
        Path | None,
        typer.Option(
            help="Train the cells of a sweep file (skipping complete ones), then tabulate.",
            rich_help_panel=SWEEP,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the sweep's run directories (default: the file's out).",
            rich_help_panel=SWEEP,
        ),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the table as CSV.", rich_help_panel=o.OUTPUT)
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the table as JSON.", rich_help_panel=o.OUTPUT),
    ] = None,
    # Help text is rich markup: "\\[" keeps "[plot]" from being read as a style tag.
    plot: Annotated[
        Path | None,
        typer.Option(
            help='Draw accuracy against NFE (and convergence) to a PNG; needs "odetx\\[plot]".',
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
) -> None:
    """Compare solvers on one trained model, finished runs, or the cells of a sweep."""
    request = CompareRequest(
        targets=targets or [],
        solvers=[s.value for s in solver or []],
        steps=steps,
        rtol=rtol,
        atol=atol,
        per_sample=per_sample,
        controllers=[c.value for c in controller or []],
        archs=[a.value for a in arch or []],
        split=split,
        data_dir=data_dir,
        batch_size=batch_size,
        device=device,
        sweep=sweep,
        out=out,
        csv=csv,
        json=json_out,
        plot=plot,
        ema=not no_ema,
    )
    result = compare(request, lambda cell: RichReporter(), functools.partial(_announce, sweep))
    print_result_table(result.table)
    for label, path in result.written.items():
        console.print(f"{label}: {path}", highlight=False, markup=False)
