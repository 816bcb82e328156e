"""The default thread count is fixed by the usable cores (never by load: one core is left
free instead) and recorded so a resume reuses it; ``auto`` follows the load; the command
line bounds OpenMP's spin unless the user chose one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from odetx.errors import ConfigError
from odetx.resolve import build_config
from odetx.runtime import threads as th
from odetx.training import Trainer, prepare_resume
from tests.conftest import TINY


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The trainers here set torch's count; the rest of the session keeps its own."""
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


def machine(monkeypatch, cores: int, load: float) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load), raising=False)


@pytest.mark.parametrize("load", [0.0, 1.2, 3.9, 40.0])
def test_the_default_count_does_not_depend_on_load(monkeypatch, load):
    machine(monkeypatch, 4, load)
    assert th.choose_threads(0).count == 3  # one core left for the others
    assert th.choose_threads(0, processes=2).count == 1
    assert "load" not in th.choose_threads(0).why


def test_the_default_count_is_capped_and_shared_by_processes(monkeypatch):
    machine(monkeypatch, 64, 0.0)
    assert th.choose_threads(0).count == th.DEFAULT_CAP
    assert th.choose_threads(0, processes=2).count == th.DEFAULT_CAP // 2
    for cores, count in ((1, 1), (2, 1), (3, 2), (9, 8)):
        machine(monkeypatch, cores, 0.0)
        assert th.choose_threads(0).count == count
    assert th.choose_threads(0, processes=16).count == 1


@pytest.mark.parametrize(
    ("cores", "load", "processes", "count"),
    [(2, 0.0, 1, 2), (2, 1.2, 1, 1), (4, 1.2, 1, 3), (4, 9.0, 1, 1), (4, 0.0, 2, 2)],
)
def test_auto_follows_the_load_as_before(monkeypatch, cores, load, processes, count):
    machine(monkeypatch, cores, load)
    chosen = th.choose_threads("auto", processes)
    assert chosen.count == count and f"load {load:.1f}" in chosen.why


def test_a_given_count_is_used_whatever_the_machine(monkeypatch):
    machine(monkeypatch, 2, 5.0)
    assert th.choose_threads(3).count == 3


def test_the_config_takes_counts_and_auto_and_refuses_the_rest(tiny_config):
    assert tiny_config(train__threads="auto").train.threads == "auto"
    assert tiny_config(train__threads="2").train.threads == 2
    assert tiny_config(train__threads=0).train.threads == 0
    for bad in (-1, "many", 1.5, True):
        with pytest.raises(ConfigError) as err:
            tiny_config(train__threads=bad)
        assert str(err.value).startswith("train.threads:")


def test_the_spin_bound_is_set_only_where_the_user_set_none():
    env: dict[str, str] = {}
    assert th.bound_spin(env) and env == {"GOMP_SPINCOUNT": str(th.SPIN_COUNT)}
    mine = {"GOMP_SPINCOUNT": "5"}
    assert not th.bound_spin(mine) and mine == {"GOMP_SPINCOUNT": "5"}
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    assert not th.bound_spin(passive) and passive == {"OMP_WAIT_POLICY": "PASSIVE"}


def spin_seen_by_openmp(**env: str) -> str:
    """The GOMP_SPINCOUNT GNU OpenMP read when ``odetx`` loaded torch (it prints its
    settings at start-up under OMP_DISPLAY_ENV=VERBOSE)."""
    base = {k: v for k, v in os.environ.items() if k not in th.SPIN_VARIABLES}
    run = subprocess.run(
        [sys.executable, "-m", "odetx", "--version"],
        env={**base, **env, "OMP_DISPLAY_ENV": "VERBOSE"},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [ln for ln in run.stderr.splitlines() if "GOMP_SPINCOUNT" in ln]
    if not lines:
        pytest.skip("torch's OpenMP is not GNU OpenMP: it prints no GOMP_SPINCOUNT")
    return lines[0].split("=", 1)[1].strip().strip("'")


def test_the_command_line_bounds_the_spin_before_torch_loads():
    assert spin_seen_by_openmp() == str(th.SPIN_COUNT)
    assert spin_seen_by_openmp(GOMP_SPINCOUNT="123") == "123"


def test_a_run_records_its_count_and_a_resume_reuses_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    machine(monkeypatch, 3, 0.0)
    Trainer(build_config(overrides={**TINY, "train.threads": 0, "train.epochs": 1}), run).fit()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] == 2
    machine(monkeypatch, 5, 3.0)  # another machine, busy: the run's count still holds
    for flags in ({}, {"train.threads": 0}, {"train.threads": "0"}):
        assert prepare_resume(run, {"train.epochs": 2, **flags}).config.train.threads == 2
    assert prepare_resume(run, {"train.threads": "1"}).config.train.threads == 1
    assert prepare_resume(run, {"train.threads": "auto"}).config.train.threads == "auto"


def test_a_run_saved_with_threads_0_still_resumes(tmp_path, monkeypatch, trained_run):
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["config"]["train"]["threads"] = 0  # how runs recorded the automatic choice
    torch.save(ckpt, run / "last.pt")
    machine(monkeypatch, 4, 0.0)
    plan = prepare_resume(run, {"train.epochs": 3})
    assert plan.config.train.threads == 0
    trainer = Trainer(plan.config, plan.run_dir, plan.checkpoint)
    assert trainer.threads.count == 3 and trainer.cfg.train.threads == 3
