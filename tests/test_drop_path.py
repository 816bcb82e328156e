"""Drop-path (``model.drop_path``): each sample's increment of a sub-field over one solver
step is dropped with the step's rate during training only, the kept ones rescaled."""

import math

import pytest
import torch

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.resolve import build_config, create_model
from odetx.solvers import TABLEAUS, FixedStepIntegrator
from odetx.solvers.learned import GatedRK2Integrator
from tests.conftest import TINY
from tests.problems import UNSPLIT, FunctionField

IMAGE = DataInfo("image", 10, image_size=8, in_chans=1)
A = torch.tensor([[-0.3, 1.0], [-1.0, -0.3]], dtype=torch.float64)


def linear(t, y):
    return y @ A.T


def one_step(p, cls=FixedStepIntegrator, method="heun", **kw):
    """One step over the whole stack, so its rate is ``p`` itself."""
    integ = cls(FunctionField(linear), TABLEAUS[method], UNSPLIT, 1, 0.0, 0.5, p, 0.5, **kw)
    return integ.double().train()


def test_rate_grows_linearly_over_depth_like_timm():
    p, depth = 0.3, 6
    integ = FixedStepIntegrator(FunctionField(linear), TABLEAUS["euler"], UNSPLIT, 6, 0, 6, p, 6)
    # timm: torch.linspace(0, p, depth)[i] for block i, one block per layer here
    expected = torch.linspace(0, p, depth, dtype=torch.float64).tolist()
    assert [integ.drop_rate(float(i), 1.0) for i in range(depth)] == pytest.approx(expected)
    # G = 2 groups of three half-size steps: the same line over the whole stack (depth 6)
    second = FixedStepIntegrator(FunctionField(linear), TABLEAUS["euler"], UNSPLIT, 6, 3, 6, p, 6)
    assert second.drop_rate(3.0, 0.5) == pytest.approx(p * 3.0 / 5.5)


@pytest.mark.parametrize(
    "cls,method", [(FixedStepIntegrator, "heun"), (GatedRK2Integrator, "heun")]
)
def test_expected_output_is_the_undropped_one_and_the_fraction_dropped_is_p(cls, method):
    p, n = 0.3, 40_000
    kw = {"width": 2} if cls is GatedRK2Integrator else {}
    integ = one_step(p, cls, method, **kw)
    y = torch.tensor([1.0, 0.5], dtype=torch.float64).repeat(n, 1)
    torch.manual_seed(0)
    out = integ(y)
    # Heun on dy/dt = A y: y + h/2 (A y + A (y + h A y)), by hand
    h, y0 = 0.5, y[0]
    k1 = A @ y0
    full = y0 + h / 2 * (k1 + A @ (y0 + h * k1))
    increment = full - y0
    dropped = (out == y0).all(dim=1)
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.double().mean().item() - p) < 5 * sd
    torch.testing.assert_close(out[~dropped], (y0 + increment / (1 - p)).expand_as(out[~dropped]))
    # E[out] = y0 + increment: the mean over samples, within five standard errors
    se = increment.abs() * math.sqrt(p / (1 - p) / n)
    assert ((out.mean(0) - full).abs() < 5 * se + 1e-12).all()


def test_eval_mode_and_rate_zero_are_the_undropped_step():
    y = torch.randn(64, 2, dtype=torch.float64)
    plain = one_step(0.0).eval()(y)
    h = 0.5
    k1 = y @ A.T
    by_hand = y + h / 2 * (k1 + (y + h * k1) @ A.T)
    torch.testing.assert_close(plain, by_hand, rtol=1e-15, atol=1e-15)
    assert torch.equal(one_step(0.7).eval()(y), plain)
    assert torch.equal(one_step(0.0).train()(y), plain)


def build(drop_path, method="rk4", arch="strang", groups=2):
    torch.manual_seed(0)
    model = ModelConfig(
        preset="vit-micro",
        dim=16,
        heads=2,
        depth=4,
        groups=groups,
        arch=arch,
        dropout=0.0,
        drop_path=drop_path,
    )
    return create_model(model, SolverConfig(method, steps=2), IMAGE)


@pytest.mark.parametrize("method", ["rk4", "rk2-learned"])
def test_a_model_with_drop_path_is_unchanged_in_eval_and_random_in_training(method):
    x = torch.randn(8, 1, 8, 8)
    with_drop, without = build(0.5, method), build(0.0, method)
    with torch.no_grad():
        assert torch.equal(with_drop.eval()(x), without.eval()(x))
        assert torch.equal(without.train()(x), without.eval()(x))  # dropout 0: train = eval
        with_drop.train()
        torch.manual_seed(1)
        a = with_drop(x)
        torch.manual_seed(2)
        assert not torch.equal(a, with_drop(x))


def test_scripted_and_exported_models_with_drop_path_equal_eager_in_eval():
    net = build(0.4, "rk2-learned").eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        eager = net(x)
        torch.testing.assert_close(torch.jit.script(net)(x), eager, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            torch.export.export(net, (x,)).module()(x), eager, rtol=1e-5, atol=1e-6
        )


def test_scripted_model_drops_in_training():
    scripted = torch.jit.script(build(0.9, "euler", arch="parallel").train())
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        torch.manual_seed(0)
        a = scripted(x)
        torch.manual_seed(1)
        assert not torch.equal(a, scripted(x))


@pytest.mark.parametrize("value", [1.0, -0.1, math.nan])
def test_out_of_range_values_are_refused(value):
    with pytest.raises(ConfigError, match="model.drop_path"):
        build_config(overrides={**TINY, "model.drop_path": value})


def test_adaptive_solvers_refuse_drop_path():
    with pytest.raises(ConfigError, match="model.drop_path.*fixed-step"):
        build_config(overrides={**TINY, "model.drop_path": 0.1, "solver.method": "dopri5"})
    assert build_config(overrides={**TINY, "model.drop_path": 0.1}).model.drop_path == 0.1
