"""``--init-from`` uses every weight of the checkpoint or refuses: a model with no place for
some (another depth, no Q/K/V bias) is one line naming them and why, exit 2, before any
file is written; the head, learned solver coefficients and fewer groups over the same
depth (their mean) follow their rules."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data import DATASETS
from odetx.models import build_model
from odetx.resolve import build_config
from odetx.training.transfer import Refusal, map_weights

runner = CliRunner()


def tiny_model(**overrides):
    cfg = build_config(overrides={"model.dim": 16, "model.depth": 2, "model.heads": 2, **overrides})
    return build_model(cfg.model, cfg.solver, DATASETS["digits"].info(cfg.data))


@pytest.mark.parametrize(
    ("flags", "unused", "why"),
    [
        (["--depth", "1"], "stack.blocks.1.field.norm_a.weight", "model.depth 2 -> 1"),
        (
            ["--depth", "1", "--groups", "1"],
            "stack.blocks.1.field.norm_a.weight",
            "model.depth 2 -> 1",
        ),
        (
            ["--set", "model.qkv_bias=false"],
            "stack.blocks.0.field.attn.qkv.bias",
            "model.qkv_bias True -> False",
        ),
    ],
)
def test_weights_the_model_has_no_place_for_are_refused(trained_run, tmp_path, flags, unused, why):
    out = tmp_path / "new"
    tiny = ["--set", "model.dim=16", "--set", "model.heads=2", "--depth", "2", "--threads", "1"]
    args = ["train", "--init-from", str(trained_run), "--out", str(out), *tiny, *flags]
    result = runner.invoke(app, [*args, "--epochs", "1"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    line = lines[-1]
    assert line.startswith("error: train.init_from:") and "Traceback" not in result.output
    assert "this model has no place for" in line and unused in line and why in line, line
    assert "every weight must be used; only the head may be replaced" in line
    assert not out.exists() or not any(out.iterdir())


def test_the_mapping_is_one_function_with_named_rules():
    source = tiny_model().state_dict()
    # Same model: every weight copied, nothing fresh, nothing dropped.
    plan = map_weights(source, tiny_model().state_dict())
    assert set(plan.sources) == set(source) and not plan.fresh and not plan.dropped
    # Another class count: a new head, the old one left out on purpose.
    seven = {**source, "head.weight": torch.zeros(7, 16), "head.bias": torch.zeros(7)}
    plan = map_weights(seven, tiny_model().state_dict())
    assert sorted(plan.fresh) == ["head.bias", "head.weight"]
    assert sorted(plan.dropped) == ["head.bias", "head.weight"]
    # A learned solver's coefficients: fresh into it, dropped out of it.
    learned = tiny_model(**{"solver.method": "rk2-learned"}).state_dict()
    into = map_weights(source, learned)
    assert into.fresh and all(".coef." in n for n in into.fresh)
    out_of = map_weights(learned, tiny_model().state_dict())
    assert out_of.dropped and all(".coef." in n for n in out_of.dropped)
    # Anything else left over is refused.
    with pytest.raises(Refusal) as e:
        map_weights({**source, "extra.weight": torch.zeros(1)}, tiny_model().state_dict())
    assert "(extra.weight)" in e.value.what


def test_fewer_groups_over_the_same_depth_start_from_the_mean_of_their_layers(
    trained_run, tmp_path
):
    """From a run of two groups (G = D = 2), one shared group: each of its weights is the
    mean of the two layers' (computed here from the checkpoint, weight by weight)."""
    from odetx.artefacts import load_checkpoint
    from odetx.training.transfer import init_from

    shared = tiny_model(**{"model.groups": 1})
    cfg = build_config(overrides={"model.dim": 16, "model.depth": 2, "model.heads": 2,
                                  "model.groups": 1})  # fmt: skip
    assert init_from(shared, trained_run, cfg.model) == []
    saved = load_checkpoint(trained_run / "best.pt")
    state = saved.get("model_ema", saved["model"])
    mine = shared.state_dict()
    for name, value in mine.items():
        if name.startswith("stack.blocks.0."):
            rest = name[len("stack.blocks.0.") :]
            a, b = state[f"stack.blocks.0.{rest}"], state[f"stack.blocks.1.{rest}"]
            assert torch.allclose(value, (a + b) / 2), name
        else:
            assert torch.equal(value, state[name]), name
    # Groups that do not divide the checkpoint's, or another depth, are still refused.
    with pytest.raises(Refusal):
        map_weights(state, tiny_model(**{"model.depth": 3, "model.groups": 1}).state_dict())
