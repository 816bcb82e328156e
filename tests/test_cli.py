import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from odetx.artefacts import RunDir
from odetx.cli import train as train_module
from odetx.cli.app import app
from odetx.data import DATASETS
from odetx.models import ARCHS, PRESETS
from odetx.runtime.distributed import Dist
from odetx.solvers import SOLVERS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    class FakeTrainer:
        dist = Dist()

        def __init__(self, cfg, run_dir, ckpt=None, reporter=None, force=False):
            seen.update(cfg=cfg, run_dir=run_dir, ckpt=ckpt, force=force)
            self.run = RunDir(run_dir)

        def fit(self):
            return {}

    monkeypatch.setattr(train_module, "Trainer", FakeTrainer)
    return seen


def test_flags_file_and_set_reach_the_config(tmp_path, captured):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model:\n  arch: strang\n  depth: 8\ntrain:\n  epochs: 3\n")
    result = invoke(
        "train",
        "-c",
        cfg_file,
        "--depth",
        4,
        "--groups",
        2,
        "--solver",
        "rk4",
        "--steps",
        3,
        "--epochs",
        5,
        "--lr",
        0.01,
        "--seed",
        7,
        "--out",
        tmp_path / "r",
        "--set",
        "model.dim=32",
    )
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert cfg.model.arch == "strang"  # from the file
    assert (cfg.model.depth, cfg.model.groups, cfg.model.dim) == (4, 2, 32)  # flags win
    assert (cfg.solver.method, cfg.solver.steps) == ("rk4", 3)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.seed) == (5, 0.01, 7)
    assert str(captured["run_dir"]) == str(tmp_path / "r")


def test_no_arguments_is_the_embedded_default(captured):
    assert invoke("train").exit_code == 0
    cfg = captured["cfg"]
    assert (cfg.data.name, cfg.model.preset, cfg.model.arch, cfg.solver.method) == (
        "digits",
        "vit-micro",
        "parallel",
        "euler",
    )


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--groups", "4"], "model.groups: 4 does not divide model.depth 6"),
        (["--rtol", "1e-3"], "solver.rtol: applies to adaptive solvers"),
        (["--steps", "0"], "solver.steps: must be a positive integer"),
        (["--set", "model.depht=3"], "model.depht: unknown key"),
        (["--set", "train.lr=fast"], "train.lr: expected float"),
        (["-c", "missing.yaml"], "no such file"),
        (
            ["--set", "model.pool=max"],
            "model.pool: unknown pooling 'max'; choose one of: cls, mean",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(captured, args, needle):
    result = invoke("train", *args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "cfg" not in captured  # refused before any work started


def test_a_config_that_is_not_utf8_text_is_one_line(captured, tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bad")
    result = invoke("train", "-c", tmp_path / "bin.yaml")
    assert result.exit_code == 2 and "is not a UTF-8 text file" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow  # a fresh interpreter per case, importing torch: seconds each
@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--bogus"], "No such option: --bogus"),
        (["eval", "x", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    ],
)
def test_usage_errors_from_the_console_script_are_one_line(args, needle):
    # CliRunner calls the app itself; the one-line form belongs to the entry point.
    result = subprocess.run(
        [sys.executable, "-m", "odetx", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "--help" in lines[0] and not result.stdout


def test_a_path_odetx_cannot_use_is_one_line_and_the_file_is_kept(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    result = invoke("data", "listops", "--out", blocker, "--train-size", 10)
    assert result.exit_code == 1 and f"{blocker}: File exists" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert blocker.read_text() == "keep me"


def test_unknown_choice_is_a_usage_error(captured):
    result = invoke("train", "--arch", "leapfrog")
    assert result.exit_code == 2 and "leapfrog" in result.output


def test_list_shows_every_registry_entry():
    result = invoke("list")
    assert result.exit_code == 0
    for name in [*ARCHS, *SOLVERS, *DATASETS, *PRESETS]:
        assert name in result.output


def test_eval_json_is_one_machine_readable_record(trained_run):
    result = invoke("eval", trained_run / "best.pt", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert record["acc"] == pytest.approx(summary["test"]["acc"])
    assert record["split"] == "test" and record["solver_overridden"] is False
    assert record["nfe"] == 2.0


def test_eval_with_another_solver_says_so(trained_run):
    result = invoke("eval", trained_run, "--solver", "rk4", "--steps", 2)
    assert result.exit_code == 0, result.output
    assert "integrating with rk4 (2 steps)" in result.output
    assert "trained with euler (1 step)" in result.output
    record = json.loads(
        invoke("eval", trained_run, "--solver", "rk4", "--steps", 2, "--json").output
    )
    assert record["nfe"] == 2 * 2 * 4  # groups x steps x stages
    assert record["solver_overridden"] is True


def test_eval_refuses_bad_checkpoints(tmp_path, trained_run):
    result = invoke("eval", tmp_path / "nope.pt")
    assert result.exit_code == 1 and "no checkpoint" in result.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes((trained_run / "best.pt").read_bytes()[:1000])
    result = invoke("eval", bad)
    assert result.exit_code == 1 and "corrupt or truncated" in result.output
    assert "Traceback" not in result.output
    result = invoke("eval", trained_run, "--solver", "euler", "--rtol", "1e-3")
    assert result.exit_code == 2 and "solver.rtol" in result.output


def test_resume_refuses_another_out_folder(trained_run, tmp_path):
    result = invoke("train", "--resume", trained_run, "--out", tmp_path / "elsewhere")
    assert result.exit_code == 2
    assert f"a resumed run continues in its own folder, {trained_run}" in result.output
    assert not (tmp_path / "elsewhere").exists()


def test_resume_continues_the_run(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    result = invoke("train", "--resume", run, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3
