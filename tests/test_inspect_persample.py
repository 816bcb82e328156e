"""``odetx inspect --per-sample`` lists the inputs that took the most field evaluations."""

import pytest

from odetx.analysis import inspect_checkpoint

PER_SAMPLE = {"method": "dopri5", "rtol": 1e-4, "atol": 1e-4, "per_sample": True}


def test_hardest_inputs_are_listed_most_first_and_drawn(trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    result = inspect_checkpoint(
        trained_run, n=6, solver_overrides=PER_SAMPLE, plot_path=tmp_path / "i.png", iters=2
    )
    hard = result.to_dict()["hardest"]
    assert 0 < len(hard) <= 6 and result.meta["per_sample"]
    nfe = [h["nfe"] for h in hard]
    assert nfe == sorted(nfe, reverse=True)
    assert all(h["correct"] == (h["label"] == h["predicted"]) for h in hard)
    assert (tmp_path / "i.png").stat().st_size > 0


def test_batch_shared_solvers_list_none(trained_run):
    result = inspect_checkpoint(trained_run, n=2, iters=2)
    assert result.hardest == [] and result.meta["per_sample"] is False
