"""ListOps files in LRA's layout pad to their longest example, whatever the generator's
``seq_len_max`` says; the run header, summary and checkpoint record the length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data import DATASETS
from odetx.errors import ConfigError
from odetx.resolve import build_config
from odetx.training import Trainer

FILES = ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv")


def sm_row(digits: list[int]) -> str:
    """``[SM d1 … dn ]`` in LRA's parenthesised fold, and its value, as one TSV row:
    1 + n + 1 tokens once the parentheses are dropped."""
    src = "( " * (len(digits) + 1) + "[SM " + " ".join(f"{d} )" for d in digits) + " ] )"
    return f"{src}\t{sum(digits) % 10}"


def write_lra(folder: Path, longest_args: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    short = ["( ( ( [MAX 2 ) 9 ) ] )\t9", "7\t7", "( ( ( [MIN 4 ) 1 ) ] )\t1"]
    for i, name in enumerate(FILES):
        rows = list(short)
        if i == 1:  # the long one sits in the validation file: every file is looked at
            rows.append(sm_row([(3 * k) % 10 for k in range(longest_args)]))
        (folder / name).write_text("Source\tTarget\n" + "\n".join(rows * 4) + "\n")


TINY = {
    "data.name": "listops",
    "model.preset": "enc-tiny",
    "model.dim": 16,
    "model.depth": 1,
    "model.heads": 2,
    "train.epochs": 1,
    "train.batch_size": 8,
    "train.device": "cpu",
    "train.threads": 1,
}


def test_files_longer_than_seq_len_max_train_and_evaluate(tmp_path):
    root = tmp_path / "lra"
    write_lra(root, 79)  # 1 + 79 + 1 = 81 tokens, over the default seq_len_max of 64
    cfg = build_config(overrides={**TINY, "data.root": str(root)})
    assert cfg.data.seq_len_max == 64 and cfg.data.max_len == 81
    assert DATASETS["listops"].info(cfg.data).max_len == 81
    run = tmp_path / "run"
    summary = Trainer(cfg, run).fit()
    assert summary["max_len"] == 81
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["config"]["data"]["max_len"] == 81
    result = CliRunner().invoke(app, ["eval", str(run / "best.pt"), "--json"])
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads(result.output)["acc"] <= 1.0


def test_generated_sets_keep_their_length():
    cfg = build_config(overrides=TINY)
    assert cfg.data.max_len == 0
    assert DATASETS["listops"].info(cfg.data).max_len == cfg.data.seq_len_max == 64


def test_files_beyond_lra_length_are_refused_in_one_line_unless_max_len_says_so(tmp_path):
    root = tmp_path / "long"
    write_lra(root, 1999)  # 2,001 tokens: one over LRA's 2,000
    with pytest.raises(ConfigError) as err:
        build_config(overrides={**TINY, "data.root": str(root)})
    line = str(err.value)
    assert "\n" not in line and "basic_val.tsv" in line
    assert "2,001 tokens, more than LRA's 2,000" in line and "data.max_len=2001" in line
    cfg = build_config(overrides={**TINY, "data.root": str(root), "data.max_len": 2001})
    assert cfg.data.max_len == 2001
