"""``compare --per-sample`` over tolerances and ``eval --json``'s NFE per sample."""

import json
import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.compare.request import CompareRequest, compare
from odetx.compare.runs import read_run
from odetx.config import SolverConfig
from odetx.errors import CheckpointError, ConfigError
from odetx.evaluation.load import load_model, override_solver

runner = CliRunner()


def test_tolerance_sweep_runs_batch_shared_and_per_sample_rows(trained_run, tmp_path):
    req = CompareRequest(
        targets=[str(trained_run)],
        solvers=["dopri5", "rk4"],
        rtol="1e-1,1e-7",  # far apart: at loose tolerances the error need not fall monotonically
        per_sample=True,
        json=tmp_path / "c.json",
    )
    rows = compare(req).table.rows
    adaptive = [r for r in rows if r["solver"].startswith("dopri5")]
    assert [(r["solver"], r["rtol"], r["atol"]) for r in adaptive] == [
        ("dopri5", 0.1, 0.1),
        ("dopri5 per sample", 0.1, 0.1),
        ("dopri5", 1e-7, 1e-7),
        ("dopri5 per sample", 1e-7, 1e-7),
    ]
    for r in rows:
        assert r["nfe_mean"] <= r["nfe_max"] and r["nfe_p90"] <= r["nfe_max"]
    shared, each = adaptive[2], adaptive[3]
    assert shared["nfe_max"] >= shared["nfe"]  # each batch shares one count
    tight, loose = adaptive[3], adaptive[1]
    assert tight["nfe_mean"] > loose["nfe_mean"] and tight["error"] < loose["error"]
    assert each["per_sample"] and not shared["per_sample"]
    record = json.loads((tmp_path / "c.json").read_text())  # strict JSON: no NaN
    assert len(record["rows"]) == 5


def test_one_per_sample_row_per_controller_named_when_not_the_default(trained_run):
    req = CompareRequest(
        targets=[str(trained_run)], solvers=["dopri5"], rtol="1e-3", per_sample=True,
        controllers=["integral", "pi", "integral"],  # a repeat is not another row
    )  # fmt: skip
    rows = compare(req).table.rows
    assert [(r["solver"], r["controller"]) for r in rows] == [
        ("dopri5", None),
        ("dopri5 per sample", "integral"),
        ("dopri5 per sample (pi)", "pi"),
    ]
    with pytest.raises(ConfigError) as info:  # no per-sample solve to steer
        compare(CompareRequest(targets=[str(trained_run)], solvers=["dopri5"], controllers=["pi"]))
    assert info.value.key == "--controller"


def test_per_sample_needs_an_embedded_pair(trained_run):
    with pytest.raises(ConfigError) as info:
        compare(CompareRequest(targets=[str(trained_run)], solvers=["rk4"], per_sample=True))
    assert info.value.key == "--per-sample"


def test_bad_tolerance_lists_are_one_line(trained_run):
    result = runner.invoke(
        app, ["compare", str(trained_run), "--solver", "dopri5", "--rtol", "1e-2,x"]
    )
    assert result.exit_code == 2 and "--rtol" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_eval_json_reports_nfe_per_sample(trained_run):
    result = runner.invoke(
        app, ["eval", str(trained_run), "--solver", "dopri5", "--rtol", "1e-2", "--atol", "1e-2",
              "--per-sample", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    stats = record["nfe_per_sample"]
    assert set(stats) == {"mean", "median", "p90", "max", "mean_right", "mean_wrong"}
    assert stats["mean"] <= stats["max"] and record["solver"]["per_sample"] is True


def test_eval_takes_a_controller_and_refuses_it_where_it_does_not_apply(trained_run):
    base = ["eval", str(trained_run), "--solver", "dopri5", "--rtol", "1e-3", "--atol", "1e-3"]
    result = runner.invoke(app, [*base, "--per-sample", "--controller", "pi", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["solver"]["controller"] == "pi"
    result = runner.invoke(app, [*base, "--controller", "pi"])  # batch-shared: not its choice
    assert result.exit_code == 2 and "solver.controller" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, [*base, "--per-sample", "--controller", "pid"])
    assert result.exit_code == 2 and "'pid' is not one of 'integral', 'pi'" in result.output


def test_a_per_sample_run_written_before_controllers_were_a_key_loads_with_pi(
    trained_run, tmp_path
):
    # Until solver.controller existed the per-sample integrator stepped with the PI rule;
    # reading such a run at today's default would evaluate another model than was trained.
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    solver = ckpt["config"]["solver"]
    solver.update(method="dopri5", per_sample=True, rtol=1e-3, atol=1e-3)
    del solver["controller"]
    torch.save(ckpt, run / "best.pt")
    tree = yaml.safe_load((run / "config.yaml").read_text())
    tree["solver"] = solver
    (run / "config.yaml").write_text(yaml.safe_dump(tree))
    assert load_model(run).config.solver.controller == "pi"
    assert read_run(run)["config"]["solver.controller"] == "pi"
    del tree["solver"]["per_sample"]  # batch-shared then: no controller to keep
    (run / "config.yaml").write_text(yaml.safe_dump(tree))
    assert read_run(run)["config"]["solver.controller"] == "integral"


def test_a_new_method_solved_per_sample_keeps_the_trained_controller():
    trained = SolverConfig(method="dopri5", rtol=1e-3, atol=1e-3, per_sample=True, controller="pi")
    assert override_solver(trained, {"method": "bosh3", "per_sample": True}).controller == "pi"
    named = override_solver(
        trained, {"method": "bosh3", "per_sample": True, "controller": "integral"}
    )
    assert named.controller == "integral"
    shared = override_solver(trained, {"method": "bosh3"})  # batch-shared: no controller
    assert (shared.per_sample, shared.controller) == (False, "integral")


def test_a_checkpoint_whose_solver_is_not_a_section_is_named_as_such(trained_run, tmp_path):
    run = tmp_path / "bad"
    shutil.copytree(trained_run, run)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["solver"] = 5
    torch.save(ckpt, run / "best.pt")
    with pytest.raises(CheckpointError, match="solver: expected a mapping, got 5"):
        load_model(run)
