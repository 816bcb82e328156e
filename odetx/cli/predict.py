"""``odetx predict``: top-k classes for image files or text lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odetx.cli import options as o
from odetx.cli.display import console, err_console
from odetx.evaluation.predict import predict


def predict_cmd(
    model: Annotated[
        Path,
        typer.Argument(help="A checkpoint, a run directory, or an exported .ts/.pt2/.onnx file."),
    ],
    inputs: Annotated[
        list[str],
        typer.Argument(help="Image files, or text files of one example a line ('-': stdin)."),
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes shown per input.")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON record per input.", rich_help_panel=o.OUTPUT)
    ] = False,
    no_ema: o.NoEmaOpt = False,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    per_sample: o.PerSampleOpt = None,
    controller: o.ControllerOpt = None,
) -> None:
    """Predict the most likely classes; an unreadable input is one line on stderr, the others
    are still predicted, and the exit code is 1 if any failed. With --per-sample each
    input's field evaluations (NFE) are its own: a difficulty score."""
    overrides = o.solver_overrides(solver, steps, rtol, atol, per_sample, controller)
    done, failed = predict(model, inputs, top_k, not no_ema, sys.stdin.read, overrides)
    for f in failed:
        err_console.print(f"error: {f.input}: {f.reason}", highlight=False, soft_wrap=True)
    if as_json:
        for p in done:
            print(json.dumps(p.to_dict()))
    elif done:
        nfe = any(p.nfe is not None for p in done)
        table = Table("input", "class", "probability", *(["NFE"] if nfe else []))
        for p in done:
            for rank, (c, prob) in enumerate(p.top):
                first = rank == 0
                cells = [p.input if first else "", str(c), f"{prob:.4f}"]
                if nfe:
                    cells.append(f"{p.nfe:g}" if first and p.nfe is not None else "")
                table.add_row(*cells)
        console.print(table)
    if failed:
        raise typer.Exit(1)
