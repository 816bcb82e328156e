"""``odetx compare``: solvers on one checkpoint, finished runs side by side, or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement

from odetx.cli import options as o
from odetx.cli.display import RichReporter, console, err_console, result_table
from odetx.compare.plot import plot as draw
from odetx.compare.plot import require_matplotlib
from odetx.compare.runs import runs_table, table_of_runs
from odetx.compare.solvers import SPLITS, compare_solvers
from odetx.compare.sweep import load_sweep, run_sweep
from odetx.compare.table import ResultTable
from odetx.errors import ConfigError, Interrupted, OdetxError

SWEEP = "Sweep"


def _steps(text: str | None) -> list[int]:
    if text is None:
        return []
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError("--steps", f"expected comma-separated integers, got {text!r}") from None
    if not steps or any(s <= 0 for s in steps):
        raise ConfigError("--steps", f"expected positive integers, got {text!r}")
    return steps


def _check_output(flag: str, path: Path, suffix: str) -> None:
    """Before any work: a writable place, and never a file of another kind (a checkpoint)."""
    if path.suffix.lower() != suffix:
        # An existing file of that suffix is replaced, as a regenerated table should be.
        raise ConfigError(flag, f"{path} must end in {suffix}")
    if path.is_dir():
        raise ConfigError(flag, f"{path} is a folder")
    if not path.parent.is_dir():
        raise ConfigError(flag, f"folder {path.parent} does not exist")


def _is_checkpoint(target: str) -> bool:
    return Path(target).is_file() or target.endswith((".pt", ".pth"))


def _sweep(path: Path, out: Path | None) -> ResultTable:
    cells = load_sweep(path, out)

    def announce(i: int, cell, status: str) -> None:
        if i == 1:  # every cell's directory has been checked by now
            console.print(f"sweep {path}: {len(cells)} cells", highlight=False, soft_wrap=True)
        what = {"shared": "same config as an earlier cell", "skipped": "complete, skipped"}
        console.print(
            f"[{i}/{len(cells)}] {cell.experiment} {cell.run_dir}: {what.get(status, status)}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    try:
        run_sweep(cells, lambda cell: RichReporter(), announce)
    except Interrupted as e:
        again = f"odetx compare --sweep {path}" + (f" --out {out}" if out else "")
        raise Interrupted(f"{e}; finished epochs are kept: run {again} again to resume") from None
    return table_of_runs([c.run_dir for c in cells], [c.experiment for c in cells])


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
        list[o.Method] | None,
        typer.Option("--solver", help="Solver to try (repeatable).", rich_help_panel=o.SOLVER),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated step counts for fixed-step solvers, e.g. 1,2,4,8; "
            "several give the convergence order.",
            rich_help_panel=o.SOLVER,
        ),
    ] = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    arch: Annotated[
        list[o.Arch] | None,
        typer.Option(
            "--arch",
            help="Integrate the same weights with this scheme (repeatable; default: the trained "
            "one).",
            rich_help_panel=o.MODEL,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="Split to evaluate on: train, val or test.", rich_help_panel=o.DATA),
    ] = None,
    data_dir: o.DataDirOpt = None,
    batch_size: o.BatchOpt = None,
    device: o.DeviceOpt = None,
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
    targets = targets or []
    solver_flags = {
        "--solver": solver,
        "--steps": steps,
        "--rtol": rtol,
        "--atol": atol,
        "--arch": arch,
        "--split": split,
        "--data-dir": data_dir,
        "--batch-size": batch_size,
        "--device": device,
    }
    given = [flag for flag, value in solver_flags.items() if value not in (None, [])]
    if sweep is not None and targets:
        raise ConfigError("--sweep", "takes no checkpoint or run directories besides the file")
    if out is not None and sweep is None:
        raise ConfigError("--out", "applies to --sweep only")
    solver_mode = sweep is None and (given or (len(targets) == 1 and _is_checkpoint(targets[0])))
    if given and not solver_mode:
        raise ConfigError(given[0], "applies to comparing solvers on one checkpoint, not --sweep")
    if solver_mode and len(targets) != 1:
        raise ConfigError(
            given[0] if given else "compare",
            f"comparing solvers takes exactly one checkpoint or run directory, got {len(targets)}",
        )
    if sweep is None and not targets:
        raise ConfigError("compare", "give a checkpoint, run directories, or --sweep FILE")
    if split is not None and split not in SPLITS:
        raise ConfigError("--split", f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    for flag, path, suffix in (
        ("--csv", csv, ".csv"),
        ("--json", json_out, ".json"),
        ("--plot", plot, ".png"),
    ):
        if path is not None:
            _check_output(flag, path, suffix)
    if plot is not None:  # before any work, so a missing extra costs nothing
        try:
            require_matplotlib()
        except OdetxError as e:
            # Printed here, not by the app's error handler: its markup would eat "[plot]".
            err_console.print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None

    convergence = False
    if sweep is not None:
        table = _sweep(sweep, out)
    elif solver_mode:
        step_list = _steps(steps)
        table = compare_solvers(
            targets[0],
            [s.value for s in solver or []],
            step_list,
            rtol,
            atol,
            [a.value for a in arch or []],
            split=split or "test",
            batch_size=batch_size,
            device=device or "cpu",
            data_root=str(data_dir) if data_dir else None,
        )
        convergence = len(step_list) > 1
    else:
        table = runs_table(targets)

    rendered = result_table(table)
    show = console
    if not console.is_terminal:  # piped or captured: print values whole, not cut to 80 columns
        wide = console.options.update_width(1000)
        show = Console(width=max(console.width, Measurement.get(console, wide, rendered).maximum))
    show.print(rendered)
    for note in table.notes:
        show.print(f"  {note}", highlight=False, markup=False, soft_wrap=show is not console)
    if csv:
        table.write_csv(csv)
    if json_out:
        table.write_json(json_out)
    if plot:
        draw(table, plot, convergence)
    for label, path in (("csv", csv), ("json", json_out), ("plot", plot)):
        if path:
            console.print(f"{label}: {path}", highlight=False, markup=False)
