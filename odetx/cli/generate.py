"""``odetx generate``: stream a language model's continuation of a prompt."""

from __future__ import annotations

from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import err_console, print_solver_override
from odetx.evaluation.generate import Sampling, start_generation

SAMPLING = "Sampling"


def generate_cmd(
    checkpoint: o.CheckpointArg,
    prompt: Annotated[str, typer.Option(help="Text to continue.", rich_help_panel=SAMPLING)],
    max_new_tokens: Annotated[
        int,
        typer.Option(
            help="Tokens to draw (the run's tokens: bytes, characters or BPE).",
            rich_help_panel=SAMPLING,
        ),
    ] = 200,
    temperature: Annotated[
        float,
        typer.Option(
            help="Softmax temperature; 0 takes the most likely token.", rich_help_panel=SAMPLING
        ),
    ] = 1.0,
    top_k: Annotated[
        int,
        typer.Option(
            help="Draw among the k most likely tokens (0: all).", rich_help_panel=SAMPLING
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Sampling seed.", rich_help_panel=SAMPLING)] = 0,
    solver: o.SolverOpt = None,
    steps: o.StepsOpt = None,
    rtol: o.RtolOpt = None,
    atol: o.AtolOpt = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Keep keys and values between tokens (fixed-step solvers).",
            rich_help_panel=o.SOLVER,
        ),
    ] = True,
    device: o.DeviceOpt = "cpu",
) -> None:
    """Continue a prompt with a trained language model, printing the text as it is drawn."""
    run = start_generation(
        checkpoint,
        prompt,
        Sampling(max_new_tokens, temperature, top_k, seed),
        o.solver_overrides(solver, steps, rtol, atol),
        device or "cpu",
        cache,
    )
    loaded = run.loaded
    print_solver_override(loaded.solver, loaded.trained_solver, err_console)
    print(run.prompt_text, end="", flush=True)
    for piece in run.stream():
        print(piece, end="", flush=True)
    print()
    err_console.print(
        f"{run.tokens} tokens in {run.seconds:.2f}s: {run.tokens_per_s:.1f} tokens/s "
        f"({'with' if run.cached else 'without'} the key/value cache)",
        highlight=False,
    )
