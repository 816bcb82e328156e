import csv
import json

import pytest
import torch

from odetx.artefacts import load_checkpoint
from odetx.errors import ConfigError, Interrupted, TrainingError
from odetx.training import Trainer, prepare_resume


def test_run_directory_contract(tmp_path, tiny_config):
    cfg = tiny_config(train__epochs=2)
    summary = Trainer(cfg, tmp_path / "run").fit()
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.yaml",
        "metrics.csv",
        "last.pt",
        "best.pt",
        "summary.json",
        ".odetx.lock",  # held while a process writes the run; the OS drops it when that ends
    }
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_acc", "lr", "nfe_forward", "nfe_backward", "samples_per_s"} <= set(
        rows[0]
    )
    assert float(rows[0]["nfe_forward"]) == 2.0  # depth 2, one Euler step of A+M per layer
    assert json.loads((run / "summary.json").read_text())["test"]["acc"] == summary["test"]["acc"]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["config"]["model"]["dim"] == 16


def test_resume_gives_identical_weights(tmp_path, tiny_config):
    cfg = tiny_config(model__dropout=0.1)  # dropout makes the RNG state matter
    Trainer(cfg, tmp_path / "straight").fit()

    def interrupt_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="holds epoch 2 of 4.*--resume"):
        Trainer(cfg, tmp_path / "resumed", callbacks=[interrupt_after_two]).fit()
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    plan = prepare_resume(tmp_path / "resumed", {})
    Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()

    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = list(csv.DictReader((tmp_path / "resumed" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_resume_refuses_changes_that_would_train_another_model(tmp_path, tiny_config):
    Trainer(tiny_config(train__epochs=1), tmp_path / "run").fit()
    with pytest.raises(ConfigError, match="model.dim: cannot change on --resume"):
        prepare_resume(tmp_path / "run", {"model.dim": 32})
    # More epochs is allowed, and the resumed run is the saved one with only that changed
    # (and the folder it lives in recorded).
    plan = prepare_resume(tmp_path / "run", {"train.epochs": 3})
    assert plan.config == tiny_config(train__epochs=3, train__out=str(tmp_path / "run"))
    assert plan.run_dir == tmp_path / "run"


def test_existing_run_is_never_overwritten(tmp_path, tiny_config):
    Trainer(tiny_config(train__epochs=1), tmp_path / "run").fit()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(tiny_config(train__epochs=1), tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_a_non_finite_loss_before_any_checkpoint_says_nothing_was_saved(tmp_path, tiny_config):
    trainer = Trainer(tiny_config(train__epochs=2, train__lr=1e9), tmp_path / "run")
    with pytest.raises(TrainingError, match="epoch 1.*no epoch had finished, so nothing was saved"):
        trainer.fit()
    assert not (tmp_path / "run" / "last.pt").exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config):
    cfg = tiny_config(train__epochs=3)

    def poison(epoch, row):
        if epoch == 1:
            # Corrupt the weights after epoch 1 has been checkpointed.
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    trainer = Trainer(cfg, tmp_path / "run", callbacks=[poison])
    with pytest.raises(TrainingError, match="non-finite loss.*epoch 2.*still holds epoch 1"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


@pytest.mark.slow  # a training epoch of dopri5 solves, forward and adjoint backward
def test_adaptive_training_reports_forward_and_adjoint_backward_nfe(tmp_path, tiny_config):
    cfg = tiny_config(
        train__epochs=1,
        model__groups=1,
        solver__method="dopri5",
        solver__adjoint=True,
        solver__rtol=1e-2,
        solver__atol=1e-3,
    )
    Trainer(cfg, tmp_path / "run").fit()
    row = next(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert float(row["nfe_forward"]) >= 6 and float(row["nfe_backward"]) >= 6
