"""Time-dependent fields (model.time): exact reduction to the autonomous model, real
dependence on t, the stage times every solver evaluates at, causality, cache, export."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torchdiffeq import odeint
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import ARCHS
from odetx.models.fields import LayerField
from odetx.models.fused import FusedParallelField, fuse_state_dict, unfuse_state_dict
from odetx.models.kvcache import KVCache
from odetx.models.time import FILM_FREQS, FILM_PERIOD, TimeParts, legendre
from odetx.resolve import build_config, create_model
from odetx.solvers import build_integrator, resolve_solver
from odetx.solvers.field import BOTH, Field
from tests.test_export import make_checkpoint

IMAGES = DataInfo("image", 10, image_size=8, in_chans=1)
TEXT = DataInfo("text", 64, vocab_size=64, max_len=12)
FIXED = [SolverConfig("euler"), SolverConfig("rk4", steps=2)]
ADAPTIVE = [SolverConfig("dopri5", rtol=1e-4, atol=1e-5)]


def tiny(solver: SolverConfig, info: DataInfo = IMAGES, seed: int = 0, **kw) -> torch.nn.Module:
    preset = "gpt-tiny" if info.kind == "text" else "vit-micro"
    ctx = {"context": 12} if info.kind == "text" else {"patch_size": 4}
    torch.manual_seed(seed)
    kw = {"depth": 2, **kw}
    cfg = ModelConfig(preset=preset, dim=16, heads=2, **ctx, **kw)
    return create_model(cfg, solver, info).double().eval()


def perturb(model: torch.nn.Module, needle: str, seed: int = 1) -> None:
    """Give every parameter whose name contains ``needle`` random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if needle in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(5)).double()


# ---------------------------------------------------------------- exact reduction


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("solver", FIXED + ADAPTIVE, ids=lambda s: s.method)
def test_a_fresh_film_model_is_the_autonomous_one_exactly(arch, solver):
    plain = tiny(solver, arch=arch, groups=1)
    film = tiny(solver, arch=arch, groups=1, time="film")
    missing, unexpected = film.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".film." in k for k in missing)
    x = images()
    with torch.no_grad():
        assert torch.equal(film(x), plain(x))


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("solver", FIXED + ADAPTIVE, ids=lambda s: s.method)
def test_basis_with_one_term_is_the_autonomous_model_with_its_weights(arch, solver):
    plain = tiny(solver, arch=arch)
    basis = tiny(solver, arch=arch, time="basis", time_basis=1)
    own = basis.state_dict()
    copied = {
        k: v.unsqueeze(0) if own[k].dim() == v.dim() + 1 else v
        for k, v in plain.state_dict().items()
    }
    basis.load_state_dict(copied)  # strict: the same names, one term each
    x = images()
    with torch.no_grad():
        assert torch.equal(basis(x), plain(x))


def test_fresh_basis_coefficients_beyond_the_first_start_at_zero():
    model = tiny(SolverConfig("euler"), time="basis", time_basis=3)
    weights = [p for n, p in model.named_parameters() if ".field." in n]
    assert weights and all(p.shape[0] == 3 and not p[1:].any() for p in weights)
    assert all(p[0].any() for n, p in model.named_parameters() if n.endswith("qkv.weight"))


# ---------------------------------------------------------------- t changes the field


def field_at(field: Field, t: float, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return field(BOTH, t, x, None)


@pytest.mark.parametrize(
    "time, needle", [("film", "film.out"), ("basis", "weight")], ids=["film", "basis"]
)
def test_trained_time_weights_make_the_field_depend_on_t(time, needle):
    parts = TimeParts(time, 2 if time == "basis" else 1, 0.0, 3.0)
    field = LayerField(16, 2, 2.0, parts=parts).double()
    perturb(field, needle)
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0)).double()
    assert (field_at(field, 0.5, x) - field_at(field, 2.5, x)).abs().max() > 1e-3
    assert torch.equal(field_at(field, 1.25, x), field_at(field, 1.25, x))


def test_groups_at_different_spans_give_different_outputs_with_the_same_weights():
    """Two one-group stacks over [0, 1] and [1, 2] with the same film weights differ."""
    model = tiny(SolverConfig("euler"), groups=2, time="film")
    perturb(model, "film")
    a, b = model.stack.blocks
    b.load_state_dict(a.state_dict())
    h = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        assert (a(h) - b(h)).abs().max() > 1e-3


def test_basis_weights_are_legendre_expansions_written_out():
    """W(t) on [2, 6]: s = (t - 4) / 2; P0 = 1, P1 = s, P2 = (3 s² - 1) / 2 by hand."""
    field = LayerField(8, 2, 2.0, parts=TimeParts("basis", 3, 2.0, 6.0)).double()
    perturb(field, "")
    lin = field.attn.qkv
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1)).double()
    for t in (2.0, 3.0, 4.7, 6.0):
        s = (t - 4.0) / 2.0
        phi = [1.0, s, (3 * s * s - 1) / 2]
        w = sum(p * lin.weight[k] for k, p in enumerate(phi))
        b = sum(p * lin.bias[k] for k, p in enumerate(phi))
        with torch.no_grad():
            assert torch.allclose(lin(x, t), x @ w.T + b, atol=1e-12)
    assert legendre(0.3, 4) == pytest.approx(
        [1, 0.3, (3 * 0.09 - 1) / 2, (5 * 0.027 - 3 * 0.3) / 2]
    )


def test_film_modulation_matches_a_plain_reference():
    field = LayerField(8, 2, 2.0, parts=TimeParts("film")).double()
    perturb(field, "film")
    norm, x, t = field.norm_a, torch.randn(3, 8).double(), 2.5
    freqs = [2 * math.pi / FILM_PERIOD * 2.0**j for j in range(FILM_FREQS)]
    feats = torch.tensor([math.sin(f * t) for f in freqs] + [math.cos(f * t) for f in freqs])
    hidden = F.silu(feats.double() @ norm.film.hidden.weight.T + norm.film.hidden.bias)
    out = hidden @ norm.film.out_weight.T + norm.film.out_bias
    scale, shift = out[:8], out[8:]
    ref = F.layer_norm(x, (8,), norm.weight, norm.bias) * (1 + scale) + shift
    with torch.no_grad():
        assert torch.allclose(norm(x, t), ref, atol=1e-12)


# ---------------------------------------------------------------- the times solvers use


class Spy(Field):
    """dx/dt = -x, recording every t it is evaluated at."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def forward(self, which: int, t: float, x: torch.Tensor, mask=None) -> torch.Tensor:
        self.times.append(t)
        return -x


@pytest.mark.parametrize(
    "method, c",
    [("euler", [0.0]), ("midpoint", [0.0, 0.5]), ("rk4", [0.0, 0.5, 0.5, 1.0])],
)
def test_fixed_step_stages_see_t_plus_c_h(method, c):
    spy = Spy()
    solver = build_integrator(spy, SolverConfig(method, steps=3), [(BOTH, 1.0)], 2.0, 3.5)
    solver(torch.ones(2))
    h = 0.5
    expected = [2.0 + n * h + ci * h for n in range(3) for ci in c]
    assert spy.times == pytest.approx(expected, abs=1e-12)


def test_split_schemes_see_the_times_of_their_substeps():
    spy = Spy()
    strang = list(ARCHS["strang"].substeps)  # half M, A, half M
    solver = build_integrator(spy, SolverConfig("midpoint"), strang, 0.0, 2.0)
    solver(torch.ones(2))
    # h = 2: M over 1 (stages 0, 0.5), A over 2 (0, 1), M over 1 (0, 0.5): each from t = 0
    assert spy.times == pytest.approx([0.0, 0.5, 0.0, 1.0, 0.0, 0.5])


@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
def test_adaptive_solves_see_the_times_torchdiffeq_evaluates_at(method):
    spy = Spy()
    cfg = resolve_solver(SolverConfig(method, rtol=1e-6, atol=1e-8))
    build_integrator(spy, cfg, [(BOTH, 1.0)], 1.0, 4.0)(torch.ones(3, dtype=torch.float64))
    seen: list[float] = []

    def f(t, x):
        seen.append(float(t))
        return -x

    span = torch.tensor([1.0, 4.0], dtype=torch.float64)
    odeint(f, torch.ones(3, dtype=torch.float64), span, rtol=1e-6, atol=1e-8, method=method)
    assert len(seen) > 6 and spy.times == pytest.approx(seen, abs=1e-12)


# ---------------------------------------------------------------- language model


@pytest.mark.parametrize("time, needle", [("film", "film"), ("basis", "weight")])
@pytest.mark.parametrize("arch", ["sequential", "parallel"])
def test_a_time_dependent_gpt_stays_causal(time, needle, arch):
    kw = {"time_basis": 2} if time == "basis" else {}
    model = tiny(SolverConfig("rk4"), TEXT, arch=arch, groups=1, time=time, **kw)
    perturb(model, needle)
    tokens = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 7) % 64
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.equal(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-6


@pytest.mark.parametrize("time, needle", [("film", "film"), ("basis", "weight")])
def test_the_cache_is_exact_for_a_time_dependent_gpt(time, needle):
    kw = {"time_basis": 3} if time == "basis" else {}
    model = tiny(SolverConfig("midpoint", steps=2), TEXT, arch="strang", time=time, **kw)
    perturb(model, needle)
    tokens = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(tokens)
        with KVCache(model) as cache:
            cache.begin()
            pieces = [model.forward_from(tokens[:, :4], 0)]
            cache.commit(4)
            for i in range(4, 9):
                cache.begin()
                pieces.append(model.forward_from(tokens[:, i : i + 1], i))
                cache.commit(1)
    assert (torch.cat(pieces, dim=1) - whole).abs().max() < 1e-12


# ---------------------------------------------------------------- fused, config, size


def test_film_fuses_and_unfuses_with_its_weights():
    parts = TimeParts("film")
    plain = LayerField(16, 2, 2.0, shared_norm=True, parts=parts).double()
    perturb(plain, "")
    fused = FusedParallelField(16, 2, 2.0, parts=parts).double()
    fused.load_state_dict(fuse_state_dict(plain.state_dict()))
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(2)).double()
    for t in (0.0, 1.7):
        assert (field_at(fused, t, x) - field_at(plain, t, x)).abs().max() < 1e-12
    back = unfuse_state_dict(fused.state_dict())
    assert all(torch.equal(back[k], v) for k, v in plain.state_dict().items())


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"model.time": "sometimes"}, "model.time"),
        ({"model.time_basis": 3}, "model.time_basis"),
        ({"model.time": "film", "model.time_basis": 2}, "model.time_basis"),
        ({"model.time": "basis", "model.time_basis": 0}, "model.time_basis"),
        (
            {
                "model.time": "basis",
                "model.shared_norm": True,
                "model.fused": True,
                "model.dropout": 0.0,
            },
            "model.time",
        ),
    ],
)
def test_impossible_time_settings_are_refused(overrides, key):
    with pytest.raises(ConfigError) as e:
        build_config(overrides=overrides)
    assert e.value.key == key


@pytest.mark.parametrize(
    "overrides",
    [
        {"model.time": "film"},
        {"model.time": "basis", "model.time_basis": 3, "model.groups": 2},
        {"model.time": "film", "model.shared_norm": True, "model.fused": True, "model.dropout": 0},
        {
            "model.time": "basis",
            "model.time_basis": 2,
            "model.preset": "gpt-tiny",
            "data.name": "pydoc-topics",
        },
    ],
)
def test_the_parameter_estimate_and_the_basis_size_hold_for_time_modes(overrides):
    from odetx.models import build_model, count_params
    from odetx.models.factory import estimate_params

    def build(**extra):
        cfg = build_config(overrides={"model.dim": 32, "model.heads": 2, **overrides, **extra})
        info = TEXT if "model.preset" in overrides else IMAGES
        return build_model(cfg.model, cfg.solver, info), estimate_params(cfg.model, info)

    model, estimate = build()
    assert estimate == pytest.approx(count_params(model), rel=0.01)
    if overrides["model.time"] == "basis":  # K times the stack's weights, nothing else
        plain, _ = build(**{"model.time": "none", "model.time_basis": 1})
        stack = sum(p.numel() for p in plain.stack.parameters())
        extra = count_params(model) - count_params(plain)
        assert extra == (overrides["model.time_basis"] - 1) * stack


# ---------------------------------------------------------------- export


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, fmt",
    [
        ({"model.time": "film", "model.groups": 1}, "torchscript"),
        ({"model.time": "film"}, "pt2"),
        ({"model.time": "basis", "model.time_basis": 3, "model.groups": 1}, "torchscript"),
        ({"model.time": "basis", "model.time_basis": 2}, "pt2"),
    ],
)
def test_time_dependent_models_export_and_pass_the_parity_check(tmp_path, overrides, fmt):
    ckpt = make_checkpoint(tmp_path / "m.pt", arch="strang", **overrides)
    out = tmp_path / ("m.ts" if fmt == "torchscript" else "m.pt2")
    result = CliRunner().invoke(
        app, ["export", str(ckpt), "--out", str(out), "--format", fmt, "--solver", "rk4", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and json.loads(result.output)["path"] == str(out)


def test_each_groups_basis_spans_its_share_of_the_depth():
    model = tiny(SolverConfig("euler"), depth=6, groups=3, time="basis", time_basis=2)
    spans = [(b.field.attn.qkv.t0, b.field.mlp.fc2.t1) for b in model.stack.blocks]
    assert spans == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
