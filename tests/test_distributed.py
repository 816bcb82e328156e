"""Two CPU processes on gloo, launched by ``odetx train --nproc 2`` (torch's own launcher)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from odetx.artefacts import load_checkpoint
from odetx.training import Trainer

# Each test starts torch's launcher and two interpreters: seconds each, the whole file ~1 min.
pytestmark = pytest.mark.slow

EPOCHS = 30  # long enough (about 5 s) to interrupt part-way
# Dropout and mixing off: the two runs then differ only in batch order and float rounding.
TINY = [
    "--device", "cpu", "--batch-size", "128",
    "--set", "model.dim=16", "--set", "model.depth=2", "--set", "model.heads=2",
    "--set", "model.dropout=0", "--set", "train.mixup=0", "--set", "train.warmup_epochs=1",
]  # fmt: skip


def odetx(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "odetx", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def final_train_loss(run):
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return float(rows[-1]["train_loss"]), len(rows)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    result = odetx(
        "train", "--nproc", 2, "--epochs", EPOCHS, "--out", root / "run", *TINY, cwd=root
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_two_processes_write_one_run_close_to_a_single_process_run(ddp_run, tmp_path, tiny_config):
    root, result = ddp_run
    run = root / "run"
    assert sorted(p.name for p in root.iterdir()) == ["run"]  # no second run directory
    assert {p.name for p in run.iterdir()} == {
        "config.yaml",
        "metrics.csv",
        "last.pt",
        "best.pt",
        "summary.json",
        ".odetx.lock",  # rank 0's run directory lock, as in a single-process run
    }
    assert result.stdout.count("run saved in") == 1  # only rank 0 reports
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["test"]["samples"] == 359  # the shards cover the test split exactly once

    cfg = tiny_config(
        train__epochs=EPOCHS, model__dropout=0.0, train__mixup=0.0, train__warmup_epochs=1.0
    )
    Trainer(cfg, tmp_path / "single").fit()
    ddp_loss, epochs = final_train_loss(run)
    single_loss, _ = final_train_loss(tmp_path / "single")
    assert epochs == EPOCHS
    assert ddp_loss == pytest.approx(single_loss, rel=0.05)


def test_an_interrupted_distributed_run_resumes_to_the_same_weights(ddp_run, tmp_path):
    root, _ = ddp_run
    part = tmp_path / "part"
    args = ["train", "--nproc", "2", "--epochs", str(EPOCHS), "--out", str(part), *TINY]
    # Ctrl-C reaches the launcher and every rank, as it would from a terminal.
    proc = subprocess.Popen(
        [sys.executable, "-m", "odetx", *args],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while (
        len(
            (part / "metrics.csv").read_text().splitlines()
            if (part / "metrics.csv").exists()
            else []
        )
        < 3
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before the interrupt"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.count("error: interrupted;") == 1 and "Traceback" not in err
    stopped_at = load_checkpoint(part / "last.pt")["epoch"]
    assert 2 <= stopped_at < EPOCHS

    resumed = odetx("train", "--nproc", 2, "--resume", part, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    straight = load_checkpoint(root / "run" / "last.pt")["model"]
    again = load_checkpoint(part / "last.pt")["model"]
    for name, value in straight.items():
        assert torch.equal(value, again[name]), name


def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    result = odetx(
        "train", "--nproc", 2, "--epochs", 1, "--out", tmp_path / "run", *TINY,
        "--solver", "dopri5", "--rtol", "1e-9", "--atol", "1e-9",
        "--set", "solver.max_num_steps=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "needed more than max_num_steps=1" in result.stderr
    assert "distributed training stopped: rank" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_error_every_rank_meets_is_printed_once(tmp_path):
    # Missing data: both ranks fail alike, and only rank 0 says so.
    result = odetx(
        "train", "--nproc", 2, "--epochs", 1, "--out", tmp_path / "run", *TINY,
        "--dataset", "mnist", "--data-dir", tmp_path / "nothing-here",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("not found in") == 1, result.stderr
    assert "Traceback" not in result.stderr
