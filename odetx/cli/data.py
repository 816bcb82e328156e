"""``odetx data listops``: write a generated ListOps set in LRA's TSV layout.
``odetx data text``: tokenise a corpus once into memory-mapped token files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odetx.cli import options as o
from odetx.cli.display import console, transfer_progress
from odetx.config import load_config
from odetx.data import listops
from odetx.data.prepare import prepare_text
from odetx.errors import ConfigError

GEN = "Generator"


def data_listops(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder for basic_{train,val,test}.tsv.", rich_help_panel=o.OUTPUT
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "-c",
            "--config",
            help="Take the data section of this YAML config.",
            rich_help_panel=o.OUTPUT,
        ),
    ] = None,
    train_size: Annotated[
        int | None, typer.Option(help="Training examples.", rich_help_panel=GEN)
    ] = None,
    val_size: Annotated[
        int | None, typer.Option(help="Validation examples.", rich_help_panel=GEN)
    ] = None,
    test_size: Annotated[
        int | None, typer.Option(help="Test examples.", rich_help_panel=GEN)
    ] = None,
    seq_len_min: Annotated[
        int | None,
        typer.Option(help="Fewest tokens (parentheses not counted).", rich_help_panel=GEN),
    ] = None,
    seq_len_max: Annotated[
        int | None, typer.Option(help="Most tokens.", rich_help_panel=GEN)
    ] = None,
    max_depth: Annotated[
        int | None,
        typer.Option(help="Tree depth limit, the root counting as 1.", rich_help_panel=GEN),
    ] = None,
    max_args: Annotated[
        int | None, typer.Option(help="Most arguments per operator.", rich_help_panel=GEN)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Generator seed.", rich_help_panel=GEN)] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing files.", rich_help_panel=o.OUTPUT)
    ] = False,
) -> None:
    """Generate ListOps offline and write it as LRA does, so it can stand in for the
    downloaded set (train on it with --dataset listops --data-dir OUT)."""
    flags = {
        "train_size": train_size,
        "val_size": val_size,
        "test_size": test_size,
        "seq_len_min": seq_len_min,
        "seq_len_max": seq_len_max,
        "max_depth": max_depth,
        "max_args": max_args,
        "seed": seed,
    }
    overrides = {f"data.{k}": v for k, v in flags.items() if v is not None}
    cfg = load_config(config, {**overrides, "data.name": "listops"}).data
    paths = listops.write_generated(cfg, out, force)
    sizes = f"{cfg.train_size}/{cfg.val_size}/{cfg.test_size}"
    console.print(
        f"wrote {', '.join(str(p) for p in paths)} ({sizes} examples)",
        highlight=False,
        soft_wrap=True,
    )


def data_text(
    source: Annotated[
        Path,
        typer.Argument(help="Folder with train.txt, val.txt, test.txt, or one input.txt."),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for the token files.", rich_help_panel=o.OUTPUT),
    ],
    tokenizer: Annotated[
        str,
        typer.Option(
            help="byte, char, bpe (trained on the training split), tiktoken:NAME, or a "
            "tokenizer.json file (or a folder holding one).",
            rich_help_panel=GEN,
        ),
    ] = "byte",
    vocab_size: Annotated[
        int, typer.Option(help="Ids of a trained BPE (bpe only).", rich_help_panel=GEN)
    ] = 4096,
    fit_mb: Annotated[
        float,
        typer.Option(
            help="MB of the training split (evenly spaced) a BPE learns from.",
            rich_help_panel=GEN,
        ),
    ] = 100.0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a corpus prepared there.", rich_help_panel=o.OUTPUT),
    ] = False,
) -> None:
    """Tokenise a corpus once into memory-mapped token files (train on them with
    --dataset tokens --data-dir OUT); the tokenizer travels with every run trained on them."""
    with transfer_progress() as update:
        if not fit_mb > 0:
            raise ConfigError("--fit-mb", f"must be positive, got {fit_mb}")
        prepared = prepare_text(
            source, out, tokenizer, vocab_size, force, update, int(fit_mb * 1e6)
        )
    console.print(f"wrote {out}: {prepared.summary()}", highlight=False, soft_wrap=True)
