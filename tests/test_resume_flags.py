"""``--resume`` accepts flags that repeat the run's saved values and refuses changed ones."""

from __future__ import annotations

import shutil

import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.errors import ConfigError
from odetx.training import prepare_resume, prepare_run


def test_flags_equal_to_the_saved_values_are_accepted(trained_run):
    # The run was trained with TINY: seed 0, lr 3e-3, dim 16, depth 2 (conftest).
    plan = prepare_resume(
        trained_run,
        {"train.seed": 0, "train.lr": "0.003", "model.dim": 16, "train.epochs": 3},
    )
    assert plan.config.train.seed == 0 and plan.config.train.lr == 3e-3
    assert plan.config.train.epochs == 3 and plan.run_dir == trained_run


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        (
            "train.seed",
            3,
            "train.seed: cannot change on --resume: the run has 0, the command gives 3",
        ),
        (
            "train.lr",
            1e-3,
            "train.lr: cannot change on --resume: the run has 0.003, the command gives 0.001",
        ),
    ],
)
def test_a_changed_value_is_refused_naming_old_and_new(trained_run, key, value, line):
    with pytest.raises(ConfigError) as err:
        prepare_resume(trained_run, {key: value})
    assert str(err.value).startswith(line)


def test_the_cli_compares_parsed_values(trained_run):
    runner = CliRunner()
    # 3e-3 written another way is the saved value; a different seed is refused with one line.
    result = runner.invoke(
        app, ["train", "--resume", str(trained_run), "--set", "train.lr=3.0e-3", "--seed", "1"]
    )
    assert result.exit_code == 2
    assert "train.seed: cannot change on --resume: the run has 0, the command gives 1" in (
        " ".join(result.output.split())
    )
    assert "train.lr" not in result.output and "Traceback" not in result.output


def test_the_original_config_file_may_come_along_if_it_agrees(trained_run, tmp_path):
    same = tmp_path / "same.yaml"
    same.write_text("model: {dim: 16, depth: 2, heads: 2}\ntrain: {threads: 1, epochs: 3}\n")
    plan = prepare_run(same, {"train.seed": 0}, resume=trained_run)
    assert plan.run_dir == trained_run and plan.config.train.epochs == 3
    other = tmp_path / "other.yaml"
    other.write_text("model: {dim: 32}\n")
    with pytest.raises(ConfigError) as err:
        prepare_run(other, {}, resume=trained_run)
    assert str(err.value).startswith(
        "model.dim: cannot change on --resume: the run has 16, the command gives 32"
    )


def test_a_per_sample_run_from_before_controllers_resumes_with_the_pi_rule(trained_run, tmp_path):
    # Its checkpoint lacks solver.controller; it was trained stepping with PI.
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["config"]["solver"].update(method="dopri5", per_sample=True, rtol=1e-3, atol=1e-3)
    del ckpt["config"]["solver"]["controller"]
    torch.save(ckpt, run / "last.pt")
    plan = prepare_resume(run, {"train.epochs": 3})
    assert (plan.config.solver.per_sample, plan.config.solver.controller) == (True, "pi")
