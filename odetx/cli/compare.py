"""``odetx compare``: solvers on one checkpoint, finished runs side by side, or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import RichReporter, console, result_table
from odetx.compare.runs import runs_table
from odetx.compare.solvers import compare_solvers
from odetx.compare.sweep import load_sweep, run_sweep
from odetx.errors import ConfigError


def _steps(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError("--steps", f"expected comma-separated integers, got {text!r}") from None
    if any(s <= 0 for s in steps):
        raise ConfigError("--steps", f"steps must be positive, got {text!r}")
    return steps


def compare_cmd(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="One checkpoint (solver comparison) or run directories / globs (run table)."
        ),
    ] = None,
    solver: Annotated[
        list[o.Method] | None,
        typer.Option("--solver", help="Solver to try (repeatable).", rich_help_panel=o.SOLVER),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(help="Comma-separated step counts, e.g. 1,2,4,8.", rich_help_panel=o.SOLVER),
    ] = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    arch: Annotated[
        list[o.Arch] | None,
        typer.Option(
            "--arch", help="Also integrate with this scheme (repeatable).", rich_help_panel=o.MODEL
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            help="Train the cells of a sweep file, then tabulate.", rich_help_panel=o.OUTPUT
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="train, val or test.", rich_help_panel=o.DATA)
    ] = "test",
    data_dir: o.DataDirOpt = None,
    batch_size: o.BatchOpt = None,
    device: o.DeviceOpt = "cpu",
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the table as CSV.", rich_help_panel=o.OUTPUT)
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the table as JSON.", rich_help_panel=o.OUTPUT),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Draw accuracy vs NFE (and convergence) to a PNG.", rich_help_panel=o.OUTPUT
        ),
    ] = None,
) -> None:
    """Compare solvers on one trained model, finished runs, or the cells of a sweep."""
    targets = targets or []
    solver_mode = bool(solver or steps or arch or rtol or atol)
    if plot is not None:
        from odetx.compare.plot import _pyplot

        _pyplot()  # fail before any work when matplotlib is missing
    for out in (csv, json_out, plot):
        if out is not None and not out.parent.exists():
            raise ConfigError("output", f"folder {out.parent} does not exist")
    if sweep is not None:
        if targets or solver_mode:
            raise typer.BadParameter("--sweep takes no run directories or solver options")
        cells = load_sweep(sweep)
        console.print(f"sweep {sweep}: {len(cells)} cells")
        for i, (cell, status) in enumerate(run_sweep(cells, lambda c: RichReporter()), 1):
            console.print(
                f"[{i}/{len(cells)}] {cell.experiment} {cell.run_dir}: {status}", highlight=False
            )
        table = runs_table([str(c.run_dir) for c in cells])
        convergence = False
    elif solver_mode or (len(targets) == 1 and Path(targets[0]).is_file()):
        if len(targets) != 1:
            raise typer.BadParameter(
                "a solver comparison takes exactly one checkpoint or run directory"
            )
        table = compare_solvers(
            targets[0],
            [s.value for s in solver or []],
            _steps(steps),
            rtol,
            atol,
            [a.value for a in arch or []],
            split=split,
            batch_size=batch_size,
            device=device or "cpu",
            data_root=str(data_dir) if data_dir else None,
        )
        convergence = len(_steps(steps)) > 1
    else:
        if not targets:
            raise typer.BadParameter("give a checkpoint, run directories, or --sweep FILE")
        table = runs_table(targets)
        convergence = False
    console.print(result_table(table))
    for note in table.notes:
        console.print(f"  {note}", highlight=False)
    if csv:
        table.write_csv(csv)
    if json_out:
        table.write_json(json_out)
    if plot:
        from odetx.compare.plot import plot as draw

        draw(table, plot, convergence)
    for label, path in (("csv", csv), ("json", json_out), ("plot", plot)):
        if path:
            console.print(f"{label}: {path}", highlight=False)
