"""The GPT language model: a plain pre-LN reference, causality under every arch and solver,
gradients, the tied head, a tiny end-to-end run and the context check."""

import csv
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from odetx.config import ModelConfig, SolverConfig
from odetx.data import DATASETS
from odetx.data.base import IGNORE_INDEX, DataInfo
from odetx.errors import ConfigError
from odetx.evaluation import evaluate
from odetx.models import ARCHS, build_model, check_fits, count_params
from odetx.resolve import build_config, create_model
from odetx.training import Trainer

VOCAB = 37
CONTEXT = 12
DIM = 16
HEADS = 4
DEPTH = 2
INFO = DataInfo("text", num_classes=VOCAB, vocab_size=VOCAB, max_len=CONTEXT, unit="char")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a busy shared CPU OpenMP's spinning
    threads made this file ~6x slower (many small forwards, adaptive solves)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gpt(arch="sequential", solver=None, dtype=torch.float64, scale=0.3, **kw):
    """A small GPT; ``scale`` > 0 replaces the (tiny) initial weights by larger random ones,
    so attention is far from uniform and the layers change the stream substantially."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        preset="gpt-tiny",
        arch=arch,
        depth=DEPTH,
        dim=DIM,
        heads=HEADS,
        mlp_ratio=2.0,
        context=CONTEXT,
        **kw,
    )
    model = create_model(cfg, solver or SolverConfig(), INFO).to(dtype).eval()
    if scale:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=dtype))
    return model


def tokens(batch=2, length=CONTEXT, seed=2):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------ plain reference


def layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, as LayerNorm uses
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def causal_attention(h, w_qkv, b_qkv, w_out, b_out, heads):
    """Each head with an explicit softmax over the keys at or before the query."""
    T, C = h.shape[-2:]
    d = C // heads
    qkv = h @ w_qkv.T + b_qkv
    q, k, v = qkv[..., :C], qkv[..., C : 2 * C], qkv[..., 2 * C :]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # key after query
    out = []
    for i in range(heads):
        cols = slice(i * d, (i + 1) * d)
        scores = q[..., cols] @ k[..., cols].transpose(-1, -2) / math.sqrt(d)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        out.append(weights @ v[..., cols])
    return torch.cat(out, -1) @ w_out.T + b_out


def reference_gpt(w, ids, depth, heads, start=0):
    """The usual pre-LN GPT on the weight tensors ``w`` (a state dict)."""
    emb = w["token_embed.weight"]
    x = emb[ids] + w["pos_embed"][0, start : start + ids.shape[1]]
    for g in range(depth):
        p = f"stack.blocks.{g}.field."
        h = layer_norm(x, w[p + "norm_a.weight"], w[p + "norm_a.bias"])
        x = x + causal_attention(
            h,
            w[p + "attn.qkv.weight"],
            w[p + "attn.qkv.bias"],
            w[p + "attn.proj.weight"],
            w[p + "attn.proj.bias"],
            heads,
        )
        h = layer_norm(x, w[p + "norm_m.weight"], w[p + "norm_m.bias"])
        h = gelu(h @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"])
        x = x + h @ w[p + "mlp.fc2.weight"].T + w[p + "mlp.fc2.bias"]
    x = layer_norm(x, w["norm.weight"], w["norm.bias"])
    return x @ emb.T


def test_sequential_euler_with_one_group_per_layer_is_the_plain_pre_ln_gpt():
    model = gpt("sequential")
    assert len(model.stack.blocks) == DEPTH  # groups default to the depth: G = D
    w = {k: v.clone() for k, v in model.state_dict().items()}
    ids = tokens(3, CONTEXT - 3)  # shorter than the context: positions 0 .. T-1
    with torch.no_grad():
        out = model(ids)
        ref = reference_gpt(w, ids, DEPTH, HEADS)
        shifted = model.forward_from(ids[:, :5], 4)
        ref_shifted = reference_gpt(w, ids[:, :5], DEPTH, HEADS, start=4)
    assert out.shape == (3, CONTEXT - 3, VOCAB) and out.dtype == torch.float64
    assert ref.std() > 0.5  # the comparison is between O(1) numbers, not near-zeros
    assert (out - ref).abs().max().item() < 1e-10
    assert (shifted - ref_shifted).abs().max().item() < 1e-10
    # The reference is sensitive to what it checks: e.g. dropping the mask moves it a lot.
    assert (shifted - reference_gpt(w, ids[:, :5], DEPTH, HEADS)).abs().max() > 1e-2


# ------------------------------------------------------------ causality

FIXED = [SolverConfig("euler", 1), SolverConfig("rk4", 2)]
TIGHT = SolverConfig("dopri5", 1, rtol=1e-7, atol=1e-9)
VARIANTS = [
    *[(arch, s, {}) for arch in ARCHS.names() for s in [*FIXED, TIGHT]],
    *[(arch, s, {"groups": 1}) for arch in ARCHS.names() for s in [FIXED[1], TIGHT]],
    *[("parallel", s, {"fused": True, "shared_norm": True}) for s in [*FIXED, TIGHT]],
    ("parallel", FIXED[1], {"fused": True, "shared_norm": True, "groups": 1}),
]


def _ids(v):
    arch, s, kw = v
    return "-".join([arch, f"{s.method}x{s.steps}", *sorted(kw)])


@pytest.mark.parametrize("variant", VARIANTS, ids=[_ids(v) for v in VARIANTS])
def test_a_future_token_never_changes_earlier_logits(variant):
    """Position ``p`` changed: logits before ``p`` must not move, logits from ``p`` on must.

    Fixed-step solvers apply the same causal map at every step, so earlier logits agree
    up to float64 rounding (1e-12 is ~10^4 ulps of O(1) logits; a real leak is O(1e-2)).

    Adaptive solvers (torchdiffeq dopri5) choose their steps from an RMS error norm over
    the whole state (all batch rows and positions), so changing a late token can change
    the step grid and with it the earlier logits, by no more than the two solves' global
    errors. What holds exactly is causality *for a given grid*: the restriction of a causal
    field to positions ``< p`` is a closed ODE of its own. Two ways to see both:

    * the original and the changed sequence in one batch share one grid, so their earlier
      logits agree to rounding (1e-12), for adaptive solvers too;
    * solved in separate calls, an adaptive solve agrees to the solver's tolerance only
      (rtol 1e-7, atol 1e-9 here; ~3e-8 seen, we allow 1e-6 on logits of size O(1)).
    """
    arch, solver, kw = variant
    model = gpt(arch, solver, **kw)
    adaptive = solver.method == "dopri5"
    ids = tokens(1, CONTEXT, seed=5)
    # Adaptive solves cost ~100 field evaluations each: one position suffices there.
    for p in (CONTEXT // 2,) if adaptive else (1, CONTEXT // 2, CONTEXT - 1):
        changed = ids.clone()
        changed[0, p] = (changed[0, p] + 1 + p) % VOCAB
        with torch.no_grad():
            both = model(torch.cat([ids, changed]))
            alone = model(changed)
        earlier = (both[0, :p] - both[1, :p]).abs().max().item()
        later = (both[0, p:] - both[1, p:]).abs().amax(-1)
        assert earlier < 1e-12, (p, earlier)
        assert later.min().item() > 1e-4, (p, later)  # the change did reach every later token
        apart = (alone[0, :p] - both[0, :p]).abs().max().item()
        assert apart < (1e-6 if adaptive else 1e-12), (p, apart)


# ------------------------------------------------------------ gradients and the tied head

GRAD_VARIANTS = [
    *[(arch, {"groups": g}) for arch in ARCHS.names() for g in (None, 1)],
    ("parallel", {"shared_norm": True}),
    ("parallel", {"shared_norm": True, "fused": True}),
    ("parallel", {"shared_norm": True, "fused": True, "groups": 1}),
]


@pytest.mark.parametrize(
    "arch,kw",
    GRAD_VARIANTS,
    ids=[f"{a}-{'-'.join(f'{k}{v}' for k, v in kw.items())}" for a, kw in GRAD_VARIANTS],
)
def test_every_parameter_receives_a_gradient(arch, kw):
    model = gpt(arch, SolverConfig("rk4", 1), dtype=torch.float32, scale=0, **kw).train()
    ids = tokens(2, CONTEXT + 1)  # inputs fill the context: every learned position is used
    logits = model(ids[:, :-1])
    F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    names = [n for n, _ in model.named_parameters()]
    assert "pos_embed" in names and "token_embed.weight" in names
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert param.grad.abs().sum() > 0, f"{name} got a zero gradient"
        assert torch.isfinite(param.grad).all(), name


def test_head_is_the_token_embedding():
    model = gpt("sequential", scale=0)
    embed = model.token_embed.weight
    # No other parameter could be a head: nothing else maps dim -> vocab.
    head_shaped = [n for n, p in model.named_parameters() if VOCAB in p.shape]
    assert head_shaped == ["token_embed.weight"]
    assert not [m for m in model.modules() if isinstance(m, nn.Linear) and VOCAB in m.weight.shape]
    stack = sum(p.numel() for p in model.stack.parameters())
    expected = VOCAB * DIM + CONTEXT * DIM + stack + 2 * DIM  # embed, positions, stack, norm
    assert count_params(model) == expected

    ids = tokens(2, 8) % 10  # tokens 10 .. VOCAB-1 never appear in the input
    unused = VOCAB - 1
    with torch.no_grad():
        before = model(ids)
        new_row = torch.randn(DIM, dtype=embed.dtype, generator=torch.Generator().manual_seed(7))
        embed[unused] = new_row
        after = model(ids)
    # The input is unchanged, so only the logit of the edited token moves ...
    others = torch.arange(VOCAB) != unused
    assert torch.equal(after[..., others], before[..., others])
    assert (after[..., unused] - before[..., unused]).abs().min() > 1e-6
    # ... and it is the final hidden state dotted with the new row: logits = h @ E^T.
    with torch.no_grad():
        hidden = model.norm(model.stack(model.token_embed(ids) + model.pos_embed[:, :8]))
    torch.testing.assert_close(after, hidden @ embed.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(after[..., unused], hidden @ new_row, rtol=0, atol=1e-12)


def test_a_token_absent_from_the_input_still_gets_an_embedding_gradient_through_the_head():
    model = gpt("parallel", dtype=torch.float32, scale=0)
    ids = tokens(2, CONTEXT) % 10
    logits = model(ids)
    F.cross_entropy(logits.flatten(0, 1), ids.roll(-1, 1).flatten()).backward()
    grad = model.token_embed.weight.grad
    assert (grad[10:].abs().sum(-1) > 0).all()  # rows never looked up still learn (the head)


# ------------------------------------------------------------ end to end

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
    "jumbo crates of zesty kiwi juice; naïve café owners sell crème brûlée for €4, "
    "and 12 + 30 = 42 is printed by print(sum([12, 30])) on line 7."
).split()


def write_corpus(folder, n_chars=6000):
    gen = torch.Generator().manual_seed(0)
    lines, size = [], 0
    while size < n_chars:
        n_words = int(torch.randint(4, 12, (1,), generator=gen))
        picks = torch.randint(0, len(WORDS), (n_words,), generator=gen)
        line = " ".join(WORDS[int(i)] for i in picks).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    text = "\n".join(lines) + "\n"
    (folder / "input.txt").write_text(text, encoding="utf-8")
    return text


TINY_LM = {
    "model.preset": "gpt-tiny",
    "model.dim": 32,
    "model.depth": 2,
    "model.heads": 2,
    "data.name": "text",
    "data.context": 32,
    "data.train_windows": 64,
    "train.epochs": 2,
    "train.batch_size": 16,
    "train.warmup_epochs": 0.5,
    "train.device": "cpu",
}


def test_tiny_gpt_trains_end_to_end_on_a_text_file(tmp_path):
    text = write_corpus(tmp_path)
    n_bytes = len(text.encode("utf-8"))
    assert n_bytes // 20 > 2 * 33  # val and test (5% each) hold a few windows of 33 bytes
    cfg = build_config(overrides={**TINY_LM, "data.root": str(tmp_path)})
    assert cfg.model.context == 128 and cfg.data.context == 32

    # An untrained model: logits near zero, so about log2(256) = 8 bits per byte.
    info = DATASETS["text"].info(cfg.data)
    splits = DATASETS["text"].load(cfg.data)
    torch.manual_seed(0)
    fresh = build_model(cfg.model, cfg.solver, info)
    initial = evaluate(fresh, DataLoader(splits.test, batch_size=8), torch.device("cpu"))
    assert initial.lm
    assert initial.bpb == pytest.approx(8.0, abs=0.1)
    scored = sum(int((y != IGNORE_INDEX).sum()) for _, y in splits.test)
    assert initial.samples == scored == len(splits.test.tokens) - 1

    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["unit"] == "byte"
    for key in ("test", "test_last"):
        result = summary[key]
        assert {"loss", "acc", "bpb", "ppl"} <= set(result)
        assert result["bpb"] == pytest.approx(result["loss"] / math.log(2), rel=1e-12)
        assert result["ppl"] == pytest.approx(math.exp(result["loss"]), rel=1e-12)
        assert result["samples"] == scored
    assert summary["test"]["bpb"] < initial.bpb  # two short epochs already learn something
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert float(r["val_bpb"]) == pytest.approx(float(r["val_loss"]) / math.log(2), rel=1e-5)
        assert float(r["val_ppl"]) == pytest.approx(math.exp(float(r["val_loss"])), rel=1e-5)
    assert summary["best_val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in rows))


# ------------------------------------------------------------ the context check


def lm_config(**overrides):
    return build_config(
        overrides={
            "model.preset": "gpt-tiny",
            "data.name": "text",
            "train.device": "cpu",
            **overrides,
        }
    )


def test_a_data_context_longer_than_the_model_context_is_refused():
    with pytest.raises(ConfigError) as err:  # refused while the config resolves
        lm_config(**{"data.context": 129})  # gpt-tiny reads 128 positions
    assert err.value.key == "data.context" and "129" in str(err.value)
    cfg = lm_config()
    # Library use builds from a DataInfo: the model checks it too.
    info = dataclasses.replace(DATASETS["text"].info(cfg.data), max_len=129)
    with pytest.raises(ConfigError) as err:
        check_fits(cfg.model, info)
    assert err.value.key == "data.context"
    assert "129" in str(err.value) and "128" in str(err.value)
    with pytest.raises(ConfigError, match=r"^data\.context: "):
        build_model(cfg.model, cfg.solver, info)
    # Raising model.context fixes it; equal lengths fit; data.context 0 takes the model's.
    cfg = lm_config(**{"data.context": 129, "model.context": 129})
    check_fits(cfg.model, DATASETS["text"].info(cfg.data))
    assert lm_config().data.context == 128
    cfg = lm_config(**{"data.context": 128, "model.dim": 16, "model.depth": 1})
    assert build_model(cfg.model, cfg.solver, DATASETS["text"].info(cfg.data)).context == 128


def test_text_data_with_an_image_model_preset_names_the_preset(tmp_path):
    """The default preset (vit-micro) on a text dataset: the error must say the model is the
    wrong kind (model.preset, suggesting a gpt preset), not blame data.context, which the
    user never set and which is 0 only because the preset has no context."""
    with pytest.raises(ConfigError) as err:
        build_config(overrides={"data.name": "pydoc-topics", "train.epochs": 1})
    assert err.value.key == "model.preset", str(err.value)
    assert "vit-micro" in str(err.value)
    assert "gpt-tiny" in str(err.value)
