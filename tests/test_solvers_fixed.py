import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from odetx.solvers import TABLEAUS, FixedStepIntegrator
from odetx.solvers.tableau import ButcherTableau
from tests.problems import UNSPLIT, FunctionField, linear_problem, time_dependent_problem

# odetx name -> torchdiffeq fixed-grid method with the same tableau
# (torchdiffeq's "rk4" is Kutta's 3/8 rule; its "heun2" is Heun's trapezoidal rule).
TORCHDIFFEQ_TWIN = {"euler": "euler", "midpoint": "midpoint", "heun": "heun2", "rk38": "rk4"}


def integrate(name, f, y0, t0, t1, steps):
    return FixedStepIntegrator(FunctionField(f), TABLEAUS[name], UNSPLIT, steps, t0, t1)(y0)


@pytest.mark.parametrize("name", sorted(TORCHDIFFEQ_TWIN))
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_matches_torchdiffeq_fixed_grid(name, steps):
    torch.manual_seed(0)
    w = torch.randn(16, 16) / 4
    y0 = torch.randn(5, 16)

    def f(t, y):
        return torch.tanh(y @ w) * (1.0 + 0.5 * math.sin(float(t)))

    t0, t1 = 0.0, 1.5
    ours = integrate(name, f, y0, t0, t1, steps)
    grid = torch.linspace(t0, t1, steps + 1)
    theirs = odeint(f, y0, grid, method=TORCHDIFFEQ_TWIN[name])[-1]
    torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=2e-6)


def _classic_rk4_step(f, t, y, h):
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _ralston_step(f, t, y, h):
    k1 = f(t, y)
    k2 = f(t + 2 * h / 3, y + 2 * h / 3 * k1)
    return y + h * (k1 / 4 + 3 * k2 / 4)


@pytest.mark.parametrize("name,step", [("rk4", _classic_rk4_step), ("ralston", _ralston_step)])
def test_matches_handwritten_step(name, step):
    f, y0, _ = time_dependent_problem()
    y, h = y0, 0.25
    for n in range(4):
        y = step(f, n * h, y, h)
    torch.testing.assert_close(integrate(name, f, y0, 0.0, 1.0, 4), y, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", TABLEAUS.names())
def test_stage_times_are_t0_plus_c_dt(name):
    tab = TABLEAUS[name]
    field = FunctionField(lambda t, y: y)
    FixedStepIntegrator(field, tab, UNSPLIT, steps=2, t0=1.0, t1=2.0)(torch.ones(1))
    expected = [t0 + c * 0.5 for t0 in (1.0, 1.5) for c in tab.c]
    assert field.calls == pytest.approx(expected, abs=1e-12)


EXPECTED_ORDER = {"euler": 1, "midpoint": 2, "heun": 2, "ralston": 2, "rk4": 4, "rk38": 4}


def test_every_registered_tableau_has_an_expected_order():
    assert set(TABLEAUS.names()) == set(EXPECTED_ORDER)


@pytest.mark.parametrize("name", sorted(EXPECTED_ORDER))
@pytest.mark.parametrize("problem", [linear_problem, time_dependent_problem])
def test_empirical_convergence_order(name, problem):
    f, y0, exact = problem()
    steps = [16, 32, 64, 128]  # past the pre-asymptotic range of every method here
    errors = [(integrate(name, f, y0, 0.0, 2.0, n) - exact(2.0)).abs().max().item() for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(EXPECTED_ORDER[name], abs=0.25)
    assert TABLEAUS[name].order == EXPECTED_ORDER[name]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(c=(0.0, 0.5), a=((), (0.4,)), b=(0.0, 1.0)), "row 1 of a sums"),
        (dict(c=(0.0, 0.5), a=((), (0.5,)), b=(0.2, 0.7)), "b sums"),
        (dict(c=(0.0, 0.5), a=((), (0.25, 0.25)), b=(0.0, 1.0)), "explicit"),
        (dict(c=(0.0,), a=((), (0.5,)), b=(0.0, 1.0)), "stages"),
    ],
)
def test_tableau_refuses_inconsistent_coefficients(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ButcherTableau("bad", 2, **kwargs)


def test_scripted_integrator_matches_eager_and_steps_stay_runtime():
    from odetx.models.fields import LayerField

    torch.manual_seed(0)
    field = LayerField(16, 2, 2.0)
    block = FixedStepIntegrator(field, TABLEAUS["rk4"], UNSPLIT, steps=2).eval()
    scripted = torch.jit.script(block)
    x = torch.randn(3, 5, 16)
    two = scripted(x)
    torch.testing.assert_close(two, block(x))
    scripted.steps = 5
    block.steps = 5
    five = scripted(x)
    torch.testing.assert_close(five, block(x))
    assert (five - two).abs().max() > 1e-6  # the new step count was used, not a baked-in one
