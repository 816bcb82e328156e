"""``odetx eval``: a checkpoint on a split, optionally integrated with another solver."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import console, kv_table, solver_label
from odetx.data import DATASETS
from odetx.inference import load_model
from odetx.training.evaluate import evaluate
from odetx.training.loop import make_loader


def eval_cmd(
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint (.pt) or a run directory (uses best.pt).")
    ],
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    split: Annotated[
        str, typer.Option(help="train, val or test.", rich_help_panel=o.DATA)
    ] = "test",
    data_dir: o.DataDirOpt = None,
    batch_size: o.BatchOpt = None,
    device: o.DeviceOpt = "cpu",
    as_json: o.JsonOpt = False,
) -> None:
    """Evaluate a trained model: loss, accuracy, NFE and samples/s."""
    if split not in ("train", "val", "test"):
        raise typer.BadParameter(
            f"unknown split {split!r}; choose train, val or test", param_hint="--split"
        )
    loaded = load_model(checkpoint, o.solver_overrides(solver, steps, rtol, atol), device or "cpu")
    cfg = loaded.config
    data_cfg = dataclasses.replace(cfg.data, root=str(data_dir)) if data_dir else cfg.data
    splits = DATASETS[data_cfg.name].load(data_cfg)
    loader = make_loader(splits[split], batch_size or 2 * cfg.train.batch_size, False, 0)
    device_ = next(loaded.model.parameters()).device
    result = evaluate(loaded.model, loader, device_)
    record = {
        "checkpoint": str(loaded.path),
        "dataset": data_cfg.name,
        "split": split,
        "scheme": cfg.model.arch,
        "solver": dataclasses.asdict(loaded.solver),
        "trained_solver": dataclasses.asdict(loaded.trained_solver),
        "solver_overridden": loaded.overridden,
        **result.to_dict(),
    }
    if as_json:
        print(json.dumps(record))
        return
    if loaded.overridden:
        console.print(
            f"integrating with [bold]{solver_label(loaded.solver)}[/]; "
            f"the model was trained with {solver_label(loaded.trained_solver)}"
        )
    console.print(
        kv_table(
            f"odetx eval — {data_cfg.name} {split}",
            {
                "checkpoint": str(loaded.path),
                "scheme": cfg.model.arch,
                "solver": solver_label(loaded.solver),
                "accuracy": f"{result.acc:.4f}",
                "loss": f"{result.loss:.4f}",
                "NFE per forward": result.nfe,
                "samples/s": f"{result.samples_per_s:.0f}",
                "samples": result.samples,
            },
        )
    )
