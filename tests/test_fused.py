"""The fused parallel layer computes the unfused layer's function and gradients, and
weights convert losslessly between the unfused and fused layouts."""

import pytest
import torch

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.evaluation import load_model
from odetx.models.fields import LayerField
from odetx.models.fused import (
    FusedParallelField,
    fuse_state_dict,
    to_fused_fields,
    unfuse_state_dict,
)
from odetx.resolve import create_model
from odetx.solvers.field import ATTN, BOTH, MLP
from odetx.training import Trainer

TOL = dict(rtol=1e-10, atol=1e-10)
INFO = DataInfo("image", num_classes=7, image_size=8, in_chans=1)
SMALL = dict(arch="parallel", shared_norm=True, depth=2, dim=24, heads=3, mlp_ratio=2.0)


def field(qkv_bias=True, **kw):
    torch.manual_seed(0)
    f = LayerField(24, 3, 2.0, qkv_bias=qkv_bias, shared_norm=True, **kw).double()
    with torch.no_grad():  # weights and biases well away from their initial zeros
        for p in f.parameters():
            p.normal_(0.0, 0.3)
    return f


def fused_copy(f, in_gemm="one"):
    g = FusedParallelField(24, 3, 2.0).double()
    g.load_state_dict(fuse_state_dict(f.state_dict()))
    g.in_gemm = in_gemm  # "one" runs on CPU what "auto" runs on an accelerator
    return g


def value_and_grads(f, x, mask, which):
    x = x.clone().requires_grad_()
    f.zero_grad()
    y = f(which, 0.0, x, mask)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    # A parameter the field did not use (A alone, M alone) has a zero gradient.
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in f.named_parameters()}
    return y.detach(), x.grad, grads


def models(solver=SolverConfig(method="rk4", steps=2)):
    """An unfused shared-norm model and a ``model.fused`` one holding the same weights."""
    torch.manual_seed(0)
    plain = create_model(ModelConfig(**SMALL, dropout=0.0), solver, INFO).double().eval()
    fused = create_model(ModelConfig(**SMALL, dropout=0.0, fused=True), solver, INFO)
    fused.double().eval().load_state_dict(fuse_state_dict(plain.state_dict()))
    return plain, fused


@pytest.mark.parametrize("which", [ATTN, MLP, BOTH])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("in_gemm", ["one", "two"])
def test_fused_field_computes_the_unfused_layer_in_value_and_every_gradient(which, masked, in_gemm):
    f = field()
    g = fused_copy(f, in_gemm)
    x = torch.randn(3, 6, 24, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    mask = mask if masked else None
    want_y, want_dx, want_dw = value_and_grads(f, x, mask, which)
    y, dx, dw = value_and_grads(g, x, mask, which)
    torch.testing.assert_close(y, want_y, **TOL)
    torch.testing.assert_close(dx, want_dx, **TOL)
    # The fused parameters' gradients are the unfused gradients in the fused layout.
    want_fused = fuse_state_dict(want_dw)
    assert dw.keys() == want_fused.keys()
    for name in dw:
        torch.testing.assert_close(dw[name], want_fused[name], **TOL, msg=name)


def test_under_bf16_autocast_the_fused_backward_matches_the_unfused_one():
    f = field().float()
    g = fused_copy(f).float()
    x = torch.randn(3, 6, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want_y, want_dx, want_dw = value_and_grads(f, x, None, BOTH)
        y, dx, dw = value_and_grads(g, x, None, BOTH)
    assert dx.dtype == torch.float32 and all(v.dtype == torch.float32 for v in dw.values())
    loose = dict(rtol=0.05, atol=0.05)  # bf16 keeps 8 bits of mantissa
    torch.testing.assert_close(y.float(), want_y.float(), **loose)
    torch.testing.assert_close(dx, want_dx, **loose)
    want_fused = fuse_state_dict(want_dw)
    for name in dw:
        scale = want_fused[name].abs().max()
        torch.testing.assert_close(dw[name] / scale, want_fused[name] / scale, **loose, msg=name)


def test_the_one_matmul_backward_compiles_without_graph_breaks():
    g = fused_copy(field()).float()
    torch._dynamo.reset()
    report = torch._dynamo.explain(lambda x: g(BOTH, 0.0, x).sum())(torch.randn(3, 6, 24))
    assert report.graph_break_count == 0, report.break_reasons


def test_state_dicts_round_trip_and_a_model_fused_model_computes_the_same():
    plain, fused = models()
    state = plain.state_dict()
    assert fused.state_dict().keys() == fuse_state_dict(state).keys()
    assert "stack.blocks.0.field.in_proj.weight" in fused.state_dict()
    assert not any("qkv" in k or "fc1" in k for k in fused.state_dict())
    back = unfuse_state_dict(fused.state_dict())
    assert back.keys() == state.keys()
    for k in state:
        assert torch.equal(back[k], state[k]), k
    images = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(fused(images), plain(images), **TOL)


def test_model_fused_works_under_an_adaptive_solver():
    plain, fused = models(SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9))
    images = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(fused(images), plain(images), rtol=1e-8, atol=1e-8)


def test_to_fused_fields_swaps_a_built_models_fields_in_place():
    plain, _ = models()
    images = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    want = plain(images)
    to_fused_fields(plain)
    assert all(isinstance(b.field, FusedParallelField) for b in plain.stack.blocks)
    torch.testing.assert_close(plain(images), want, **TOL)
    adaptive, _ = models(SolverConfig(method="dopri5"))
    with pytest.raises(ValueError, match="fixed-step"):
        to_fused_fields(adaptive)


def test_layouts_refuse_what_they_cannot_represent():
    two_norms = LayerField(8, 2, 2.0).state_dict()
    with pytest.raises(ValueError, match="only a shared norm fuses"):
        fuse_state_dict(two_norms)
    fused = fuse_state_dict(field().state_dict())
    with pytest.raises(ValueError, match="qkv_bias=False"):
        unfuse_state_dict(fused, qkv_bias=False)
    no_bias = unfuse_state_dict(fuse_state_dict(field(qkv_bias=False).state_dict()), False)
    assert no_bias.keys() == field(qkv_bias=False).state_dict().keys()


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(arch="parallel"), "shared_norm"),
        (dict(SMALL, dropout=0.1), "dropout"),
        (dict(SMALL, dropout=0.0, qkv_bias=False), "qkv_bias"),
    ],
)
def test_model_fused_needs_a_shared_norm_no_dropout_and_qkv_biases(kw, needle):
    with pytest.raises(ConfigError, match=f"model.fused.*{needle}"):
        create_model(ModelConfig(**kw, fused=True), SolverConfig(), INFO)


@pytest.mark.parametrize("fmt", ["script", "export"])
def test_the_fused_layer_scripts_and_exports(fmt):
    _, model = models(SolverConfig(method="heun", steps=2))
    model.float()
    images = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        want = model(images)
        if fmt == "script":
            got = torch.jit.script(model)(images)
        else:
            got = torch.export.export(model, (images,)).module()(images)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_a_fused_run_trains_and_its_checkpoint_loads(tmp_path, tiny_config):
    cfg = tiny_config(
        train__epochs=1, model__shared_norm=True, model__fused=True, model__dropout=0.0
    )
    Trainer(cfg, tmp_path / "run").fit()
    loaded = load_model(tmp_path / "run", {"method": "rk4", "steps": 2})
    fields = [m for m in loaded.rebuild(loaded.solver).modules() if hasattr(m, "in_proj")]
    assert fields and all(isinstance(f, FusedParallelField) for f in fields)
