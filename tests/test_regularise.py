import csv
import math

import pytest
import torch
from torch import nn

from odetx.errors import ConfigError
from odetx.resolve import build_config
from odetx.solvers import TABLEAUS, FixedStepIntegrator
from odetx.solvers.adaptive import AdaptiveIntegrator
from odetx.training import Trainer
from odetx.training.regularise import Terms, collecting, hutchinson
from tests.problems import UNSPLIT, FunctionField

# Rotation plus decay: AᵀA = 1.09 I, so ‖A x(t)‖² = 1.09 e^{-0.6 t} ‖x0‖² in closed form.
A = torch.tensor([[-0.3, 1.0], [-1.0, -0.3]], dtype=torch.float64)


def linear(t, x):
    return x @ A.T


class Stack(nn.Module):
    def __init__(self, *blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_fixed_step_kinetic_is_the_quadrature_of_the_stages():
    x0 = torch.tensor([[[1.0, 2.0], [0.5, -1.0]]], dtype=torch.float64)  # (B=1, N=2, d=2)
    steps, t1 = 2, 1.0
    block = FixedStepIntegrator(
        FunctionField(linear), TABLEAUS["midpoint"], UNSPLIT, steps, 0.0, t1
    )
    with collecting(Stack(block), Terms(kinetic=1.0)) as reg:
        out = block(x0)
    # By hand: midpoint's stages k1 = f(x), k2 = f(x + h/2 k1); weights b = (0, 1).
    h, x, expected = t1 / steps, x0.clone(), 0.0
    for _ in range(steps):
        k1 = linear(0, x)
        k2 = linear(0, x + 0.5 * h * k1)
        expected += h * (k2**2).sum(-1).mean().item()
        x = x + h * k2
    assert reg.kinetic.item() == pytest.approx(expected, rel=1e-12)
    assert torch.allclose(out, x, atol=1e-12)


def test_penalised_path_with_nothing_on_reproduces_the_integrator_bit_for_bit():
    torch.manual_seed(0)
    field = FunctionField(lambda t, x: torch.tanh(x @ A.T.float()) + 0.1 * t)
    block = FixedStepIntegrator(field, TABLEAUS["rk4"], [(0, 1.0), (1, 1.0)], 3, 0.0, 2.0)
    x0 = torch.randn(2, 3, 2)
    plain = block(x0)
    with collecting(Stack(block), Terms()):
        penalised = block(x0)
    assert torch.equal(plain, penalised)
    assert "forward" not in block.__dict__  # restored after the context


def test_adaptive_kinetic_matches_the_closed_form_and_counts_nfe():
    x0 = torch.tensor([[[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]], dtype=torch.float64)
    t1 = 1.5
    block = AdaptiveIntegrator(FunctionField(linear), "dopri5", UNSPLIT, 1, 0.0, t1, 1e-9, 1e-10)
    with collecting(Stack(block), Terms(kinetic=1.0)) as reg:
        out = block(x0)
    norms = (x0**2).sum(-1).mean().item()
    exact = 1.09 * norms * (1.0 - math.exp(-0.6 * t1)) / 0.6
    assert reg.kinetic.item() == pytest.approx(exact, rel=1e-6)
    expected_x = x0 @ torch.linalg.matrix_exp(A * t1).T
    assert torch.allclose(out, expected_x, atol=1e-7)
    assert block.nfe() >= 6


def test_hutchinson_mean_is_the_exact_frobenius_norm():
    torch.manual_seed(0)
    w = torch.randn(3, 3, dtype=torch.float64)

    def f(x):
        return torch.tanh(x @ w) * 1.5

    x = torch.tensor([0.3, -0.7, 0.2], dtype=torch.float64)
    exact = (torch.autograd.functional.jacobian(f, x) ** 2).sum().item()
    # The field acts token by token, so P copies of x as P tokens give P independent probes.
    probes = x.expand(1, 40_000, 3).clone().requires_grad_()
    estimate = hutchinson(f(probes), probes).item()
    assert estimate == pytest.approx(exact, rel=0.03)


def test_steer_end_times_lie_in_the_band_and_eval_is_unperturbed():
    torch.manual_seed(0)
    tab = TABLEAUS["euler"]
    blocks = [
        FixedStepIntegrator(FunctionField(linear), tab, UNSPLIT, 4, g, g + 1.0) for g in (0, 1)
    ]
    stack = Stack(*blocks)
    x0 = torch.tensor([[[1.0, 0.5]]], dtype=torch.float64)
    ends = []
    for _ in range(50):
        with collecting(stack, Terms(steer=0.25)) as reg:
            out = stack(x0)
        ends.append(reg.end_times)
        # The perturbed spans, integrated by plain integrators of those spans.
        ref = x0
        for g, t1 in enumerate(reg.end_times):
            ref = FixedStepIntegrator(FunctionField(linear), tab, UNSPLIT, 4, g, t1)(ref)
        assert torch.allclose(out, ref, atol=1e-12)
    for g in (0, 1):
        got = [e[g] for e in ends]
        assert all(g + 0.75 <= t <= g + 1.25 for t in got)
        assert max(got) - min(got) > 0.1  # they do move
    plain = stack(x0)
    assert torch.equal(plain, stack(x0))
    ref = FixedStepIntegrator(FunctionField(linear), tab, UNSPLIT, 8, 0.0, 2.0)(x0)
    assert torch.allclose(plain, ref, atol=1e-12)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"train.reg_kinetic": -0.1}, "train.reg_kinetic"),
        ({"train.reg_jacobian": float("nan")}, "train.reg_jacobian"),
        ({"train.steer": 2.0, "model.depth": 4, "model.groups": 2}, "train.steer"),
        ({"train.reg_kinetic": 0.1, "solver.method": "dopri5", "solver.adjoint": True}, "adjoint"),
    ],
)
def test_config_refuses_bad_regularisation(overrides, key):
    with pytest.raises(ConfigError, match=key):
        build_config(overrides=overrides)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"solver__method": "rk4", "model__arch": "strang"}, marks=pytest.mark.slow),
        {
            "solver__method": "dopri5",
            "solver__rtol": 1e-2,
            "solver__atol": 1e-2,
            "model__groups": 1,
        },
    ],
)
def test_training_logs_each_term(tmp_path, tiny_config, extra):
    cfg = tiny_config(
        train__epochs=1,
        train__reg_kinetic=0.05,
        train__reg_jacobian=0.01,
        train__steer=0.2,
        **extra,
    )
    Trainer(cfg, tmp_path / "run").fit()
    row = next(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert float(row["reg_kinetic"]) > 0 and float(row["reg_jacobian"]) > 0
    assert math.isfinite(float(row["train_loss"]))


def test_terms_off_add_no_columns(trained_run):
    header = (trained_run / "metrics.csv").read_text().splitlines()[0]
    assert "reg_" not in header
