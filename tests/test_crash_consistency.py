"""A run killed at any write point resumes to exactly the uninterrupted result, and a run
directory has one writer.

Each case forks a child that trains and dies (``os._exit``, as kill -9 would leave it)
just before or just after the k-th file rename odetx makes; the parent then resumes the
run and compares every file with a run that was never interrupted.
"""

import csv
import json
import multiprocessing
import os

import pytest
import torch

from odetx import io
from odetx.artefacts import load_checkpoint
from odetx.artefacts.lock import RunInUse, RunLock
from odetx.errors import ConfigError
from odetx.training import Trainer, prepare_resume

TIMING = {"seconds", "samples_per_s"}  # wall-clock columns: the only ones that may differ


def rows(run):
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def finish(run):
    """Resume ``run`` from its last commit, or start it afresh if nothing was committed."""
    if (run / "last.pt").exists():
        plan = prepare_resume(run, {})
        return Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()
    return None


def _die_at(cfg, run, k, after):
    torch.set_num_threads(1)
    real = os.replace
    calls = [0]

    def replace(src, dst):
        calls[0] += 1
        if calls[0] == k and not after:
            os._exit(9)
        real(src, dst)
        if calls[0] == k and after:
            os._exit(9)

    io.os.replace = replace
    Trainer(cfg, run).fit()
    os._exit(0)  # fewer write points than k: finished


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_config_module):
    run = tmp_path_factory.mktemp("straight") / "run"
    summary = Trainer(tiny_config_module, run).fit()
    return run, summary


@pytest.fixture(scope="module")
def tiny_config_module():
    from odetx.resolve import build_config
    from tests.conftest import TINY

    # Dropout makes the RNG state matter; three epochs make best and last part ways.
    return build_config(overrides={**TINY, "train.epochs": 3, "model.dropout": 0.1})


# Writes of a 3-epoch run: config, then per epoch last.pt (+ best.pt when improved) and
# metrics.csv, then summary.json. 12 covers them all (later ks finish normally).
@pytest.mark.slow
@pytest.mark.parametrize("after", [False, True], ids=["before-rename", "after-rename"])
@pytest.mark.parametrize("k", range(1, 13))
def test_a_kill_at_any_write_point_resumes_to_the_uninterrupted_result(
    tmp_path, reference, tiny_config_module, k, after
):
    straight, expected = reference
    run = tmp_path / "run"
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_die_at, args=(tiny_config_module, run, k, after))
    child.start()
    child.join(120)
    assert child.exitcode in (0, 9)
    summary = finish(run) if child.exitcode == 9 else None
    if summary is None and not (run / "summary.json").exists():
        # Killed before the first commit: nothing to resume, and a fresh start works.
        for p in run.iterdir():
            if p.name in {"config.yaml", ".odetx.lock"}:
                continue
            assert p.name.endswith(".tmp") or p.name == "metrics.csv", p
        summary = Trainer(tiny_config_module, run, force=True).fit()
    got = json.loads((run / "summary.json").read_text())
    want = json.loads((straight / "summary.json").read_text())
    for key in ("best_epoch", "best_val_acc", "epochs"):
        assert got[key] == want[key], key
    assert got["test"]["acc"] == want["test"]["acc"] and got["test"]["loss"] == want["test"]["loss"]
    assert rows(run) == rows(straight)
    assert load_checkpoint(run / "best.pt")["epoch"] == want["best_epoch"]
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(run / name)["model"]
        b = load_checkpoint(straight / name)["model"]
        assert all(torch.equal(a[n], b[n]) for n in a), name
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no stale temp files


def test_a_run_directory_has_one_writer(tmp_path, tiny_config):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):  # another process would hold it like this
        with pytest.raises(RunInUse, match=f"{run} is in use by odetx pid {os.getpid()}"):
            Trainer(tiny_config(train__epochs=1), run).fit()
    assert not (run / "config.yaml").exists()  # the second writer wrote nothing
    Trainer(tiny_config(train__epochs=1), run).fit()  # the lock died with its holder


@pytest.mark.parametrize("name", ["best.pt", "config.yaml", "summary.json"])
def test_files_of_another_run_are_kept_unless_forced(tmp_path, tiny_config, name):
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_bytes(b"someone else's")
    with pytest.raises(ConfigError, match=f"holds {name} from another run.*--force"):
        Trainer(tiny_config(train__epochs=1), run)
    assert (run / name).read_bytes() == b"someone else's"
    Trainer(tiny_config(train__epochs=1), run, force=True).fit()
    assert (run / "summary.json").is_file() and (run / "last.pt").is_file()


def test_stale_temp_files_are_removed_when_a_run_resumes(tmp_path, tiny_config):
    run = tmp_path / "run"
    Trainer(tiny_config(train__epochs=1), run).fit()
    stale = [run / ".last.pt.abc123.tmp", run / ".metrics.csv.x.tmp", run / ".config.yaml.y.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    plan = prepare_resume(run, {"train.epochs": 2})
    Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()
    assert not any(p.exists() for p in stale)


def test_a_lost_best_pt_is_restored_from_last_pt_when_it_was_the_best_epoch(tmp_path, tiny_config):
    """A crash between the commit and the copy: last.pt is the best epoch, best.pt is older."""
    run = tmp_path / "run"
    Trainer(tiny_config(train__epochs=1), run).fit()
    (run / "best.pt").unlink()
    (run / "metrics.csv").unlink()
    plan = prepare_resume(run, {})
    Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()
    assert load_checkpoint(run / "best.pt")["epoch"] == 1
    assert [r["epoch"] for r in rows(run)] == ["1"]


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda c: c.pop("optimizer"), "lacks 'optimizer'"),
        (lambda c: c.pop("rng"), "lacks 'rng'"),
        (lambda c: c["rng"].update(torch=torch.zeros(3), ranks=[torch.zeros(3)]), "cannot resume"),
        (lambda c: c["model"].pop(next(iter(c["model"]))), "cannot resume"),
        (lambda c: c.update(epoch="two"), "epoch"),
        (lambda c: c.update(best_epoch=99), "best epoch 99"),
    ],
    ids=["no-optimizer", "no-rng", "bad-rng", "missing-weight", "epoch-text", "best-after"],
)
def test_a_checkpoint_that_cannot_be_resumed_is_one_line(tmp_path, tiny_config, damage, needle):
    from odetx.artefacts import save_checkpoint
    from odetx.errors import CheckpointError

    run = tmp_path / "run"
    Trainer(tiny_config(train__epochs=1), run).fit()
    ckpt = load_checkpoint(run / "last.pt")
    damage(ckpt)
    save_checkpoint(run / "last.pt", {k: v for k, v in ckpt.items() if k not in {"format"}})
    before = (run / "metrics.csv").read_bytes()
    with pytest.raises(CheckpointError, match=needle) as err:
        plan = prepare_resume(run, {"train.epochs": 2})
        Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()
    assert "\n" not in str(err.value)
    assert (run / "metrics.csv").read_bytes() == before  # nothing already written is lost


def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_previous_one(
    tmp_path, tiny_config, monkeypatch
):
    import errno

    from odetx.artefacts import save_checkpoint
    from odetx.errors import CheckpointError

    run = tmp_path / "run"
    Trainer(tiny_config(train__epochs=1), run).fit()
    before = (run / "last.pt").read_bytes()

    def full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(run / "last.pt", {"epoch": 2})
    assert str(err.value) == (
        f"cannot write {run / 'last.pt'}: No space left on device; the previous last.pt is kept"
    )
    assert (run / "last.pt").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_an_export_removes_what_a_killed_export_left(tmp_path, tiny_config):
    from odetx.export import export_checkpoint

    Trainer(tiny_config(train__epochs=1), tmp_path / "run").fit()
    stale = tmp_path / ".model.pt2.k1ll3d.tmp"
    stale.write_bytes(b"half an artefact")
    export_checkpoint(tmp_path / "run", tmp_path / "model.pt2")
    assert (tmp_path / "model.pt2").is_file() and not stale.exists()
