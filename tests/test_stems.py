"""``model.stem``: ViT's patches or CCT's convolutional tokenizer, checked against the
tokenizer written out by hand, the parameter estimate, the settings it refuses, and a
training run through the CLI."""

import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import build_model, count_params
from odetx.models.factory import estimate_params
from odetx.resolve import build_config
from tests.conftest import TINY

runner = CliRunner()


def max_pool_3x3_stride_2(x):
    """Max over 3×3 windows at stride 2 of the image padded by one -inf pixel a side."""
    x = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    h, w = (x.shape[-2] - 3) // 2 + 1, (x.shape[-1] - 3) // 2 + 1
    out = torch.full((*x.shape[:2], h, w), -math.inf, dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            out = torch.maximum(out, x[..., i : i + 2 * h - 1 : 2, j : j + 2 * w - 1 : 2])
    return out


def vit(size, chans=1, **overrides):
    cfg = build_config(overrides={"model.dim": 16, "model.heads": 2, **overrides})
    info = DataInfo("image", 10, image_size=size, in_chans=chans)
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.solver, info), cfg, info


@pytest.mark.parametrize(
    "size, chans, layers, side", [(28, 1, 2, 7), (32, 3, 1, 16), (8, 1, 2, 2), (7, 1, 2, 2)]
)
def test_the_conv_tokenizer_is_conv_relu_pool_blocks_written_out(size, chans, layers, side):
    model, _, _ = vit(size, chans, **{"model.stem": "conv", "model.stem_layers": layers})
    convs = [m for m in model.patch_embed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.bias for c in convs] == [None] * layers  # CCT's convolutions have no bias
    assert [c.in_channels for c in convs] == [chans] + [64] * (layers - 1)
    x = torch.randn(2, chans, size, size, generator=torch.Generator().manual_seed(1))
    want = x
    for conv in convs:
        want = max_pool_3x3_stride_2(F.conv2d(want, conv.weight, padding=1).clamp_min(0))
    assert want.shape == (2, 16, side, side)  # the side halves, rounding up, per block
    with torch.no_grad():
        got = model.patch_embed(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert model.pos_embed.shape == (1, side * side + 1, 16)
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"model.stem": "conv"}, {"model.stem": "conv", "model.stem_layers": 3}],
)
def test_the_parameter_estimate_holds_for_every_stem(overrides):
    model, cfg, info = vit(28, 3, **overrides)
    assert estimate_params(cfg.model, info) == count_params(model)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"model.stem": "voxels"}, "model.stem"),
        ({"model.stem_layers": 3}, "model.stem_layers"),  # the patch stem has no layers
        ({"model.stem": "conv", "model.stem_layers": 0}, "model.stem_layers"),
        ({"model.stem": "conv", "model.stem_layers": 9}, "model.stem_layers"),
        ({"model.stem": "conv", "model.preset": "gpt-tiny"}, "model.stem"),
        ({"model.stem": "conv", "model.preset": "enc-tiny"}, "model.stem"),
    ],
)
def test_impossible_stem_settings_are_refused(overrides, key):
    with pytest.raises(ConfigError) as e:
        build_config(overrides=overrides)
    assert e.value.key == key


def test_a_conv_stem_model_trains_and_evaluates_through_the_cli(tmp_path):
    args = [f"{k}={v}" for k, v in TINY.items() if k != "train.epochs"]
    flags = [f for a in args for f in ("--set", a)]
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["train", "--epochs", "2", "--out", str(out), *flags, "--set", "model.stem=conv"],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert '"acc"' in result.output
