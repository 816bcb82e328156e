import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import ARCHS, PRESETS, count_params, resolve_model
from odetx.models.fields import Attention, LayerField
from odetx.models.ode import ODEStack
from odetx.resolve import create_model

SMALL = dict(depth=4, dim=32, heads=4, mlp_ratio=2.0)


def stack(arch, groups=None, method="euler", steps=1, **kw):
    torch.manual_seed(0)
    cfg = resolve_model(ModelConfig(arch=arch, groups=groups, **{**SMALL, **kw}))
    return ODEStack(cfg, SolverConfig(method=method, steps=steps)).eval()


def fields(s):
    return [block.field for block in s.blocks]


def test_sequential_euler_is_exactly_the_standard_pre_ln_stack():
    s = stack("sequential")
    x = torch.randn(3, 7, 32)
    ref = x
    for f in fields(s):
        ref = ref + f.attn(f.norm_a(ref))
        ref = ref + f.mlp(f.norm_m(ref))
    assert torch.equal(s(x), ref)


def test_sequential_euler_matches_torch_transformer_encoder_layer():
    """An independent reference: PyTorch's own pre-LN encoder layer with the same weights."""
    s = stack("sequential")
    layers = []
    for f in fields(s):
        layer = nn.TransformerEncoderLayer(
            32, 4, 64, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(f.attn.qkv.weight)
            layer.self_attn.in_proj_bias.copy_(f.attn.qkv.bias)
            layer.self_attn.out_proj.weight.copy_(f.attn.proj.weight)
            layer.self_attn.out_proj.bias.copy_(f.attn.proj.bias)
            layer.linear1.load_state_dict(f.mlp.fc1.state_dict())
            layer.linear2.load_state_dict(f.mlp.fc2.state_dict())
            layer.norm1.load_state_dict(f.norm_a.state_dict())
            layer.norm2.load_state_dict(f.norm_m.state_dict())
        layers.append(layer.eval())
    x = torch.randn(3, 7, 32)
    ref = x
    for layer in layers:
        ref = layer(ref)
    torch.testing.assert_close(s(x), ref, rtol=1e-5, atol=1e-5)


def test_parallel_euler_is_x_plus_a_plus_m():
    s = stack("parallel")
    x = torch.randn(2, 5, 32)
    ref = x
    for f in fields(s):
        ref = ref + f.attn(f.norm_a(ref)) + f.mlp(f.norm_m(ref))
    torch.testing.assert_close(s(x), ref, rtol=1e-6, atol=1e-6)


def test_strang_euler_is_half_mlp_attention_half_mlp():
    s = stack("strang")
    x = torch.randn(2, 5, 32)
    ref = x
    for f in fields(s):
        ref = ref + 0.5 * f.mlp(f.norm_m(ref))
        ref = ref + f.attn(f.norm_a(ref))
        ref = ref + 0.5 * f.mlp(f.norm_m(ref))
    torch.testing.assert_close(s(x), ref, rtol=1e-6, atol=1e-6)


def test_shared_norm_feeds_both_fields_from_one_layernorm():
    s = stack("parallel", shared_norm=True)
    unshared = stack("parallel")
    per_group_ln = 2 * 32
    assert count_params(unshared) - count_params(s) == 4 * per_group_ln
    x = torch.randn(2, 5, 32)
    ref = x
    for f in fields(s):
        h = f.norm_a(ref)
        ref = ref + f.attn(h) + f.mlp(h)
    torch.testing.assert_close(s(x), ref, rtol=1e-6, atol=1e-6)


def test_fully_shared_block_with_depth_steps_is_a_weight_tied_stack():
    s = stack("sequential", groups=1, steps=4)
    (f,) = fields(s)
    x = torch.randn(2, 5, 32)
    ref = x
    for _ in range(4):
        ref = ref + f.attn(f.norm_a(ref))
        ref = ref + f.mlp(f.norm_m(ref))
    assert torch.equal(s(x), ref)
    one_layer = count_params(f)
    assert count_params(s) == one_layer
    assert count_params(stack("sequential")) == 4 * one_layer
    assert count_params(stack("sequential", groups=2)) == 2 * one_layer


def test_attention_matches_handwritten_softmax_attention_and_honours_padding():
    torch.manual_seed(0)
    attn = Attention(16, 4).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    q, k, v = attn.qkv(x).reshape(2, 6, 3, 4, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(4)
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    ref = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 6, 16))
    torch.testing.assert_close(attn(x, mask), ref, rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[1, 4:] = 100.0  # padding must not leak into real tokens
    torch.testing.assert_close(attn(x2, mask)[1, :4], attn(x, mask)[1, :4])


def _flow_error(arch, method, steps, x, reference):
    torch.manual_seed(0)
    cfg = resolve_model(ModelConfig(arch=arch, depth=1, groups=1, dim=16, heads=2, mlp_ratio=2.0))
    s = ODEStack(cfg, SolverConfig(method=method, steps=steps)).double().eval()
    return (s(x) - reference).abs().max().item()


@pytest.mark.parametrize(
    "arch,method,order",
    [
        ("sequential", "rk4", 1),
        ("strang", "rk4", 2),
        ("parallel", "euler", 1),
        ("parallel", "midpoint", 2),
        ("parallel", "rk4", 4),
    ],
)
def test_splitting_order_on_a_transformer_field(arch, method, order):
    """Lie–Trotter is first order, Strang second, and the unsplit field follows its solver."""
    x = torch.randn(2, 6, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    cfg = resolve_model(
        ModelConfig(arch="parallel", depth=1, groups=1, dim=16, heads=2, mlp_ratio=2.0)
    )
    exact = ODEStack(cfg, SolverConfig(method="rk4", steps=512)).double().eval()(x)
    steps = [4, 8, 16, 32]
    errors = [_flow_error(arch, method, n, x, exact) for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.3), errors


@pytest.mark.parametrize("preset", [n for n, p in PRESETS.items() if p.backbone == "vit"])
@pytest.mark.parametrize("arch", ARCHS.names())
def test_every_preset_and_scheme_trains(preset, arch):
    p = PRESETS[preset]
    info = DataInfo("image", num_classes=5, image_size=2 * p.patch_size, in_chans=3)
    small = dict(depth=2, groups=1) if p.dim > 128 else {}
    torch.manual_seed(0)
    model = create_model(ModelConfig(preset=preset, arch=arch, **small), SolverConfig(), info)
    out = model(torch.randn(2, 3, info.image_size, info.image_size))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name} got no gradient"


@pytest.mark.parametrize("preset,published", [("deit-tiny", 5.7e6), ("deit-small", 22.1e6)])
def test_deit_parameter_counts_match_the_paper(preset, published):
    info = DataInfo("image", num_classes=1000, image_size=224, in_chans=3)
    with torch.device("meta"):
        model = create_model(ModelConfig(preset=preset, arch="sequential"), SolverConfig(), info)
    assert count_params(model) == pytest.approx(published, rel=0.01)


def test_weight_sharing_groups_share_weights_across_the_span():
    info = DataInfo("image", num_classes=10, image_size=8, in_chans=1)
    full = create_model(ModelConfig(arch="parallel", depth=4), SolverConfig(), info)
    shared = create_model(
        ModelConfig(arch="parallel", depth=4, groups=1), SolverConfig(method="rk4", steps=4), info
    )
    layer = count_params(full.stack.blocks[0].field)
    assert count_params(full) - count_params(shared) == 3 * layer  # four layers' weights vs one


@pytest.mark.parametrize(
    "kw,key",
    [
        (dict(groups=4), "model.groups"),  # vit-micro has depth 6
        (dict(heads=5), "model.heads"),  # width 96
        (dict(depth=0), "model.depth"),
        (dict(shared_norm=True, arch="sequential"), "model.shared_norm"),
        (dict(preset="vit-huge"), "model.preset"),
        (dict(arch="leapfrog"), "model.arch"),
    ],
)
def test_impossible_models_are_refused_naming_the_key(kw, key):
    with pytest.raises(ConfigError) as info:
        resolve_model(dataclasses.replace(ModelConfig(), **kw))
    assert info.value.key == key


def test_patch_size_must_tile_the_image():
    info = DataInfo("image", num_classes=10, image_size=8, in_chans=1)
    with pytest.raises(ConfigError, match="model.patch_size"):
        create_model(ModelConfig(patch_size=3), SolverConfig(), info)


def test_layer_field_ignores_time():
    torch.manual_seed(0)
    f = LayerField(8, 2, 2.0)
    x = torch.randn(1, 3, 8)
    assert torch.equal(f(2, 0.0, x), f(2, 5.0, x))
    assert F.mse_loss(f(2, 0.0, x), f(0, 0.0, x) + f(1, 0.0, x)) < 1e-12
