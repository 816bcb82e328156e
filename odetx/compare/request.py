"""``odetx compare`` as one library call: pick the mode from what was given, check every
option before any work, build the table and write the files asked for.

Three modes: one checkpoint integrated with other solvers and archs
(:mod:`odetx.compare.solvers`), finished run directories side by side
(:mod:`odetx.compare.runs`), or the cells of a sweep file (:mod:`odetx.compare.sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odetx.compare.plot import plot, require_matplotlib
from odetx.compare.runs import runs_table, table_of_runs
from odetx.compare.solvers import compare_solvers
from odetx.compare.sweep import Cell, load_sweep, run_sweep
from odetx.compare.table import ResultTable
from odetx.data import check_split
from odetx.errors import ConfigError, Interrupted


@dataclass(frozen=True)
class CompareRequest:
    """What ``odetx compare`` was asked; ``None``/empty means not given."""

    targets: list[str] = field(default_factory=list)
    solvers: list[str] = field(default_factory=list)
    steps: str | None = None  # comma-separated, as typed
    rtol: str | float | None = None  # one tolerance, or comma-separated ones to sweep
    atol: str | float | None = None
    archs: list[str] = field(default_factory=list)
    split: str | None = None
    data_dir: Path | None = None
    batch_size: int | None = None
    device: str | None = None
    sweep: Path | None = None
    out: Path | None = None
    csv: Path | None = None
    json: Path | None = None
    plot: Path | None = None
    ema: bool = True  # False: --no-ema, a train.ema checkpoint's trained weights
    per_sample: bool = False  # adaptive embedded pairs also per sample (odetx's integrator)
    controllers: list[str] = field(default_factory=list)  # per-sample step-size controllers

    def solver_flags(self) -> list[str]:
        """The flags given that only comparing solvers on one checkpoint takes."""
        flags = {
            "--solver": self.solvers,
            "--steps": self.steps,
            "--rtol": self.rtol,
            "--atol": self.atol,
            "--arch": self.archs,
            "--split": self.split,
            "--data-dir": self.data_dir,
            "--batch-size": self.batch_size,
            "--device": self.device,
            "--no-ema": None if self.ema else True,
            "--per-sample": True if self.per_sample else None,
            "--controller": self.controllers,
        }
        return [flag for flag, value in flags.items() if value not in (None, [])]

    def outputs(self) -> dict[str, tuple[Path, str]]:
        """The files asked for: label -> (path, the suffix it must carry)."""
        wanted = {
            "csv": (self.csv, ".csv"),
            "json": (self.json, ".json"),
            "plot": (self.plot, ".png"),
        }
        return {label: (p, suffix) for label, (p, suffix) in wanted.items() if p is not None}


@dataclass
class CompareResult:
    table: ResultTable
    written: dict[str, Path]  # label -> file


# (cell number from 1, cell count, cell, status) before each sweep cell; a reporter per
# trained cell.
Announce = Callable[[int, int, Cell, str], None]
MakeReporter = Callable[[Cell], Any]


def parse_steps(text: str | None) -> list[int]:
    """``"1,2,4"`` as ``[1, 2, 4]``."""
    if text is None:
        return []
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError("--steps", f"expected comma-separated integers, got {text!r}") from None
    if not steps or any(s <= 0 for s in steps):
        raise ConfigError("--steps", f"expected positive integers, got {text!r}")
    return steps


def parse_tolerances(text: str | float | None, flag: str) -> list[float] | None:
    """``"1e-1,1e-2"`` as ``[0.1, 0.01]`` (a number stays one value); None if not given."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        values = [float(text)]
    else:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(flag, f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise ConfigError(flag, f"expected positive finite numbers, got {text!r}")
    return values


def _is_checkpoint(target: str) -> bool:
    return Path(target).is_file() or target.endswith((".pt", ".pth"))


def _check_output(flag: str, path: Path, suffix: str) -> None:
    """Before any work: a writable place, and never a file of another kind (a checkpoint)."""
    if path.suffix.lower() != suffix:
        # An existing file of that suffix is replaced, as a regenerated table should be.
        raise ConfigError(flag, f"{path} must end in {suffix}")
    if path.is_dir():
        raise ConfigError(flag, f"{path} is a folder")
    if not path.parent.is_dir():
        raise ConfigError(flag, f"folder {path.parent} does not exist")


def mode_of(req: CompareRequest) -> str:
    """``sweep``, ``solvers`` or ``runs``, refusing options that do not fit the mode."""
    given = req.solver_flags()
    if req.sweep is not None and req.targets:
        raise ConfigError("--sweep", "takes no checkpoint or run directories besides the file")
    if req.out is not None and req.sweep is None:
        raise ConfigError("--out", "applies to --sweep only")
    if req.sweep is not None:
        if given:
            raise ConfigError(
                given[0], "applies to comparing solvers on one checkpoint, not --sweep"
            )
        return "sweep"
    if not req.targets:
        raise ConfigError("compare", "give a checkpoint, run directories, or --sweep FILE")
    if given or (len(req.targets) == 1 and _is_checkpoint(req.targets[0])):
        if len(req.targets) != 1:
            raise ConfigError(
                given[0] if given else "compare",
                "comparing solvers takes exactly one checkpoint or run directory, "
                f"got {len(req.targets)}",
            )
        return "solvers"
    return "runs"


def _sweep(req: CompareRequest, make_reporter: MakeReporter | None, announce: Announce | None):
    cells = load_sweep(req.sweep, req.out)
    try:
        run_sweep(cells, make_reporter, announce)
    except Interrupted as e:
        again = f"odetx compare --sweep {req.sweep}" + (f" --out {req.out}" if req.out else "")
        raise Interrupted(f"{e}; finished epochs are kept: run {again} again to resume") from None
    return table_of_runs([c.run_dir for c in cells], [c.experiment for c in cells])


def compare(
    req: CompareRequest,
    make_reporter: MakeReporter | None = None,
    announce: Announce | None = None,
) -> CompareResult:
    """Run the comparison ``req`` asks for and write its CSV/JSON/plot files.

    Raises:
        ConfigError: options that do not fit the mode or each other (before any work).
        OdetxError: a missing plotting extra (before any work), unreadable runs or data.
    """
    mode = mode_of(req)
    if req.split is not None:
        check_split(req.split)
    steps = parse_steps(req.steps)
    rtols = parse_tolerances(req.rtol, "--rtol")
    atols = parse_tolerances(req.atol, "--atol")
    outputs = req.outputs()
    for label, (path, suffix) in outputs.items():
        _check_output(f"--{label}", path, suffix)
    if req.plot is not None:  # before any work, so a missing extra costs nothing
        require_matplotlib()
    if mode == "sweep":
        table = _sweep(req, make_reporter, announce)
    elif mode == "solvers":
        table = compare_solvers(
            req.targets[0],
            req.solvers,
            steps,
            rtols[0] if rtols and len(rtols) == 1 else rtols,
            atols[0] if atols and len(atols) == 1 else atols,
            req.archs,
            split=req.split or "test",
            batch_size=req.batch_size,
            device=req.device or "cpu",
            data_root=str(req.data_dir) if req.data_dir else None,
            ema=req.ema,
            per_sample=req.per_sample,
            controllers=req.controllers,
        )
    else:
        table = runs_table(req.targets)
    writers = {
        "csv": table.write_csv,
        "json": table.write_json,
        "plot": lambda p: plot(table, p, convergence=mode == "solvers" and len(steps) > 1),
    }
    for label, (path, _) in outputs.items():
        writers[label](path)
    return CompareResult(table, {label: path for label, (path, _) in outputs.items()})
