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
) -> None:
    """Predict the most likely classes; an unreadable input is one line on stderr, the others
    are still predicted, and the exit code is 1 if any failed."""
    done, failed = predict(model, inputs, top_k, ema=not no_ema, stdin=sys.stdin.read)
    for f in failed:
        err_console.print(f"error: {f.input}: {f.reason}", highlight=False, soft_wrap=True)
    if as_json:
        for p in done:
            print(json.dumps(p.to_dict()))
    elif done:
        table = Table("input", "class", "probability")
        for p in done:
            for rank, (c, prob) in enumerate(p.top):
                table.add_row(p.input if rank == 0 else "", str(c), f"{prob:.4f}")
        console.print(table)
    if failed:
        raise typer.Exit(1)
