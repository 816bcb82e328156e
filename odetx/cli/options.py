"""Options shared across commands, declared once; choices come from the registries."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from odetx.data import DATASETS, SPLITS
from odetx.models import ARCHS, PRESETS
from odetx.runtime.precision import AMP_DTYPES
from odetx.solvers import SOLVERS

MODEL, SOLVER, DATA, OPTIM, OUTPUT = "Model", "Solver", "Data", "Optimisation", "Output"


def _choices(name: str, names: list[str]) -> type[enum.Enum]:
    return enum.Enum(name, {n: n for n in names}, type=str)


Arch = _choices("Arch", ARCHS.names())
Method = _choices("Method", SOLVERS.names())
Amp = _choices("Amp", AMP_DTYPES.names())
Dataset = _choices("Dataset", DATASETS.names())
PresetName = _choices("PresetName", PRESETS.names())

SPLIT_NAMES = ", ".join(SPLITS)

CheckpointArg = Annotated[
    Path, typer.Argument(help="A checkpoint (.pt) or a run directory (uses best.pt).")
]
ArchOpt = Annotated[
    Arch | None,
    typer.Option(
        "--arch", help="Arch: the splitting scheme of a layer step.", rich_help_panel=MODEL
    ),
]
PresetOpt = Annotated[
    PresetName | None, typer.Option("--model", help="Model preset.", rich_help_panel=MODEL)
]
DepthOpt = Annotated[int | None, typer.Option(help="Equivalent layers D.", rich_help_panel=MODEL)]
GroupsOpt = Annotated[
    int | None,
    typer.Option(
        help="Weight-sharing groups G (divides depth; 1 = fully shared).", rich_help_panel=MODEL
    ),
]
SolverOpt = Annotated[
    Method | None, typer.Option("--solver", help="ODE solver.", rich_help_panel=SOLVER)
]
StepsOpt = Annotated[
    int | None, typer.Option(help="Solver steps per group (fixed-step).", rich_help_panel=SOLVER)
]
RtolOpt = Annotated[
    float | None, typer.Option(help="Relative tolerance (adaptive).", rich_help_panel=SOLVER)
]
AtolOpt = Annotated[
    float | None, typer.Option(help="Absolute tolerance (adaptive).", rich_help_panel=SOLVER)
]
AdjointOpt = Annotated[
    bool | None,
    typer.Option(
        "--adjoint/--no-adjoint",
        help="Backpropagate with the adjoint method.",
        rich_help_panel=SOLVER,
    ),
]
DatasetOpt = Annotated[
    Dataset | None, typer.Option("--dataset", help="Dataset.", rich_help_panel=DATA)
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder holding the dataset files.", rich_help_panel=DATA),
]
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", help="Batch size.", min=1, rich_help_panel=OPTIM),
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:N or auto.", rich_help_panel=OPTIM)
]
NoEmaOpt = Annotated[
    bool,
    typer.Option(
        "--no-ema",
        help="Use the trained weights, not the weight average a train.ema run also saved.",
        rich_help_panel=MODEL,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one machine-readable JSON result.", rich_help_panel=OUTPUT),
]


def solver_overrides(solver, steps, rtol, atol) -> dict:
    """The solver flags given on the command line, as config fields."""
    return {
        "method": solver.value if solver is not None else None,
        "steps": steps,
        "rtol": rtol,
        "atol": atol,
    }
