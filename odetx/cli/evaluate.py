"""``odetx eval``: a checkpoint on a split, optionally integrated with another solver."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import console, kv_table, nfe_line, print_solver_override, solver_label
from odetx.evaluation import evaluate_checkpoint
from odetx.models import ARCHS


def eval_cmd(
    checkpoint: o.CheckpointArg,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    per_sample: o.PerSampleOpt = None,
    controller: o.ControllerOpt = None,
    split: Annotated[str, typer.Option(help=o.SPLIT_NAMES, rich_help_panel=o.DATA)] = "test",
    data_dir: o.DataDirOpt = None,
    batch_size: o.BatchOpt = None,
    device: o.DeviceOpt = "cpu",
    as_json: o.JsonOpt = False,
    no_ema: o.NoEmaOpt = False,
    arch: Annotated[
        o.Name | None,
        typer.Option(
            "--arch",
            parser=o.choice(ARCHS),
            metavar=o.metavar(ARCHS),
            help="Integrate the same weights with this arch (default: the trained one).",
            rich_help_panel=o.MODEL,
        ),
    ] = None,
) -> None:
    """Evaluate a trained model: loss, accuracy, NFE and samples/s."""
    run = evaluate_checkpoint(
        checkpoint,
        split,
        o.solver_overrides(solver, steps, rtol, atol, per_sample, controller),
        str(data_dir) if data_dir else None,
        batch_size,
        device or "cpu",
        ema=not no_ema,
        arch=arch.value if arch else None,
    )
    if as_json:
        print(json.dumps(run.to_dict()))
        return
    loaded, result = run.loaded, run.result
    print_solver_override(loaded.solver, loaded.trained_solver)
    if loaded.config.model.arch != loaded.trained_arch:
        console.print(
            f"integrating with arch [bold]{loaded.config.model.arch}[/]; "
            f"the model was trained with {loaded.trained_arch}"
        )
    if result.lm:
        unit = loaded.info.unit or "token"
        scores = {
            "bits per byte": f"{result.bpb:.4f}",
            f"perplexity (per {unit})": f"{result.ppl:.3f}",
            f"loss (nats per {unit})": f"{result.loss:.4f}",
            "next-token accuracy": f"{result.acc:.4f}",
            "NFE per forward": result.nfe,
            "tokens/s": f"{result.samples_per_s:.0f}",
            "tokens": result.samples,
        }
    else:
        scores = {
            "accuracy": f"{result.acc:.4f}",
            **({"top-5 accuracy": f"{result.top5:.4f}"} if result.top5 is not None else {}),
            "loss": f"{result.loss:.4f}",
            "NFE per forward": result.nfe,
            "samples/s": f"{result.samples_per_s:.0f}",
            "samples": result.samples,
            **({"classes": ", ".join(loaded.info.classes)} if loaded.info.classes else {}),
        }
    if result.nfe_per_sample:
        scores["NFE per sample"] = nfe_line(result.nfe_per_sample)
    console.print(
        kv_table(
            f"odetx eval — {loaded.config.data.name} {split}",
            {
                "checkpoint": str(loaded.path),
                "arch": loaded.config.model.arch,
                "solver": solver_label(loaded.solver),
                "weights": "weight EMA" if loaded.weights == "ema" else "trained",
                **scores,
            },
        )
    )
