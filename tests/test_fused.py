"""The fused parallel layer computes the unfused layer's function and gradients, and
weights convert losslessly between the unfused and fused layouts."""

import pytest
import torch

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import build_model
from odetx.models.fields import LayerField
from odetx.models.fused import (
    FusedParallelField,
    fuse_state_dict,
    set_fused,
    to_fused_fields,
    unfuse_state_dict,
)
from odetx.solvers.field import ATTN, BOTH, MLP

TOL = dict(rtol=1e-10, atol=1e-10)
INFO = DataInfo("image", num_classes=7, image_size=8, in_chans=1)


def field(qkv_bias=True, **kw):
    torch.manual_seed(0)
    f = LayerField(24, 3, 2.0, qkv_bias=qkv_bias, shared_norm=True, **kw).double()
    with torch.no_grad():  # weights and biases well away from their initial zeros
        for p in f.parameters():
            p.normal_(0.0, 0.3)
    return f


def value_and_grads(f, x, mask=None, which=BOTH):
    x = x.clone().requires_grad_()
    f.zero_grad()
    y = f(which, 0.0, x, mask)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), x.grad, {n: p.grad.clone() for n, p in f.named_parameters()}


@pytest.mark.parametrize("qkv_bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_and_unfused_layer_agree_in_value_and_gradient(qkv_bias, masked):
    f = field(qkv_bias)
    x = torch.randn(3, 6, 24, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    mask = mask if masked else None
    assert not f.fused  # opt-in
    assert set_fused(f, True) == 1
    fused = value_and_grads(f, x, mask)
    f.fused = False
    unfused = value_and_grads(f, x, mask)
    torch.testing.assert_close(fused[0], unfused[0], **TOL)
    torch.testing.assert_close(fused[1], unfused[1], **TOL)
    assert fused[2].keys() == unfused[2].keys()
    for name in fused[2]:
        torch.testing.assert_close(fused[2][name], unfused[2][name], **TOL, msg=name)


def test_fusion_is_only_used_for_the_unsplit_field_and_never_changes_a_or_m(monkeypatch):
    f = field()
    f.fused = True
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    calls = []
    real = f.fused_parallel
    monkeypatch.setattr(f, "fused_parallel", lambda *a: calls.append(1) or real(*a))
    a, m = f(ATTN, 0.0, x), f(MLP, 0.0, x)
    assert not calls
    torch.testing.assert_close(f(BOTH, 0.0, x), a + m, **TOL)
    assert calls == [1]
    assert set_fused(LayerField(8, 2, 2.0), True) == 0  # two norms: nothing to fuse


def test_training_with_dropout_falls_back_to_the_unfused_sum(monkeypatch):
    f = field(dropout=0.1).train()
    f.fused = True
    monkeypatch.setattr(f, "fused_parallel", lambda *a: pytest.fail("fused with MLP dropout"))
    f(BOTH, 0.0, torch.randn(2, 5, 24, dtype=torch.float64))


def test_state_dict_round_trips_between_layouts_and_the_fused_layout_computes_the_same():
    cfg = ModelConfig(
        arch="parallel", shared_norm=True, depth=2, dim=24, heads=3, mlp_ratio=2.0, dropout=0.0
    )
    torch.manual_seed(0)
    model = build_model(cfg, SolverConfig(method="rk4", steps=2), INFO).double().eval()
    state = model.state_dict()
    fused = fuse_state_dict(state)
    assert "stack.blocks.0.field.in_proj.weight" in fused
    assert not any("qkv" in k or "fc1" in k for k in fused)
    back = unfuse_state_dict(fused)
    assert back.keys() == state.keys()
    for k in state:
        assert torch.equal(back[k], state[k]), k
    # A model whose fields own fused parameters loads the fused dict and agrees.
    images = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    want = model(images)
    assert set_fused(model, True) == 2
    torch.testing.assert_close(model(images), want, **TOL)
    to_fused_fields(model)
    assert isinstance(model.stack.blocks[0].field, FusedParallelField)
    assert model.state_dict().keys() == fused.keys()
    model.load_state_dict(fused)
    torch.testing.assert_close(model(images), want, **TOL)
    # ... and its split fields are the unfused A and M.
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    ref = LayerField(24, 3, 2.0, shared_norm=True).double()
    ref.load_state_dict(unfuse_state_dict(model.stack.blocks[1].field.state_dict()))
    for which in (ATTN, MLP, BOTH):
        torch.testing.assert_close(model.stack.blocks[1].field(which, 0.0, x), ref(which, 0.0, x))


def test_layouts_refuse_what_they_cannot_represent():
    two_norms = LayerField(8, 2, 2.0).state_dict()
    with pytest.raises(ValueError, match="only a shared norm fuses"):
        fuse_state_dict(two_norms)
    fused = fuse_state_dict(field().state_dict())
    with pytest.raises(ValueError, match="qkv_bias=False"):
        unfuse_state_dict(fused, qkv_bias=False)
    no_bias = unfuse_state_dict(fuse_state_dict(field(qkv_bias=False).state_dict()), False)
    assert no_bias.keys() == field(qkv_bias=False).state_dict().keys()


@pytest.mark.parametrize("fmt", ["script", "export"])
def test_the_fused_layer_scripts_and_exports(fmt):
    cfg = ModelConfig(
        arch="parallel", shared_norm=True, depth=2, dim=24, heads=3, mlp_ratio=2.0, dropout=0.0
    )
    torch.manual_seed(0)
    model = build_model(cfg, SolverConfig(method="heun", steps=2), INFO).eval()
    set_fused(model, True)
    images = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        want = model(images)
        if fmt == "script":
            got = torch.jit.script(model)(images)
        else:
            got = torch.export.export(model, (images,)).module()(images)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_model_fused_config_turns_fusion_on_and_needs_a_shared_norm():
    cfg = ModelConfig(arch="parallel", shared_norm=True, fused=True, depth=2, dim=24, heads=3)
    model = build_model(cfg, SolverConfig(), INFO)
    fields = [m for m in model.modules() if isinstance(m, LayerField)]
    assert fields and all(f.fused for f in fields)
    plain = build_model(
        ModelConfig(arch="parallel", shared_norm=True, depth=2), SolverConfig(), INFO
    )
    assert not any(m.fused for m in plain.modules() if isinstance(m, LayerField))
    with pytest.raises(ConfigError, match="model.fused"):
        build_model(ModelConfig(arch="parallel", fused=True), SolverConfig(), INFO)
