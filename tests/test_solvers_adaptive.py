import pytest
import torch
from torchdiffeq import odeint

from odetx.config import SolverConfig
from odetx.errors import ConfigError, SolverError
from odetx.models.fields import LayerField
from odetx.solvers import ADAPTIVE, AdaptiveIntegrator, validate_solver
from tests.problems import UNSPLIT, FunctionField, linear_problem


@pytest.mark.parametrize(
    "method",
    [
        # The second-order pair needs thousands of steps at this tolerance (seconds).
        pytest.param(m, marks=pytest.mark.slow) if m == "adaptive_heun" else m
        for m in ADAPTIVE.names()
    ],
)
def test_adaptive_reaches_the_exact_solution_within_tolerance(method):
    f, y0, exact = linear_problem()
    block = AdaptiveIntegrator(
        FunctionField(f), method, UNSPLIT, t1=2.0, rtol=1e-7, atol=1e-9, max_num_steps=100_000
    )
    torch.testing.assert_close(block(y0), exact(2.0), rtol=1e-5, atol=1e-5)


def test_nfe_equals_torchdiffeq_count_for_the_unsplit_field():
    torch.manual_seed(0)
    w = torch.randn(8, 8) / 3
    y0 = torch.randn(4, 8)
    calls = []

    def f(t, y):
        calls.append(1)
        return torch.tanh(y @ w)

    expected = odeint(f, y0, torch.tensor([0.0, 3.0]), method="dopri5", rtol=1e-5, atol=1e-6)[-1]
    block = AdaptiveIntegrator(
        FunctionField(lambda t, y: torch.tanh(y @ w)),
        "dopri5",
        UNSPLIT,
        t0=0.0,
        t1=3.0,
        rtol=1e-5,
        atol=1e-6,
    )
    torch.testing.assert_close(block(y0), expected)
    assert block.nfe() == len(calls) > 6
    block.reset_nfe()
    assert block.nfe() == 0


def _field():
    torch.manual_seed(0)
    return LayerField(8, 2, 2.0).double()


@pytest.mark.parametrize("scheme", [[(2, 1.0)], [(0, 1.0), (1, 1.0)]])
def test_adjoint_gradients_match_direct_backprop(scheme):
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads, nfe_forward, nfe_total = {}, {}, {}
    for adjoint in (False, True):
        field = _field()
        block = AdaptiveIntegrator(
            field, "dopri5", scheme, rtol=1e-9, atol=1e-10, adjoint=adjoint, max_num_steps=10_000
        )
        xi = x.clone().requires_grad_(True)
        loss = (block(xi) ** 2).sum()
        nfe_forward[adjoint] = block.nfe()
        loss.backward()
        nfe_total[adjoint] = block.nfe()
        grads[adjoint] = {n: p.grad.clone() for n, p in field.named_parameters()}
        grads[adjoint]["input"] = xi.grad.clone()
    assert set(grads[True]) == set(grads[False])
    for name, g in grads[False].items():
        assert g.abs().sum() > 0, f"{name} received no gradient"
        torch.testing.assert_close(grads[True][name], g, rtol=1e-5, atol=1e-7, msg=name)
    # The forward solves are the same; backprop through them evaluates no field, while the
    # adjoint solves backwards in time, and its evaluations count too.
    assert nfe_forward[True] == nfe_forward[False]
    assert nfe_total[False] == nfe_forward[False]
    assert nfe_total[True] > nfe_forward[True]


def _noisy_block(adjoint=False, rtol=1e-6, max_num_steps=400):
    torch.manual_seed(0)
    field = LayerField(8, 2, 2.0, dropout=0.3).double()
    return field, AdaptiveIntegrator(
        field,
        "dopri5",
        UNSPLIT,
        t1=2.0,
        rtol=rtol,
        atol=rtol / 100,
        adjoint=adjoint,
        max_num_steps=max_num_steps,
    )


def test_dropout_redrawn_at_every_evaluation_would_make_a_solve_endless_so_it_is_held():
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, block = _noisy_block()
    with torch.no_grad():
        block.eval()
        clean = block(x)
        nfe_eval = block.nfe()
        block.reset_nfe()
        block.train()
        noisy = [block(x) for _ in range(2)]
    # One fixed field per solve: about the clean field's cost, where a field that
    # changes at every stage exhausts any step budget (its error estimate is the noise).
    assert block.nfe() / 2 <= 2 * nfe_eval
    # The masks are redrawn between solves, and they do act.
    assert not torch.allclose(noisy[0], noisy[1])
    assert not torch.allclose(noisy[0], clean)


def test_the_adjoint_sees_the_masks_its_forward_solve_drew():
    x = torch.randn(2, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = {}
    for adjoint in (False, True):
        field, block = _noisy_block(adjoint, rtol=1e-9, max_num_steps=10_000)
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(5)  # the same masks in both runs
        (block(xi) ** 2).sum().backward()
        grads[adjoint] = [xi.grad, *(p.grad for p in field.parameters())]
    for direct, adjoint in zip(grads[False], grads[True], strict=True):
        torch.testing.assert_close(adjoint, direct, rtol=1e-5, atol=1e-7)


def test_max_num_steps_fails_with_advice_not_a_hang():
    f, y0, _ = linear_problem()
    block = AdaptiveIntegrator(
        FunctionField(lambda t, y: 50.0 * f(t, y)),
        "dopri5",
        UNSPLIT,
        t1=10.0,
        rtol=1e-10,
        atol=1e-12,
        max_num_steps=5,
    )
    with pytest.raises(SolverError, match="max_num_steps=5.*loosen rtol/atol.*fixed-step"):
        block(y0)


@pytest.mark.parametrize(
    "cfg,key",
    [
        (SolverConfig(method="euler", rtol=1e-3), "solver.rtol"),
        (SolverConfig(method="rk4", atol=1e-3), "solver.atol"),
        (SolverConfig(method="rk4", max_num_steps=10), "solver.max_num_steps"),
        (SolverConfig(method="euler", adjoint=True), "solver.adjoint"),
        (SolverConfig(method="rk4", steps=0), "solver.steps"),
        (SolverConfig(method="dopri5", rtol=-1.0), "solver.rtol"),
        (SolverConfig(method="rk5"), "solver.method"),
    ],
)
def test_invalid_solver_options_are_refused(cfg, key):
    with pytest.raises(ConfigError) as info:
        validate_solver(cfg)
    assert info.value.key == key
