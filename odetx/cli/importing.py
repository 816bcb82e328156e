"""``odetx import``: read a pretrained transformer as an ODE run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import console, kv_table
from odetx.importers import import_model


def import_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder written by transformers' save_pretrained or timm's save_for_hf, "
            "or hf-hub:ORG/NAME."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The run directory to write.", rich_help_panel=o.OUTPUT)
    ],
    dtype: Annotated[
        str,
        typer.Option(help="Weights' type in the run: float32, bfloat16 or float16."),
    ] = "float32",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace the files of a run in --out.", rich_help_panel=o.OUTPUT
        ),
    ] = False,
) -> None:
    """Import a pretrained GPT-2, GPT-NeoX/Pythia, Llama-family or timm ViT/DeiT as an
    odetx run (its arch, one group per layer, one Euler step: the source's function)."""
    result = import_model(source, out, force, dtype)
    cfg = result.config.model
    console.print(
        kv_table(
            "odetx import",
            {
                "source": str(source),
                "family": result.family,
                "arch": cfg.arch,
                "depth × dim": f"{cfg.depth} × {cfg.dim}",
                "params": result.params,
                "run": str(result.run),
            },
        )
    )
    console.print(f"evaluate it: odetx eval {result.run} --solver rk4", highlight=False)
