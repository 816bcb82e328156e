"""``odetx train``: build a config from file and flags, then run the trainer."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import RichReporter, console
from odetx.config import parse_set
from odetx.runtime import distributed
from odetx.training import Trainer, prepare_run

PERF = "Performance"


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` minus ``--nproc N`` / ``--nproc=N``: what each launched process runs."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def train(
    config: Annotated[
        Path | None,
        typer.Option("-c", "--config", help="YAML config file.", rich_help_panel=o.OUTPUT),
    ] = None,
    arch: o.ArchOpt = None,
    model: o.PresetOpt = None,
    depth: o.DepthOpt = None,
    groups: o.GroupsOpt = None,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    adjoint: o.AdjointOpt = None,
    per_sample: o.PerSampleOpt = None,
    controller: o.ControllerOpt = None,
    dataset: o.DatasetOpt = None,
    data_dir: o.DataDirOpt = None,
    download: Annotated[
        bool | None,
        typer.Option(
            "--download",
            help="Fetch missing dataset files into --data-dir.",
            rich_help_panel=o.DATA,
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.", rich_help_panel=o.OPTIM)] = None,
    batch_size: o.BatchOpt = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate.", rich_help_panel=o.OPTIM)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.", rich_help_panel=o.OPTIM)] = None,
    device: o.DeviceOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory (default runs/<name>-<time>).", rich_help_panel=o.OUTPUT),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Start over in an --out holding files of another run (they are removed).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a run: its directory or a checkpoint.", rich_help_panel=o.OUTPUT
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from",
            help="Start from a checkpoint's weights (fine-tune or transfer; a new head if the "
            "class count differs).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
    amp: Annotated[
        o.Amp | None,
        typer.Option(
            help="Mixed precision (autocast; fp16 adds a grad scaler).", rich_help_panel=PERF
        ),
    ] = None,
    compile_: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile", help="torch.compile the model.", rich_help_panel=PERF
        ),
    ] = None,
    threads: Annotated[
        str | None,
        typer.Option(
            metavar="N|auto",
            help="torch threads per process. Default: the usable cores less one (1 to 8) "
            "shared by the processes, recorded so --resume reuses it; auto: the cores other "
            "processes leave free (not reproducible across loads).",
            rich_help_panel=PERF,
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes on this machine (DistributedDataParallel via torchrun).",
            rich_help_panel=PERF,
        ),
    ] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any config field: --set model.dim=96 (repeatable).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
) -> None:
    """Train a model. With no arguments: vit-micro, arch parallel, Euler, embedded digits."""
    flags = {
        "model.arch": arch.value if arch else None,
        "model.preset": model.value if model else None,
        "model.depth": depth,
        "model.groups": groups,
        "solver.method": solver.value if solver else None,
        "solver.steps": steps,
        "solver.rtol": rtol,
        "solver.atol": atol,
        "solver.adjoint": adjoint,
        "solver.per_sample": per_sample,
        "solver.controller": controller.value if controller else None,
        "data.name": dataset.value if dataset else None,
        "data.root": str(data_dir) if data_dir else None,
        "data.download": download,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.seed": seed,
        "train.device": device,
        "train.out": str(out) if out else None,
        "train.amp": amp.value if amp else None,
        "train.compile": compile_,
        "train.threads": threads,
        "train.init_from": str(init_from) if init_from else None,
    }
    overrides = {k: v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_ or []))
    plan = prepare_run(config, overrides, resume)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        # Checked above in this process, so a bad flag fails once, not once per rank.
        distributed.launch(nproc, _without_nproc(sys.argv[1:]))
        return
    try:
        trainer = Trainer(plan.config, plan.run_dir, plan.checkpoint, RichReporter(), force=force)
        trainer.fit()
        distributed.shutdown(together=True)
    finally:
        distributed.shutdown()
    if trainer.dist.is_main:
        run_dir = trainer.run.path
        console.print(
            f"run saved in [bold]{run_dir}[/] "
            "(config.yaml, metrics.csv, last.pt, best.pt, summary.json)"
        )
        console.print(f"evaluate it: odetx eval {run_dir}/best.pt", highlight=False)
    if trainer.dist.enabled:
        distributed.exit_finished()
