"""Options shared across commands, declared once; choices come from the registries."""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from odetx.data import DATASETS, SPLITS
from odetx.models import ARCHS, PRESETS
from odetx.registry import Registry
from odetx.runtime.precision import AMP_DTYPES
from odetx.solvers import CONTROLLERS, SOLVERS

MODEL, SOLVER, DATA, OPTIM, OUTPUT = "Model", "Solver", "Data", "Optimisation", "Output"


def _choices(name: str, names: list[str]) -> type[enum.Enum]:
    return enum.Enum(name, {n: n for n in names}, type=str)


class Name(str):
    """A registry name from the command line; ``.value`` is the name, as an Enum choice's."""

    @property
    def value(self) -> str:
        return str(self)


def choice(registry: Registry[Any]) -> Callable[[str], Name]:
    """A parser of the names ``registry`` holds when the command line is read, so a plugin
    loaded by then (``--plugin``) adds its entries to the choices."""

    def parse(text: str) -> Name:
        if text not in registry:
            raise typer.BadParameter(f"{text!r} is not one of {', '.join(map(repr, registry))}.")
        return Name(text)

    return parse


def metavar(registry: Registry[Any]) -> str:
    return f"[{'|'.join(registry)}]"


# Plugins add no precision mode; the registry-backed options below take a Name.
Amp = _choices("Amp", AMP_DTYPES.names())

PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="MODULE|FILE.py",
        help="Load a plugin's variants first (repeatable; see odetx.plugins).",
        rich_help_panel=OUTPUT,
    ),
]

SPLIT_NAMES = ", ".join(SPLITS)

CheckpointArg = Annotated[
    Path, typer.Argument(help="A checkpoint (.pt) or a run directory (uses best.pt).")
]
ArchOpt = Annotated[
    Name | None,
    typer.Option(
        "--arch",
        parser=choice(ARCHS),
        metavar=metavar(ARCHS),
        help="Arch: the splitting scheme of a layer step.",
        rich_help_panel=MODEL,
    ),
]
PresetOpt = Annotated[
    Name | None,
    typer.Option(
        "--model",
        parser=choice(PRESETS),
        metavar=metavar(PRESETS),
        help="Model preset.",
        rich_help_panel=MODEL,
    ),
]
DepthOpt = Annotated[int | None, typer.Option(help="Equivalent layers D.", rich_help_panel=MODEL)]
GroupsOpt = Annotated[
    int | None,
    typer.Option(
        help="Weight-sharing groups G (divides depth; 1 = fully shared).", rich_help_panel=MODEL
    ),
]
SolverOpt = Annotated[
    Name | None,
    typer.Option(
        "--solver",
        parser=choice(SOLVERS),
        metavar=metavar(SOLVERS),
        help="ODE solver.",
        rich_help_panel=SOLVER,
    ),
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
PerSampleOpt = Annotated[
    bool | None,
    typer.Option(
        "--per-sample/--batch-shared",
        help="Adaptive embedded pairs (dopri5, bosh3, adaptive_heun, tsit5): each sample takes "
        "its own steps (odetx's integrator) rather than the batch sharing torchdiffeq's.",
        rich_help_panel=SOLVER,
    ),
]
ControllerOpt = Annotated[
    Name | None,
    typer.Option(
        "--controller",
        parser=choice(CONTROLLERS),
        metavar=metavar(CONTROLLERS),
        help="Step-size controller of --per-sample steps: integral (torchdiffeq's rule, the "
        "default) or pi (Gustafsson's).",
        rich_help_panel=SOLVER,
    ),
]
DatasetOpt = Annotated[
    Name | None,
    typer.Option(
        "--dataset",
        parser=choice(DATASETS),
        metavar=metavar(DATASETS),
        help="Dataset.",
        rich_help_panel=DATA,
    ),
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


def solver_overrides(solver, steps, rtol, atol, per_sample=None, controller=None) -> dict:
    """The solver flags given on the command line, as config fields."""
    return {
        "method": solver.value if solver is not None else None,
        "steps": steps,
        "rtol": rtol,
        "atol": atol,
        "per_sample": per_sample,
        "controller": controller.value if controller is not None else None,
    }
