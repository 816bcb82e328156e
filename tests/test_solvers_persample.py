"""odetx's per-sample embedded Runge–Kutta integrator, against independent references:
analytic solutions, torchdiffeq's dopri5, each sample solved alone, and the orders."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError, SolverError
from odetx.models.fields import LayerField
from odetx.resolve import create_model
from odetx.solvers import EMBEDDED, TABLEAUS, FixedStepIntegrator, validate_solver
from odetx.solvers.embedded import EmbeddedTableau
from odetx.solvers.persample import PerSampleIntegrator, per_sample_nfe
from tests.problems import UNSPLIT, FunctionField, linear_problem, time_dependent_problem

SPLIT = [(0, 1.0), (1, 1.0)]


def per_sample(f, tableau="dopri5", t1=2.0, rtol=1e-6, atol=1e-8, timed=True, **kw):
    field = f if isinstance(f, torch.nn.Module) else FunctionField(f)
    kw.setdefault("max_num_steps", 100_000)
    return PerSampleIntegrator(
        field, EMBEDDED[tableau], kw.pop("substeps", UNSPLIT), t1=t1, rtol=rtol, atol=atol,
        time_dependent=timed, **kw,
    ).eval()  # fmt: skip


def tanh_problem(seed=0, batch=5):
    """dy/dt = tanh(y W): samples of very different scales, so their steps differ."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(6, 6, generator=g, dtype=torch.float64) / 2
    scales = torch.logspace(-1, 0.7, batch, dtype=torch.float64)[:, None]
    y0 = torch.randn(batch, 6, generator=g, dtype=torch.float64) * scales
    return (lambda t, y: torch.tanh(y @ w) * 2.0), y0


# ------------------------------------------------------------------ the pairs


@pytest.mark.parametrize("name", EMBEDDED.names())
def test_pairs_check_themselves_and_know_fsal(name):
    pair = EMBEDDED[name]
    assert abs(sum(pair.error)) < 1e-12 and pair.error_order < pair.order
    assert pair.fsal == (name != "adaptive_heun")


def test_a_pair_whose_error_row_does_not_sum_to_zero_is_refused():
    with pytest.raises(ValueError, match="error row sums"):
        EmbeddedTableau("bad", 2, (0.0, 1.0), ((), (1.0,)), (0.5, 0.5), error=(0.5, 0.4),
                        error_order=1)  # fmt: skip


@pytest.mark.parametrize("name", EMBEDDED.names())
@pytest.mark.parametrize("embedded", [False, True])
def test_both_rows_of_each_pair_have_their_order(name, embedded):
    """Fixed steps with the propagated row b and with b̂ = b − error: the log-log slope of
    the error against the step count is the declared order (a wrong coefficient breaks it)."""
    pair = EMBEDDED[name]
    tab = pair.embedded if embedded else pair
    order = pair.error_order if embedded else pair.order
    f, y0, exact = linear_problem()
    steps = [8, 16, 32]
    errs = [
        float((FixedStepIntegrator(FunctionField(f), tab, UNSPLIT, n, 0.0, 2.0)(y0)
               - exact(2.0)).abs().max())
        for n in steps
    ]  # fmt: skip
    slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.3, (slope, order)


def test_tsit5_is_no_torchdiffeq_method_and_odetx_owns_the_per_sample_pairs():
    assert set(EMBEDDED.names()) >= {"dopri5", "bosh3", "adaptive_heun", "tsit5"}
    assert "tsit5" not in TABLEAUS.names()


# ------------------------------------------------------------------ against references


@pytest.mark.parametrize("name", EMBEDDED.names())
def test_reaches_the_exact_solution_within_tolerance(name):
    f, y0, exact = linear_problem()
    tol = 1e-7 if name != "adaptive_heun" else 1e-5
    out = per_sample(f, name, t1=2.0, rtol=tol, atol=tol / 100)(y0[None])[0]
    torch.testing.assert_close(out, exact(2.0), rtol=100 * tol, atol=100 * tol)


def test_agrees_with_torchdiffeq_dopri5_within_the_tolerances():
    f, y0 = tanh_problem()
    span = torch.tensor([0.0, 2.0], dtype=torch.float64)
    truth = odeint(f, y0, span, rtol=1e-12, atol=1e-12)[-1]
    for rtol in (1e-3, 1e-5):
        ours = per_sample(f, rtol=rtol, atol=rtol)(y0)
        theirs = torch.stack(  # torchdiffeq with each sample alone: the same contract
            [odeint(f, y0[i], span, rtol=rtol, atol=rtol, method="dopri5")[-1]
             for i in range(len(y0))]
        )  # fmt: skip
        scale = rtol * (1 + truth.abs())
        assert ((ours - truth).abs() / scale).max() < 10
        assert ((ours - theirs).abs() / scale).max() < 10


@pytest.mark.parametrize("rtol", [1e-3, 1e-5])
def test_the_integral_controller_steps_as_torchdiffeq_does_on_one_sample(rtol):
    """The default controller is torchdiffeq's rule. Given torchdiffeq's error row (its
    dopri5 estimates the error with Shampine's b̂, 2/3 of the DOPRI5 row odetx uses),
    each sample evaluates its field at the times torchdiffeq's dopri5 does on that sample
    alone, but for the last step (torchdiffeq steps past the end and interpolates; odetx
    lands on it). Field evaluation times pin down the initial step and every step size."""
    from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU as theirs_tableau

    pair = dataclasses.replace(
        EMBEDDED["dopri5"], error=tuple(float(e) for e in theirs_tableau.c_error)
    )
    f, y0 = tanh_problem(batch=8)
    span = torch.tensor([0.0, 2.0], dtype=torch.float64)
    stages = pair.stages - 1  # FSAL
    for i in range(len(y0)):
        ours = FunctionField(f)
        block = PerSampleIntegrator(
            ours, pair, UNSPLIT, t1=2.0, rtol=rtol, atol=rtol, max_num_steps=100_000
        )
        block(y0[i : i + 1])
        theirs = FunctionField(f)
        odeint(lambda t, y, c=theirs: c(0, t, y[None])[0], y0[i], span, rtol=rtol, atol=rtol,
               method="dopri5")  # fmt: skip
        common = len(ours.calls) - stages  # all but odetx's last step
        assert common >= 2 + stages and abs(len(ours.calls) - len(theirs.calls)) <= stages
        np.testing.assert_allclose(ours.calls[:common], theirs.calls[:common], rtol=1e-9)
    block = per_sample(f, rtol=rtol, atol=rtol, controller="integral")
    block(y0)
    pi = per_sample(f, rtol=rtol, atol=rtol, controller="pi")
    pi(y0)
    assert pi.controller == "pi" and (pi.sample_nfe - block.sample_nfe).abs().sum() > 0


def reference_step_times(f, y0, t1, h, pair, rtol, atol, alpha, beta, accept_min):
    """Field evaluation times (and rejections) of a plainly written adaptive loop, the controller as
    documented: after a step with error ratio ε, h ← h·clamp(0.9·ε^(−α/k)·ε_prev^(β/k),
    accept_min, 10) if accepted, else h·clamp(0.9·ε^(−α/k), 0.2, 1)."""
    k = pair.error_order + 1
    t, y, prev, times, rejected = 0.0, y0, 1.0, [], 0
    k1 = f(t, y)
    while True:
        last = h >= t1 - t
        step = t1 - t if last else h
        ks = [k1]
        for i in range(1, pair.stages):
            yi = y + step * sum(a * kj for a, kj in zip(pair.a[i], ks, strict=False))
            ti = t1 if last and pair.c[i] == 1.0 else t + pair.c[i] * step
            times.append(ti)
            ks.append(f(ti, yi))
        y1 = y + step * sum(b * kj for b, kj in zip(pair.b, ks, strict=True))
        err = step * sum(e * kj for e, kj in zip(pair.error, ks, strict=True))
        eps = float((err / (atol + rtol * torch.maximum(y.abs(), y1.abs()))).pow(2).mean().sqrt())
        grow = 0.9 * max(eps, 1e-10) ** (-alpha / k)
        if eps <= 1.0:
            if last:
                return times, rejected
            t, y, k1 = t + step, y1, ks[-1]
            h = step * min(10.0, max(accept_min, grow * prev ** (beta / k)))
            prev = max(eps, 1e-4)
        else:
            h, rejected = step * min(1.0, max(0.2, grow)), rejected + 1


@pytest.mark.parametrize(("controller", "alpha", "beta", "accept_min"),
                         [("integral", 1.0, 0.0, 1.0), ("pi", 0.7, 0.4, 0.2)])  # fmt: skip
def test_each_controller_steps_as_a_plainly_written_loop_does(controller, alpha, beta, accept_min):
    # The decay rate rises from 1 to 301 around t = 1: steps grown on the slow part are
    # rejected there, after accepted steps (so the PI rule's memory matters).
    f = lambda t, y: -(1.0 + 300.0 / (1.0 + math.exp(-30.0 * (float(t) - 1.0)))) * y  # noqa: E731
    y0 = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64)
    pair = EMBEDDED["dopri5"]
    ours = FunctionField(f)
    per_sample(ours, t1=2.0, rtol=1e-4, atol=1e-6, controller=controller)(y0)
    h0 = ours.calls[2] / pair.c[1]  # the first step's second stage sits at c₂·h₀
    want, rejected = reference_step_times(f, y0, 2.0, h0, pair, 1e-4, 1e-6, alpha, beta,
                                          accept_min)  # fmt: skip
    assert rejected >= 3, rejected  # the rejection branch is exercised
    np.testing.assert_allclose(ours.calls[2:], want, rtol=1e-9)


@pytest.mark.parametrize("controller", ["integral", "pi"])
def test_both_controllers_meet_the_tolerance(controller):
    f, y0 = tanh_problem()
    span = torch.tensor([0.0, 2.0], dtype=torch.float64)
    truth = odeint(f, y0, span, rtol=1e-12, atol=1e-12)[-1]
    for rtol in (1e-3, 1e-6):
        ours = per_sample(f, rtol=rtol, atol=rtol, controller=controller)(y0)
        assert ((ours - truth).abs() / (rtol * (1 + truth.abs()))).max() < 10


def test_stage_times_are_t_plus_c_h():
    pair = EMBEDDED["dopri5"]
    field = FunctionField(lambda t, y: -y)
    per_sample(field, t1=1.0, rtol=1e-3, atol=1e-3)(torch.ones(1, 2, dtype=torch.float64))
    t = field.calls
    assert t[0] == 0.0 and t[1] > 0.0  # f(t0, x0), then Hairer's trial evaluation
    h = t[2] / pair.c[1]  # the first step's second stage sits at c_2 h
    assert t[2 : 2 + 6] == pytest.approx([c * h for c in pair.c[1:]], abs=1e-12)


def test_global_error_follows_the_order_as_the_tolerance_shrinks():
    """err ∝ h^p and NFE ∝ 1/h: the slope of log err against log NFE is −p."""
    f, y0, exact = linear_problem()
    for name, tols in (("dopri5", [1e-5, 1e-7, 1e-9, 1e-11]), ("bosh3", [1e-4, 1e-6, 1e-8])):
        nfe, err = [], []
        for tol in tols:
            block = per_sample(f, name, t1=6.0, rtol=tol, atol=tol)
            err.append(float((block(y0[None])[0] - exact(6.0)).abs().max()))
            nfe.append(float(block.sample_nfe[0]))
        slope = -np.polyfit(np.log(nfe), np.log(err), 1)[0]
        assert abs(slope - EMBEDDED[name].order) < 1.0, (name, slope, nfe, err)


# ------------------------------------------------------------------ one sample, one solve


def test_each_sample_equals_solving_it_alone_while_batch_shared_steps_do_not():
    f, y0 = tanh_problem()
    block = per_sample(f, rtol=1e-4, atol=1e-4)
    batched = block(y0)
    nfe = block.sample_nfe.clone()
    for i in range(len(y0)):
        alone = block(y0[i : i + 1])
        assert torch.equal(alone[0], batched[i])
        assert block.sample_nfe[0] == nfe[i]
    assert nfe.max() > nfe.min()  # the samples really took different steps
    span = torch.tensor([0.0, 2.0], dtype=torch.float64)
    shared = odeint(f, y0, span, rtol=1e-4, atol=1e-4)[-1]
    alone = odeint(f, y0[:1], span, rtol=1e-4, atol=1e-4)[-1]
    assert (shared[0] - alone[0]).abs().max() > 1e-9  # torchdiffeq's depends on the batch


def test_finished_samples_leave_the_batch():
    f, y0 = tanh_problem()
    field = FunctionField(f)
    sizes = []
    field.f = lambda t, y: (sizes.append(y.shape[0]), f(t, y))[1]
    block = per_sample(field, rtol=1e-5, atol=1e-5, timed=False)
    block(y0)
    assert sizes[0] == len(y0) and sizes[-1] < len(y0) and sorted(sizes, reverse=True) == sizes
    # Field evaluations went to active samples only: their sum is the sum of per-sample NFEs.
    assert sum(sizes) == block.sample_nfe.sum()


def test_time_dependent_fields_see_each_samples_own_time():
    f, y0, exact = time_dependent_problem()
    batch = torch.stack([y0, 30 * y0, 0.01 * y0])
    block = per_sample(f, rtol=1e-8, atol=1e-10)
    out = block(batch)
    for i in range(3):
        torch.testing.assert_close(out[i], batch[i] * math.exp(math.sin(2.0)), rtol=1e-6, atol=1e-8)
    assert len(set(block.sample_nfe.tolist())) > 1


def test_max_num_steps_is_one_line_with_advice():
    f, y0, _ = linear_problem()
    block = per_sample(lambda t, y: 50 * f(t, y), rtol=1e-10, atol=1e-12, max_num_steps=5)
    with pytest.raises(SolverError, match="max_num_steps=5.*loosen rtol/atol"):
        block(y0[None])


# ------------------------------------------------------------------ fields and models


def _layer(dropout=0.0):
    torch.manual_seed(0)
    field = LayerField(8, 2, 2.0, dropout=dropout).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(3.0)  # far from the identity: samples need different steps
    return field


def _tokens(lengths=(7, 3, 5)):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(lengths), 7, 8, generator=g, dtype=torch.float64)
    mask = torch.arange(7)[None, :] < torch.tensor(lengths)[:, None]
    return x, mask


@pytest.mark.parametrize("substeps", [UNSPLIT, SPLIT])
def test_padding_is_neither_integrated_into_the_error_nor_into_other_samples(substeps):
    x, mask = _tokens()
    block = per_sample(_layer(), substeps=substeps, rtol=1e-4, atol=1e-4, timed=False)
    out = block(x, mask)
    nfe = block.sample_nfe.clone()
    noisy = x.masked_fill(~mask[..., None], 1e3)  # wild values in the padding
    out2 = block(noisy, mask)
    real = mask[..., None]
    torch.testing.assert_close(out * real, out2 * real, rtol=1e-12, atol=1e-12)
    assert torch.equal(block.sample_nfe, nfe)
    for i in range(len(x)):  # the same steps; the states to rounding, over ~75 steps
        alone = block(x[i : i + 1], mask[i : i + 1])
        assert block.sample_nfe[0] == nfe[i]
        torch.testing.assert_close(alone[0], out[i], rtol=1e-9, atol=1e-9)


def test_training_backpropagates_to_every_parameter_and_holds_dropout_fixed():
    x, mask = _tokens()
    field = _layer(dropout=0.2)
    block = per_sample(field, rtol=1e-3, atol=1e-3, timed=False)
    with torch.no_grad():
        block(x, mask)
    eval_nfe = float(block.sample_nfe.max())
    block.train()
    out = block(x, mask)
    # One field per solve: about the clean field's cost (redrawn masks would exhaust steps).
    assert float(block.sample_nfe.max()) <= 2 * eval_nfe
    (out * mask[..., None]).pow(2).sum().backward()
    for name, p in field.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_gradients_of_a_sample_do_not_depend_on_the_batch():
    x, mask = _tokens()
    block = per_sample(_layer(), rtol=1e-4, atol=1e-4, timed=False)
    xb = x.clone().requires_grad_(True)
    block(xb, mask)[0].pow(2).sum().backward()
    x0 = x[:1].clone().requires_grad_(True)
    block(x0, mask[:1]).pow(2).sum().backward()
    # to rounding, amplified through ~75 steps of a field far from the identity
    torch.testing.assert_close(xb.grad[0], x0.grad[0], rtol=1e-7, atol=1e-7)
    assert xb.grad[1:].abs().max() == 0


@pytest.mark.parametrize("controller", ["integral", "pi"])
def test_scripted_integrator_equals_eager_and_keeps_tolerances_at_runtime(controller):
    x, mask = _tokens()
    block = per_sample(
        _layer(), substeps=SPLIT, rtol=1e-3, atol=1e-3, timed=False, controller=controller
    )
    scripted = torch.jit.script(block)
    torch.testing.assert_close(scripted(x, mask), block(x, mask), rtol=0, atol=0)
    loose = scripted.sample_nfe.clone()
    scripted.rtol, scripted.atol = 1e-6, 1e-6
    scripted(x, mask)
    assert (scripted.sample_nfe > loose).all()


IMAGE = DataInfo("image", 10, image_size=8, in_chans=1)
TOKENS = DataInfo(kind="tokens", num_classes=5, vocab_size=12, max_len=16)
TEXT = DataInfo("text", num_classes=20, vocab_size=20, max_len=12)


def _inputs(info, batch=4):
    g = torch.Generator().manual_seed(2)
    if info.kind == "image":
        return (torch.randn(batch, 1, 8, 8, generator=g),)
    tokens = torch.randint(1, info.vocab_size, (batch, info.max_len), generator=g)
    if info.kind == "text":
        return (tokens,)
    mask = torch.arange(info.max_len)[None, :] < torch.tensor([16, 9, 3, 12])[:batch, None]
    return tokens.masked_fill(~mask, 0), mask


@pytest.mark.parametrize(
    "info,model",
    [
        (IMAGE, dict(preset="vit-micro", arch="parallel", groups=1)),
        (IMAGE, dict(preset="vit-micro", arch="sequential", groups=2)),
        (IMAGE, dict(preset="vit-micro", arch="strang", groups=1, time="film")),
        (IMAGE, dict(preset="vit-micro", arch="parallel", groups=1, time="basis", time_basis=2)),
        (TOKENS, dict(preset="enc-tiny", arch="parallel", groups=1)),
        (TEXT, dict(preset="gpt-tiny", arch="sequential", groups=1, context=12)),
    ],
)
def test_every_backbone_arch_and_time_mode_solves_each_sample_alone(info, model):
    torch.manual_seed(0)
    cfg = ModelConfig(**{"dim": 16, "depth": 2, "heads": 2, **model})
    solver = SolverConfig("dopri5", rtol=1e-3, atol=1e-3, per_sample=True)
    net = create_model(cfg, solver, info).double().eval()
    with torch.no_grad():
        for block in net.stack.blocks:
            for p in block.field.parameters():
                p.add_(0.3 * torch.randn_like(p))  # trained-looking, non-trivial dynamics
    inputs = [t.double() if t.is_floating_point() else t for t in _inputs(info)]
    with torch.no_grad():
        out = net(*inputs)
        nfe = per_sample_nfe(net.stack, len(out))
        for i in range(len(out)):
            alone = net(*(t[i : i + 1] for t in inputs))
            torch.testing.assert_close(alone[0], out[i], rtol=1e-9, atol=1e-9)
            assert per_sample_nfe(net.stack, 1)[0] == nfe[i]


@pytest.mark.parametrize(
    "cfg,key",
    [
        (SolverConfig("euler", per_sample=True), "solver.per_sample"),
        (SolverConfig("dopri8", per_sample=True), "solver.per_sample"),
        (SolverConfig("tsit5"), "solver.per_sample"),
        (SolverConfig("dopri5", per_sample=True, adjoint=True), "solver.adjoint"),
        (SolverConfig("dopri5", controller="pi"), "solver.controller"),
        (SolverConfig("dopri5", per_sample=True, controller="pid"), "solver.controller"),
    ],
)
def test_per_sample_options_are_refused_where_they_do_not_apply(cfg, key):
    with pytest.raises(ConfigError) as info:
        validate_solver(cfg)
    assert info.value.key == key
