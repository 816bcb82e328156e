"""``odetx compare``: solvers on one checkpoint, finished runs, sweeps; outputs and bad input.

Expectations are computed here from first principles (hand-counted NFE, the
summary files, the theory of splitting orders), never by calling the code under test.
"""

import csv
import json
import math
import shutil
import sys

import pytest
import torch
import yaml
from typer.testing import CliRunner

from odetx.cli import compare as compare_cli
from odetx.cli.app import app
from odetx.compare import sweep as sweep_module
from odetx.compare.runs import paired, read_run
from odetx.compare.solvers import fit_order
from odetx.data import DATASETS
from odetx.models import build_model
from odetx.resolve import build_config
from odetx.training import Trainer
from tests.conftest import TINY

runner = CliRunner()
STAGES = {"euler": 1, "midpoint": 2, "rk4": 4}
# Field evaluations per solver stage of one step: A and M alone count one half each.
PER_STAGE = {"sequential": 0.5 + 0.5, "parallel": 1.0, "strang": 0.5 + 0.5 + 0.5}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code, needle):
    assert result.exit_code == code, result.output
    assert needle in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def train(run_dir, epochs=1, **overrides):
    cfg = build_config(overrides={**TINY, "train.epochs": epochs, **overrides})
    Trainer(cfg, run_dir).fit()
    return run_dir


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny sequential model (D = G = 2, Euler, one step per group)."""
    return train(tmp_path_factory.mktemp("cmp") / "seq", epochs=2, **{"model.arch": "sequential"})


@pytest.fixture(scope="module")
def solver_table(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp_out")
    result = invoke(
        "compare", checkpoint / "best.pt",
        "--solver", "euler", "--solver", "rk4", "--solver", "dopri5",
        "--steps", "1,2,4,8", "--rtol", "1e-3",
        "--arch", "sequential", "--arch", "strang", "--arch", "parallel",
        "--json", out / "t.json", "--csv", out / "t.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "t.json").read_text()), out / "t.csv"


# ---------------------------------------------------------------- mode 1: solvers


def test_order_fit_recovers_a_known_power_law():
    steps = [1, 2, 4, 8, 16]
    for p in (1.0, 2.0, 4.0):
        errors = [3.7 * (1.0 / s) ** p for s in steps]
        assert fit_order(steps, errors) == pytest.approx(p, abs=1e-9)
    # Zero or non-finite errors (exact solves, overflow) are left out of the fit.
    assert fit_order([1, 2, 4], [0.5, 0.125, 0.0]) == pytest.approx(2.0)
    assert fit_order([1, 2, 4], [math.inf, 0.5, 0.25]) == pytest.approx(1.0)
    assert fit_order([1], [0.3]) is None
    assert fit_order([2, 2], [0.3, 0.2]) is None


def test_nfe_is_groups_times_steps_times_stages(solver_table):
    _, record, _ = solver_table
    fixed = [r for r in record["rows"] if r["solver"] != "dopri5"]
    assert len(fixed) == 3 * 2 * 4  # schemes x fixed solvers x step counts
    for r in fixed:
        groups = 2  # TINY: depth 2, one group per layer
        expected = groups * r["steps"] * STAGES[r["solver"]] * PER_STAGE[r["arch"]]
        assert r["nfe"] == expected, r
    adaptive = [r for r in record["rows"] if r["solver"] == "dopri5"]
    assert len(adaptive) == 3 and all(r["steps"] is None and r["rtol"] == 1e-3 for r in adaptive)
    # dopri5 takes at least one accepted step per sub-flow: 6 stages + 1 initial evaluation.
    assert all(r["nfe"] >= 2 * 7 * PER_STAGE[r["arch"]] for r in adaptive)


def hand_accuracy(checkpoint, arch):
    """Test accuracy of the checkpoint's weights integrated by ``arch`` (Euler, one step),
    counted here: argmax of the logits against the labels, over the whole test split."""
    ckpt = torch.load(checkpoint / "best.pt", weights_only=True)
    cfg = build_config(overrides={**TINY, "model.arch": arch})
    data = DATASETS["digits"]
    model = build_model(cfg.model, cfg.solver, data.info(cfg.data))
    model.load_state_dict(ckpt["model"])
    model.eval()
    test = data.load(cfg.data).test
    with torch.no_grad():
        x = torch.stack([test[i][0] for i in range(len(test))])
        y = torch.tensor([int(test[i][1]) for i in range(len(test))])
        return (model(x).argmax(-1) == y).float().mean().item()


def test_trained_with_row_has_zero_difference(solver_table, checkpoint):
    _, record, _ = solver_table
    trained = [r for r in record["rows"] if r["trained"]]
    assert [(r["arch"], r["solver"], r["steps"]) for r in trained] == [("sequential", "euler", 1)]
    # The baseline of every difference is the accuracy of the weights as trained, counted here.
    baseline = hand_accuracy(checkpoint, "sequential")
    summary = json.loads((checkpoint / "summary.json").read_text())
    assert trained[0]["acc"] == pytest.approx(baseline, abs=1e-6)
    assert summary["test"]["acc"] == pytest.approx(baseline, abs=1e-6)
    for r in record["rows"]:
        assert r["delta_acc"] == pytest.approx(r["acc"] - baseline, abs=1e-6), r


def test_arch_integrates_the_same_weights_with_another_scheme(solver_table, checkpoint):
    _, record, _ = solver_table
    row = next(
        r
        for r in record["rows"]
        if (r["arch"], r["solver"], r["steps"]) == ("parallel", "euler", 1)
    )
    assert row["acc"] == pytest.approx(hand_accuracy(checkpoint, "parallel"), abs=1e-6)
    assert not row["trained"]


def test_convergence_orders_follow_the_theory(solver_table):
    _, record, _ = solver_table
    order = {(r["arch"], r["solver"]): r["order"] for r in record["rows"] if r["steps"]}
    # Lie–Trotter splits at first order whatever the solver; Strang at second; the
    # unsplit parallel step has its solver's order. Generous: the field is a trained one.
    assert order["sequential", "euler"] == pytest.approx(1.0, abs=0.3)
    assert order["sequential", "rk4"] == pytest.approx(1.0, abs=0.3)
    assert order["parallel", "euler"] == pytest.approx(1.0, abs=0.3)
    assert order["strang", "rk4"] == pytest.approx(2.0, abs=0.5)
    assert order["parallel", "rk4"] == pytest.approx(4.0, abs=0.8)
    # Errors shrink as the steps grow, for every fixed-step line.
    for key in order:
        line = sorted(
            (r for r in record["rows"] if (r["arch"], r["solver"]) == key),
            key=lambda r: r["steps"],
        )
        errors = [r["error"] for r in line]
        assert errors == sorted(errors, reverse=True), key


def test_csv_json_and_table_agree(solver_table):
    result, record, csv_path = solver_table
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(record["rows"]) == 27
    for row, rec in zip(rows, record["rows"], strict=True):
        assert (row["arch"], row["solver"]) == (rec["arch"], rec["solver"])
        assert float(row["acc"]) == pytest.approx(rec["acc"])
        assert float(row["nfe"]) == pytest.approx(rec["nfe"])
        assert float(row["error"]) == pytest.approx(rec["error"])
    shown = [
        [c.strip() for c in line.split("│")[1:9]]
        for line in result.output.splitlines()
        if line.startswith("│")
    ]
    expected = [
        [
            rec["arch"],
            rec["solver"],
            "—" if rec["steps"] is None else str(rec["steps"]),
            f"{rec['acc']:.4f}",
            f"{rec['delta_acc']:+.4f}",
            f"{rec['top5']:.4f}",  # digits: 10 classes
            f"{rec['loss']:.4f}",
            f"{rec['nfe']:.4g}",
        ]
        for rec in record["rows"]
    ]
    assert shown == expected
    assert "trained with sequential / euler (1 step)" in result.output


# ---------------------------------------------------------------- mode 2: finished runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for seed in (0, 1, 2):
        train(root / f"seq-{seed}", **{"model.arch": "sequential", "train.seed": seed})
    train(root / "par-0", **{"model.arch": "parallel"})
    train(root / "seq-lr", **{"model.arch": "sequential", "train.lr": 0.01})
    (root / "unfinished").mkdir()
    (root / "unfinished" / "config.yaml").write_text("model: {}\n")
    return root


def _mean_std(values):
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def test_runs_equal_but_for_the_seed_are_pooled(runs, tmp_path):
    result = invoke(
        "compare", runs / "*", "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv"
    )
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "r.json").read_text())
    rows = record["rows"]
    assert len(rows) == 3
    summaries = [json.loads((runs / f"seq-{s}" / "summary.json").read_text()) for s in (0, 1, 2)]
    seq = next(r for r in rows if r["arch"] == "sequential" and r["seeds"] == 3)
    for key, values in (
        ("test_acc", [s["test"]["acc"] for s in summaries]),
        ("test_acc_last", [s["test_last"]["acc"] for s in summaries]),
        ("best_val_acc", [s["best_val_acc"] for s in summaries]),
        ("wall_time_s", [s["wall_time_s"] for s in summaries]),
    ):
        mean, std = _mean_std(values)
        assert seq[key] == pytest.approx(mean) and seq[f"{key}_std"] == pytest.approx(std), key
    assert sorted(seq["seed_values"]) == [0, 1, 2]
    assert seq["nfe"] == 2 and seq["depth"] == 2 and seq["groups"] == 2
    single = [r for r in rows if r["seeds"] == 1]
    assert {r["arch"] for r in single} == {"parallel", "sequential"}
    assert all(r["test_acc_std"] is None for r in single)
    # The lr run differs in a key with no column: a setting column tells it apart.
    lr_row = next(r for r in single if r["arch"] == "sequential")
    assert lr_row["setting"] == "train.lr=0.01"
    assert seq["setting"] == "train.lr=0.003"
    # Rows are best test accuracy first; the table shows mean ± std; unfinished runs are noted.
    accs = [r["test_acc"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    mean, std = _mean_std([s["test"]["acc"] for s in summaries])
    assert f"{mean:.4f} ± {std:.4f}" in result.output
    assert "left out 1 unfinished run" in result.output
    with (tmp_path / "r.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["test_acc"]) for r in table] == pytest.approx(accs)
    assert [int(r["seeds"]) for r in table] == [r["seeds"] for r in rows]


def test_a_setting_and_seed_named_twice_is_refused_not_pooled(runs, tmp_path):
    copy = tmp_path / "seq-0-again"
    shutil.copytree(runs / "seq-0", copy)
    result = invoke("compare", runs / "seq-0", runs / "seq-1", copy)
    assert result.exit_code != 0
    line = result.output.strip()
    assert "same seed (train.seed=0)" in line and "seq-0-again" in line, line
    assert str(runs / "seq-0") in line.replace("\n", "")
    assert "Traceback" not in result.output


def test_plot_writes_a_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "runs.png"
    result = invoke("compare", runs / "seq-0", runs / "seq-1", runs / "par-0", "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convergence_plot_writes_a_png(checkpoint, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "conv.png"
    result = invoke("compare", checkpoint, "--solver", "euler", "--steps", "1,2", "--plot", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    png = tmp_path / "runs.png"
    result = invoke("compare", runs / "seq-0", "--plot", png)
    one_line_error(result, 1, 'pip install "odetx[plot]"')
    assert not png.exists()


# ---------------------------------------------------------------- mode 3: sweeps

SWEEP = """\
base:
  model: {dim: 16, depth: 2, heads: 2}
  train: {epochs: 2, batch_size: 128, warmup_epochs: 1.0, device: cpu}
out: OUT
experiments:
  schemes:
    grid: {model.arch: [sequential, parallel]}
  sharing:
    grid:
      model.groups,solver.steps: [[2, 1], [1, 2]]
"""


class Interrupting:
    """A reporter that presses Ctrl-C after the first epoch of every run it watches."""

    def __init__(self, *args, **kwargs):
        pass

    def start(self, info):
        pass

    def epoch_start(self, epoch, epochs, batches):
        pass

    def batch(self, done, stats):
        pass

    def close(self):
        pass

    def finish(self, summary):
        pass

    def epoch_end(self, row):
        raise KeyboardInterrupt


def test_sweep_trains_skips_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    spec = tmp_path / "s.yaml"
    spec.write_text(SWEEP.replace("OUT", str(out)))
    cells = {
        "sequential": out / "schemes" / "arch=sequential",
        "parallel": out / "schemes" / "arch=parallel",
        "shared": out / "sharing" / "groups=1,steps=2",
    }
    # Stopped by Ctrl-C after the first epoch of the first cell: one clean line, epoch 1 kept.
    monkeypatch.setattr(compare_cli, "RichReporter", Interrupting)
    result = invoke("compare", "--sweep", spec)
    assert result.exit_code == 130, result.output
    assert f"odetx compare --sweep {spec}" in result.output and "Traceback" not in result.output
    assert torch.load(cells["sequential"] / "last.pt", weights_only=True)["epoch"] == 1
    assert not (cells["sequential"] / "summary.json").exists()
    assert not cells["parallel"].exists()
    monkeypatch.undo()

    # Run again: the stopped cell resumes, the others train; (G=2, 1 step) is the parallel cell.
    result = invoke("compare", "--sweep", spec, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert "arch=sequential: resumed" in result.output
    assert "arch=parallel: trained" in result.output
    assert "same config as an earlier cell" in result.output
    for run in cells.values():
        assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    with (cells["sequential"] / "metrics.csv").open(newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert {(r["experiment"], r["arch"], r["groups"], r["steps"]) for r in rows} == {
        ("schemes", "sequential", 2, 1),
        ("schemes", "parallel", 2, 1),
        ("sharing", "parallel", 2, 1),
        ("sharing", "parallel", 1, 2),
    }
    for r in rows:
        run = cells["shared"] if r["groups"] == 1 else cells[r["arch"]]
        assert r["runs"] == [str(run)]
        summary = json.loads((run / "summary.json").read_text())
        assert r["test_acc"] == summary["test"]["acc"] and r["nfe"] == summary["nfe_forward"]

    # Complete cells are skipped; a cell whose summary is gone trains its missing part again.
    (cells["shared"] / "summary.json").unlink()
    calls = []

    class Counting(Trainer):
        def fit(self):
            calls.append(self.run.path)
            return super().fit()

    monkeypatch.setattr(sweep_module, "Trainer", Counting)
    result = invoke("compare", "--sweep", spec)
    assert result.exit_code == 0, result.output
    assert result.output.count("complete, skipped") == 2
    assert "groups=1,steps=2: resumed" in result.output
    assert calls == [cells["shared"]]
    assert (cells["shared"] / "summary.json").is_file()

    # A run written before a config key existed (here solver.controller) held its default:
    # skipped, not refused as another config.
    config = cells["parallel"] / "config.yaml"
    tree = yaml.safe_load(config.read_text())
    del tree["solver"]["controller"]
    config.write_text(yaml.safe_dump(tree))
    result = invoke("compare", "--sweep", spec)
    assert result.exit_code == 0 and result.output.count("complete, skipped") == 3, result.output

    # A sweep whose config no longer matches a finished cell refuses to reuse it.
    spec.write_text(SWEEP.replace("OUT", str(out)).replace("epochs: 2", "epochs: 3"))
    one_line_error(invoke("compare", "--sweep", spec), 2, "train.epochs")


def test_paper_sweep_expands_to_the_documented_grid():
    from odetx.compare.sweep import load_sweep

    cells = load_sweep("configs/sweeps/paper.yaml")
    by = {}
    for c in cells:
        by.setdefault(c.experiment, []).append(c)
    assert {k: len(v) for k, v in by.items()} == {"schemes": 9, "solvers": 12, "groups": 12}
    assert len({c.run_dir for c in cells}) == 27  # cells shared between experiments train once
    groups = {(c.config.model.groups, c.config.solver.steps) for c in by["groups"]}
    assert groups == {(6, 1), (3, 2), (2, 3), (1, 6)}  # G from D down to 1, step size 1
    assert {c.config.model.arch for c in by["schemes"]} == {"sequential", "parallel", "strang"}
    assert {c.config.solver.method for c in by["solvers"]} == {"euler", "midpoint", "rk4"}
    assert all(c.config.model.groups == 1 for c in by["solvers"])
    assert all(c.config.data.name == "digits" for c in cells)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("bogus: 1\nexperiments: {a: {grid: {train.seed: [0]}}}\n", "bogus: unknown key"),
        ("experiments: {a: {grid: {train.seed: [0]}, sett: {}}}\n", "a.sett: unknown key"),
        ("experiments: {a: {grid: {train.seed: 0}}}\n", "expected a non-empty list"),
        ("experiments: {a: {grid: {train.seed: []}}}\n", "expected a non-empty list"),
        ("experiments: {a: {grid: {model.depht: [2]}}}\n", "model.depht: unknown key"),
        ("experiments: {a: {grid: {model.groups: [4]}}}\n", "4 does not divide model.depth 6"),
        ("experiments: {a: {grid: {model.arch: [leapfrog]}}}\n", "unknown arch 'leapfrog'"),
        ("experiments: {a: {grid: {'model.groups,solver.steps': [[6]]}}}\n", "list of 2 values"),
        ("experiments: {a: {grid: {train.seed: [0, 0]}}}\n", "lists a value twice"),
        ("set: {train.out: x}\nexperiments: {a: {grid: {train.seed: [0]}}}\n", "train.out"),
        ("experiments: {}\n", "names no experiment"),
        ("base: missing.yaml\nexperiments: {a: {grid: {train.seed: [0]}}}\n", "no such file"),
        ("experiments: [\n", "not valid YAML"),
    ],
)
def test_bad_sweep_files_are_one_line(tmp_path, text, needle):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    one_line_error(invoke("compare", "--sweep", spec, "--out", tmp_path / "o"), 2, needle)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["missing.pt"], 1, "no checkpoint at missing.pt"),
        (["missing.pt", "--solver", "rk4"], 1, "no checkpoint at missing.pt"),
        (["no/such/run", "other/run"], 1, "no run directory at no/such/run"),
        (["no/such/*"], 1, "no run directory matches 'no/such/*'"),
        (["--sweep", "missing.yaml"], 2, "no such file: missing.yaml"),
        (["--sweep", "x.yaml", "some/run"], 2, "--sweep: takes no checkpoint"),
        (["--sweep", "x.yaml", "--solver", "rk4"], 2, "--solver: applies to comparing solvers"),
        (["a/run", "b/run", "--steps", "1,2"], 2, "exactly one checkpoint"),
        (["a/run", "--out", "o"], 2, "--out: applies to --sweep only"),
        ([], 2, "give a checkpoint, run directories, or --sweep"),
    ],
)
def test_bad_input_is_one_line(tmp_path, monkeypatch, args, code, needle):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("compare", *args), code, needle)


def test_a_named_folder_without_runs_is_refused_not_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    one_line_error(invoke("compare", "empty"), 1, "no run directory at or below empty")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--steps", "1,x"], "--steps: expected comma-separated integers"),
        (["--steps", "0,2"], "--steps: expected positive integers"),
        (["--solver", "euler", "--rtol", "1e-3"], "--rtol: applies to adaptive solvers"),
        (["--solver", "dopri5", "--steps", "2"], "--steps: applies to fixed-step solvers"),
        (["--split", "dev"], "--split: unknown split 'dev'"),
        (["--csv", "no/such/dir/t.csv"], "--csv: folder no/such/dir does not exist"),
        # Never overwrite a file of another kind, such as a checkpoint.
        (["--csv", "best.pt"], "--csv: best.pt must end in .csv"),
        (["--json", "table.csv"], "--json: table.csv must end in .json"),
    ],
)
def test_bad_solver_options_are_one_line(checkpoint, args, needle):
    one_line_error(invoke("compare", checkpoint / "best.pt", *args), 2, needle)


def test_a_run_directory_that_is_not_finished_is_named(tmp_path, checkpoint):
    run = tmp_path / "run"
    shutil.copytree(checkpoint, run)
    (run / "summary.json").unlink()
    one_line_error(invoke("compare", run), 1, f"no finished runs (with summary.json) in {run}")


def test_paired_compares_seed_by_seed_with_an_exact_sign_flip_test():
    # Seed 3 ran in one arm only and is left out; differences by hand: +0.1, −0.05, +0.05.
    a = {0: 0.90, 1: 0.80, 2: 0.85}
    b = {0: 0.80, 1: 0.85, 2: 0.80, 3: 0.50}
    p = paired(a, b)
    assert p["seeds"] == [0, 1, 2]
    assert p["diffs"] == pytest.approx([0.1, -0.05, 0.05])
    assert p["mean"] == pytest.approx(0.1 / 3)
    assert p["sd"] == pytest.approx(
        math.sqrt(((0.2 / 3) ** 2 + (0.25 / 3) ** 2 + (0.05 / 3) ** 2) / 2)
    )
    assert (p["a_wins"], p["b_wins"], p["ties"]) == (2, 1, 0)
    # The 8 sign patterns of (0.1, 0.05, 0.05) sum to ±0.2, ±0.1, ±0.1, 0, 0: 6 reach |0.1|.
    assert p["p"] == pytest.approx(6 / 8)
    assert p["p_min"] == pytest.approx(2 / 8)
    # Every seed favouring one arm is the most extreme pattern there is: p = 2 / 2**n.
    five = paired({s: 1.0 + s for s in range(5)}, {s: 0.5 + s for s in range(5)})
    assert (five["a_wins"], five["ties"], five["p"]) == (5, 0, pytest.approx(2 / 32))
    tie = paired({0: 0.5}, {0: 0.5})
    assert (tie["ties"], tie["sd"], tie["p"]) == (1, None, 1.0)
    assert paired({0: 1.0}, {1: 1.0}) is None
    assert paired({10: 1.0, 2: 0.0}, {10: 0.0, 2: 0.0})["seeds"] == [2, 10]  # not as text


def test_a_run_written_before_a_key_existed_reads_it_at_its_default(trained_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    tree = yaml.safe_load((old / "config.yaml").read_text())
    del tree["solver"]["controller"]  # as written before solver.controller existed
    (old / "config.yaml").write_text(yaml.safe_dump(tree))
    have, want = read_run(old)["config"], read_run(trained_run)["config"]
    assert have["solver.controller"] == "integral"
    assert {k: v for k, v in have.items() if k != "train.out"} == {
        k: v for k, v in want.items() if k != "train.out"
    }


def test_a_config_that_lost_its_seed_reads_the_seed_the_summary_recorded(trained_run, tmp_path):
    # The default (0) would silently pool this run with another seed's.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    tree = yaml.safe_load((run / "config.yaml").read_text())
    del tree["train"]["seed"]
    (run / "config.yaml").write_text(yaml.safe_dump(tree))
    summary = json.loads((run / "summary.json").read_text())
    summary["seed"] = 7
    (run / "summary.json").write_text(json.dumps(summary))
    assert read_run(run)["config"]["train.seed"] == 7
