"""``odetx.resolve``: resolving is done once and changes nothing the second time; the model
builder takes only what was resolved."""

import dataclasses
from pathlib import Path

import pytest

from odetx.config import ModelConfig, SolverConfig, load_config
from odetx.data.base import DataInfo
from odetx.models import build_model, resolve_model
from odetx.resolve import resolve

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
IMAGES = DataInfo("image", num_classes=10, image_size=8, in_chans=1)


@pytest.mark.parametrize(
    "file, overrides",
    [
        (None, {}),
        (None, {"model.groups": 2, "solver.method": "rk4", "solver.steps": 3}),
        (None, {"solver.method": "dopri5"}),  # tolerances left to the defaults
        (None, {"model.preset": "enc-tiny", "data.name": "parity"}),
        (CONFIG_DIR / "cifar100-deit-tiny.yaml", {}),
    ],
    ids=["default", "shared-rk4", "dopri5", "encoder", "deit-tiny"],
)
def test_resolving_a_resolved_config_returns_an_equal_config(file, overrides):
    parsed = load_config(file, overrides)
    once = resolve(parsed)
    assert once != parsed  # there was something to fill in (preset sizes, groups, tolerances)
    assert once.model.depth is not None and once.model.groups is not None
    assert resolve(once) == once
    assert resolve(resolve(once)) == once


def test_resolve_fills_in_what_the_preset_and_the_solver_defaults_say():
    cfg = resolve(load_config(overrides={"solver.method": "dopri5", "model.depth": 4}))
    # vit-micro's width (see `odetx list`), a group per layer, torchdiffeq-style tolerances.
    assert (cfg.model.depth, cfg.model.groups, cfg.model.dim) == (4, 4, 96)
    assert cfg.solver.rtol is not None and cfg.solver.atol is not None


def test_build_model_refuses_an_unresolved_model_config():
    with pytest.raises(ValueError, match="resolved ModelConfig"):
        build_model(ModelConfig(), SolverConfig(), IMAGES)


@pytest.mark.parametrize(
    "unset", ["depth", "groups", "dim", "heads", "mlp_ratio", "patch_size", "dropout"]
)
def test_build_model_refuses_a_partly_resolved_model_config(unset):
    resolved = resolve_model(ModelConfig(depth=2, dim=16, heads=2))
    build_model(resolved, SolverConfig(), IMAGES)  # whole, it builds
    with pytest.raises(ValueError, match=f"resolved ModelConfig.*{unset}"):
        build_model(dataclasses.replace(resolved, **{unset: None}), SolverConfig(), IMAGES)
