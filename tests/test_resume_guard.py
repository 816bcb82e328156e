"""A resume never rewrites what a run recorded about its finished epochs: asking for
fewer epochs than are done is refused in one line (exit 2), and nothing is written."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.errors import ConfigError
from odetx.training import Trainer, prepare_resume

runner = CliRunner()


def snapshot(run):
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def test_fewer_epochs_than_done_is_one_line_and_writes_nothing(trained_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    before = snapshot(copy)
    result = runner.invoke(app, ["train", "--resume", str(copy), "--epochs", "1"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "train.epochs: the run in" in lines[0] and "has finished 2 epochs" in lines[0]
    assert "--epochs 2 or more" in lines[0]
    assert snapshot(copy) == before
    # The copy still is the original's setting and seed: compare refuses the repeat.
    compared = runner.invoke(app, ["compare", str(trained_run), str(copy)])
    assert compared.exit_code != 0
    assert "same setting with the same seed" in " ".join(compared.output.split())


def test_the_library_route_refuses_too(trained_run, tiny_config):
    with pytest.raises(ConfigError, match="has finished 2 epochs"):
        prepare_resume(trained_run, {"train.epochs": 1})
    plan = prepare_resume(trained_run, {})
    short = tiny_config(train__epochs=1, train__out=str(trained_run))
    with pytest.raises(ConfigError, match="has finished 2 epochs"):
        Trainer(short, plan.run_dir, plan.checkpoint)


def test_as_many_or_more_epochs_are_accepted(trained_run):
    assert prepare_resume(trained_run, {"train.epochs": 2}).config.train.epochs == 2
    assert prepare_resume(trained_run, {"train.epochs": 5}).config.train.epochs == 5
