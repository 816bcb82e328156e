"""The sequence encoder: shapes, padding invariance, gradients, every scheme, data checks."""

import pytest
import torch

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import ARCHS, PRESETS, check_fits
from odetx.resolve import create_model

INFO = DataInfo(kind="tokens", num_classes=5, vocab_size=12, max_len=16)
TINY = dict(preset="enc-tiny", dim=16, depth=2, heads=2)


def make(pool="cls", arch="parallel", solver=SolverConfig(), **kw):
    torch.manual_seed(0)
    return create_model(
        ModelConfig(**{**TINY, "pool": pool, "arch": arch, **kw}), solver, INFO
    ).eval()


def batch(lengths=(16, 9, 3, 12), seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(INFO.max_len)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)
    tokens = torch.randint(1, INFO.vocab_size, (len(lengths), INFO.max_len), generator=g)
    return tokens.masked_fill(~mask, 0), mask


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_forward_shape(pool):
    tokens, mask = batch()
    out = make(pool)(tokens, mask)
    assert out.shape == (4, INFO.num_classes) and torch.isfinite(out).all()
    short = make(pool)(tokens[:, :10], mask[:, :10])  # batches may be padded to less than max_len
    assert short.shape == (4, INFO.num_classes)


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize(
    "solver",
    [SolverConfig(), SolverConfig(method="dopri5", rtol=1e-3, atol=1e-4)],
    ids=["euler", "dopri5"],
)
def test_padding_never_changes_the_logits(pool, solver):
    model = make(pool, solver=solver)
    tokens, mask = batch()
    garbage = torch.randint(
        1, INFO.vocab_size, tokens.shape, generator=torch.Generator().manual_seed(7)
    )
    with torch.no_grad():
        a = model(tokens, mask)
        b = model(torch.where(mask, tokens, garbage), mask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_a_padded_sequence_scores_as_it_does_alone(pool):
    model = make(pool)
    tokens, mask = batch()
    with torch.no_grad():
        padded = model(tokens, mask)
        for i, n in enumerate(mask.sum(1).tolist()):
            alone = model(tokens[i : i + 1, :n], mask[i : i + 1, :n])
            torch.testing.assert_close(alone[0], padded[i], rtol=1e-5, atol=1e-5)


def test_mean_pool_reads_real_tokens_only():
    model = make("mean")
    tokens, mask = batch()
    seen = {}
    model.norm.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    with torch.no_grad():
        out = model(tokens, mask)
    x = seen["x"]  # (B, L, dim) final states
    pooled = torch.stack([x[i, mask[i]].mean(0) for i in range(len(x))])  # independent masked mean
    torch.testing.assert_close(out, model.head(pooled))


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("groups", [2, 1])
def test_every_parameter_receives_a_gradient(pool, groups):
    model = make(pool, groups=groups).train()
    tokens, mask = batch()
    model(tokens, mask).logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.token_embed.weight.grad[0].abs().sum() == 0  # padding embedding stays zero


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_every_scheme_runs(arch, method):
    model = make("cls", arch=arch, solver=SolverConfig(method=method, steps=2))
    tokens, mask = batch()
    model.stack.reset_nfe()
    out = model(tokens, mask)
    assert out.shape == (4, INFO.num_classes) and torch.isfinite(out).all()
    # Counted by hand: 2 groups x 2 steps x the solver's stages x the field evaluations
    # of one stage (A or M alone counts one half: Lie-Trotter A, M; Strang M/2, A, M/2).
    stages = {"euler": 1, "rk4": 4}[method]
    per_stage = {"sequential": 1.0, "parallel": 1.0, "strang": 1.5}[arch]
    assert model.stack.nfe() == 2 * 2 * stages * per_stage


def test_schemes_share_one_parameter_layout():
    layouts = {a: {k: v.shape for k, v in make(arch=a).state_dict().items()} for a in ARCHS.names()}
    assert len({tuple(sorted(v.items())) for v in layouts.values()}) == 1


def test_backbone_and_data_kind_must_match():
    image = DataInfo(kind="image", num_classes=10, image_size=8, in_chans=1)
    with pytest.raises(
        ConfigError, match=r"model.preset: enc-tiny is a model \(encoder\) for tokens"
    ):
        check_fits(ModelConfig(preset="enc-tiny"), image)
    with pytest.raises(
        ConfigError, match="model.preset: vit-micro .* for image data; the data is tokens"
    ):
        check_fits(ModelConfig(preset="vit-micro"), INFO)


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.backbone == "encoder"])
@pytest.mark.parametrize("arch", ARCHS.names())
def test_every_encoder_preset_and_scheme_trains(name, arch):
    torch.manual_seed(0)
    model = create_model(ModelConfig(preset=name, arch=arch), SolverConfig(), INFO)
    tokens, mask = batch()
    out = model(tokens, mask)
    assert out.shape == (4, INFO.num_classes) and torch.isfinite(out).all()
    out.square().sum().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{pname} got no gradient"
