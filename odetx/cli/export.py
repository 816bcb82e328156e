"""``odetx export``: a checkpoint as a TorchScript or ``torch.export`` artefact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import console, kv_table, print_solver_override, solver_label
from odetx.export import FORMATS, export_checkpoint


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def export_cmd(
    checkpoint: o.CheckpointArg,
    out: Annotated[
        Path | None,
        typer.Option(
            help="File to write (default: the checkpoint's path with the format's suffix).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"{' or '.join(FORMATS)} (default: from --out's suffix, else torchscript).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --out.", rich_help_panel=o.OUTPUT)
    ] = False,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    per_sample: o.PerSampleOpt = None,
    controller: o.ControllerOpt = None,
    as_json: o.JsonOpt = False,
    no_ema: o.NoEmaOpt = False,
) -> None:
    """Export a trained model for plain-torch inference, checked against the eager model.

    The solver (fixed-step, or adaptive per sample with --per-sample, TorchScript only) is
    baked into the artefact; TorchScript keeps its step count, or its tolerances, runtime
    attributes. The file loads without odetx, for any batch size.
    """
    report = export_checkpoint(
        checkpoint,
        out,
        fmt,
        o.solver_overrides(solver, steps, rtol, atol, per_sample, controller),
        force,
        ema=not no_ema,
    )
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    print_solver_override(report.solver, report.trained_solver)
    parity, latency = report.parity, report.latency
    batches = ", ".join(str(b) for b in parity.diffs)
    console.print(
        kv_table(
            f"odetx export — {report.format.title}",
            {
                "artefact": f"{report.path} ({_size(report.size_bytes)})",
                "checkpoint": str(report.checkpoint),
                "arch": report.arch,
                "solver": solver_label(report.solver),
                "steps": report.steps,
                "inputs": "\n".join(report.signature),
                "load": f"{report.load_hint}\n{report.call}",
                "parity": (
                    f"max |eager - exported| = {parity.worst:.2g} "
                    f"(batch sizes {batches}; limit {parity.tolerance:g})"
                ),
                "latency": (
                    f"{latency.ratio:.2f}x eager: {1e3 * latency.exported_s:.2f} ms vs "
                    f"{1e3 * latency.eager_s:.2f} ms (median of {latency.repeats}, "
                    f"batch {latency.batch})"
                ),
            },
        )
    )
    if report.format.note:
        console.print(f"note: {report.format.note}", highlight=False, soft_wrap=True)
