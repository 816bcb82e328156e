"""Learned Runge–Kutta solvers: heun / rk4 exactly at initialisation, a hand-written gate
step as reference, gradients reaching the coefficients, export, checkpoints across solvers."""

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from odetx.artefacts import save_checkpoint
from odetx.cli.app import app
from odetx.compare.solvers import expected_order
from odetx.config import ModelConfig, SolverConfig
from odetx.data import DATASETS
from odetx.data.base import DataInfo
from odetx.errors import CheckpointError
from odetx.evaluation import load_model
from odetx.export.core import export_checkpoint
from odetx.models import build_model
from odetx.models.kvcache import KVCache
from odetx.resolve import build_config, create_model
from odetx.solvers import LEARNED, SOLVERS, TABLEAUS
from odetx.solvers.learned import GatedRK2Integrator, WeightedRKIntegrator
from tests.conftest import TINY
from tests.problems import UNSPLIT, FunctionField

BASE = {"rk2-learned": "heun", "rk4-learned": "rk4"}
IMAGE = DataInfo("image", 10, image_size=8, in_chans=1)
TOKENS = DataInfo("tokens", 2, vocab_size=5, max_len=12)
TEXT = DataInfo("text", 256, vocab_size=256, max_len=8)
BACKBONES = {
    "vit": (dict(preset="vit-micro", dim=16, heads=2), IMAGE),
    "encoder": (dict(preset="enc-tiny", dim=16, heads=2), TOKENS),
    "gpt": (dict(preset="gpt-tiny", dim=16, heads=2, context=8), TEXT),
}


def build(backbone, method, steps=1, **model):
    kw, info = BACKBONES[backbone]
    torch.manual_seed(0)
    net = create_model(
        ModelConfig(**{**kw, "depth": 2, **model}), SolverConfig(method, steps=steps), info
    )
    return net.eval(), info


def inputs(info, batch=3):
    gen = torch.Generator().manual_seed(1)
    if info.kind == "image":
        return (torch.randn(batch, 1, 8, 8, generator=gen),)
    if info.kind == "text":
        return (torch.randint(0, info.vocab_size, (batch, info.max_len), generator=gen),)
    mask = torch.arange(info.max_len)[None, :] < torch.tensor([[12], [7], [3]])[:batch]
    tokens = torch.randint(1, info.vocab_size, (batch, info.max_len), generator=gen)
    return tokens.masked_fill(~mask, 0), mask


def coefficients(net):
    return {k: v for k, v in net.state_dict().items() if ".coef." in k}


def randomise_coefficients(net, scale=0.5):
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".coef." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def test_registered_as_learned_with_no_order_and_the_source():
    for name, base in BASE.items():
        info = SOLVERS[name]
        assert (info.kind, info.order, info.adaptive) == ("learned", None, False)
        assert info.stages == TABLEAUS[base].stages
        assert "ODE Transformer" in info.reference and "2022" in info.reference
        assert LEARNED[name].base is TABLEAUS[base]
        assert expected_order("parallel", name) is None
    assert expected_order("parallel", "heun") == 2  # the others keep their theory


def test_odetx_list_says_learned_and_cites_the_paper():
    result = CliRunner().invoke(app, ["list"], terminal_width=250)
    assert result.exit_code == 0, result.output
    for name in BASE:
        line = next(ln for ln in result.output.splitlines() if f" {name} " in ln)
        assert "learned" in line.split(name, 1)[1] and "Li et" in line


@pytest.mark.parametrize("method", sorted(BASE))
@pytest.mark.parametrize("arch", ["sequential", "parallel", "strang"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("steps", [1, 2])
def test_equals_its_base_method_exactly_at_init(method, arch, groups, steps):
    learned, info = build("vit", method, steps, arch=arch, groups=groups)
    base, _ = build("vit", BASE[method], steps, arch=arch, groups=groups)
    coef = coefficients(learned)
    assert coef and all(k not in base.state_dict() for k in coef)
    assert learned.load_state_dict(base.state_dict(), strict=False).missing_keys == list(coef)
    with torch.no_grad():
        x = inputs(info)
        assert torch.equal(learned(*x), base(*x))


@pytest.mark.parametrize("backbone", ["encoder", "gpt"])
@pytest.mark.parametrize("method", sorted(BASE))
def test_equals_its_base_method_on_every_backbone(backbone, method):
    learned, info = build(backbone, method, arch="sequential")
    base, _ = build(backbone, BASE[method], arch="sequential")
    learned.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        x = inputs(info)
        assert torch.equal(learned(*x), base(*x))


def _field():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64) / 3

    def f(t, y):
        return torch.tanh(y @ a) * (1.0 + 0.3 * t)

    return f


def test_rk2_gate_matches_a_handwritten_gated_step():
    f, h = _field(), 0.4
    y = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    integ = GatedRK2Integrator(FunctionField(f), TABLEAUS["heun"], UNSPLIT, 2, 0.0, 0.8, width=6)
    integ.double()
    randomise_coefficients(integ, 1.0)
    w = integ.coef.gate_weight[0].detach()
    b = integ.coef.gate_bias[0].detach()
    ref = y
    for n in range(2):  # y + g F1 + (1 - g) F2, g = sigmoid(W [F1; F2] + b), per token
        t = n * h
        f1 = h * f(t, ref)
        f2 = h * f(t + h, ref + f1)
        g = torch.sigmoid(torch.cat([f1, f2], -1) @ w + b)[..., None]
        ref = ref + g * f1 + (1 - g) * f2
    torch.testing.assert_close(integ(y), ref, rtol=1e-12, atol=1e-12)


def test_rk4_weights_match_a_handwritten_weighted_step():
    f, h = _field(), 0.5
    y = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    integ = WeightedRKIntegrator(FunctionField(f), TABLEAUS["rk4"], UNSPLIT, 1, 0.0, h)
    integ.double()
    randomise_coefficients(integ, 0.2)
    weights = integ.weights()[0]
    k1 = f(0.0, y)
    k2 = f(h / 2, y + h / 2 * k1)
    k3 = f(h / 2, y + h / 2 * k2)
    k4 = f(h, y + h * k3)
    ref = y + h * (weights[0] * k1 + weights[1] * k2 + weights[2] * k3 + weights[3] * k4)
    torch.testing.assert_close(integ(y), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        weights - integ.coef.weight_offset[0].detach(),
        torch.tensor([1 / 6, 1 / 3, 1 / 3, 1 / 6], dtype=torch.float64),
    )


@pytest.mark.parametrize("method", sorted(BASE))
def test_gradients_reach_the_coefficients_and_they_change_the_output(method):
    net, info = build("vit", method, arch="strang", groups=1)
    x = inputs(info)
    net.train()
    net(*x).square().sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters() if ".coef." in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    net.eval()
    with torch.no_grad():
        before = net(*x)
        randomise_coefficients(net)
        assert (net(*x) - before).abs().max() > 1e-4


@pytest.mark.parametrize("method,per_step", [("rk2-learned", 2.0), ("rk4-learned", 4.0)])
@pytest.mark.parametrize("arch", ["sequential", "parallel", "strang"])
def test_nfe_counts_the_base_stages(method, per_step, arch):
    net, _ = build("vit", method, steps=3, arch=arch, groups=1)
    # sequential: A and M at one half each; strang: M/2, A, M/2 -> three halves
    field_cost = {"sequential": 1.0, "parallel": 1.0, "strang": 1.5}[arch]
    assert net.stack.nfe() == 3 * per_step * field_cost


@pytest.mark.parametrize("method", sorted(BASE))
def test_scripted_and_exported_models_equal_eager(method):
    net, info = build("vit", method, arch="strang", groups=2)
    randomise_coefficients(net)
    x = inputs(info)
    with torch.no_grad():
        eager = net(*x)
        torch.testing.assert_close(torch.jit.script(net)(*x), eager, rtol=1e-5, atol=1e-6)
        exported = torch.export.export(net, x).module()
        torch.testing.assert_close(exported(*x), eager, rtol=1e-5, atol=1e-6)


def make_checkpoint(path, method="rk2-learned", **overrides):
    """A digits checkpoint whose weights (coefficients too) are far from their initial values."""
    cfg = build_config(overrides={**TINY, "solver.method": method, **overrides})
    info = DATASETS[cfg.data.name].info(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.solver, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    payload = {
        "config": cfg.to_dict(),
        "data_info": dataclasses.asdict(info),
        "model": model.state_dict(),
    }
    save_checkpoint(path, payload)
    return path, model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_export_of_a_learned_model_passes_parity(tmp_path, fmt):
    ckpt, model = make_checkpoint(tmp_path / "m.pt", "rk4-learned", **{"model.arch": "strang"})
    report = export_checkpoint(ckpt, tmp_path / f"m.{'ts' if fmt == 'torchscript' else 'pt2'}")
    assert report.parity.ok
    x = inputs(IMAGE)
    art = (
        torch.jit.load(report.path)
        if fmt == "torchscript"
        else torch.export.load(report.path).module()
    )
    with torch.no_grad():
        torch.testing.assert_close(art(*x), model(*x), rtol=1e-5, atol=1e-5)


def test_another_solver_drops_the_coefficients_and_its_own_loads_strictly(tmp_path):
    ckpt, trained = make_checkpoint(tmp_path / "m.pt")
    x = inputs(IMAGE)
    with torch.no_grad():
        assert torch.equal(load_model(ckpt).model(*x), trained(*x))
        # rk4 on the same field weights, built independently of the loader
        rk4 = create_model(load_model(ckpt).config.model, SolverConfig("rk4"), IMAGE).eval()
        state = {k: v for k, v in trained.state_dict().items() if ".coef." not in k}
        rk4.load_state_dict(state)
        assert torch.equal(load_model(ckpt, {"method": "rk4"}).model(*x), rk4(*x))

    payload = torch.load(ckpt, weights_only=True)
    payload["model"] = {k: v for k, v in payload["model"].items() if ".coef." not in k}
    save_checkpoint(tmp_path / "stripped.pt", payload)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "stripped.pt")


def test_a_learned_solver_on_weights_trained_with_another_starts_as_its_base(tmp_path):
    ckpt, trained = make_checkpoint(tmp_path / "heun.pt", "heun")
    x = inputs(IMAGE)
    with torch.no_grad():
        assert torch.equal(load_model(ckpt, {"method": "rk2-learned"}).model(*x), trained(*x))


@pytest.mark.parametrize("method", sorted(BASE))
def test_the_key_value_cache_stays_exact_with_trained_coefficients(method):
    net, info = build("gpt", method, arch="strang", groups=1)
    net.double()
    randomise_coefficients(net)
    tokens = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(tokens)
        with KVCache(net) as cache:
            pieces = []
            for i in range(8):  # one token at a time: the gate reads each token alone
                cache.begin()
                pieces.append(net.forward_from(tokens[:, i : i + 1], i))
                cache.commit(1)
    assert (torch.cat(pieces, dim=1) - whole).abs().max() < 1e-12
