"""``odetx.evaluation.evaluate_checkpoint`` against an independent count: the checkpoint's
weights loaded into a model here, the split run here, argmax == label counted here."""

import pytest
import torch
import torch.nn.functional as F

from odetx.config import SolverConfig
from odetx.data import DATASETS
from odetx.evaluation import evaluate_checkpoint
from odetx.models import build_model
from odetx.resolve import build_config
from tests.conftest import TINY


def by_hand(run, split, solver):
    """(accuracy, mean cross-entropy, examples) of ``run``'s best weights on ``split``,
    integrated by ``solver``, from the config the run was trained with (see ``trained_run``)."""
    cfg = build_config(overrides={**TINY, "train.epochs": 2})
    data = DATASETS[cfg.data.name]
    model = build_model(cfg.model, solver, data.info(cfg.data))
    model.load_state_dict(torch.load(run / "best.pt", weights_only=True)["model"])
    model.eval()
    examples = data.load(cfg.data)[split]
    x = torch.stack([examples[i][0] for i in range(len(examples))])
    y = torch.tensor([int(examples[i][1]) for i in range(len(examples))])
    with torch.no_grad():
        logits = model(x)
    correct = int((logits.argmax(-1) == y).sum())
    return correct / len(y), F.cross_entropy(logits, y).item(), len(y)


@pytest.mark.parametrize(
    "split, overrides, solver, nfe",
    [
        # TINY: depth 2, one group per layer; the parallel arch evaluates A + M once a stage.
        ("test", None, SolverConfig("euler", steps=1), 2 * 1 * 1),
        ("val", {"method": "rk4", "steps": 2}, SolverConfig("rk4", steps=2), 2 * 2 * 4),
    ],
    ids=["as-trained", "rk4-on-val"],
)
def test_accuracy_is_the_count_of_correct_argmaxes(trained_run, split, overrides, solver, nfe):
    got = evaluate_checkpoint(trained_run, split, overrides, batch_size=7)  # batches of 7
    acc, loss, n = by_hand(trained_run, split, solver)
    assert got.result.samples == n
    assert got.result.acc == pytest.approx(acc, abs=1e-9)
    assert got.result.loss == pytest.approx(loss, rel=1e-5)
    assert got.result.nfe == nfe
    assert got.to_dict()["solver_overridden"] is (overrides is not None)
