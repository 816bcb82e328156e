"""Field components (model.norm, model.mlp, model.pos, model.kv_heads, model.bias,
model.tie_head): each against a reference written out here and against Hugging Face's
own code; whole Llama- and NeoX-shaped models against a plain forward and against
transformers; every arch and solver with them (causal, scripted); the rolling cache;
refusals; sizes; presets."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from odetx.artefacts import save_checkpoint
from odetx.cli.app import app
from odetx.config import Config, ModelConfig, SolverConfig
from odetx.data import DATASETS
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.evaluation.generate import Generation, Sampling
from odetx.evaluation.load import LoadedModel
from odetx.export import FORMATS, input_spec
from odetx.export.check import check_parity
from odetx.models import ARCHS, MLPS, NORMS, POSITIONS, build_model, count_params, resolve_model
from odetx.models.components import Components
from odetx.models.factory import estimate_params
from odetx.models.fields import Attention
from odetx.models.fused import fuse_state_dict, unfuse_state_dict
from odetx.models.kvcache import KVCache
from odetx.models.mlps import GatedMLP
from odetx.models.positions import Rotary
from odetx.models.time import TimeNorm, TimeParts
from odetx.resolve import build_config, create_model
from odetx.solvers import SOLVERS
from odetx.training import Trainer
from tests.test_lm import TINY_LM, write_corpus

VOCAB, CONTEXT = 40, 10
TEXT = DataInfo("text", VOCAB, vocab_size=VOCAB, max_len=CONTEXT)
IMAGES = DataInfo("image", 5, image_size=8, in_chans=1)
TOKENS = DataInfo("tokens", 3, vocab_size=12, max_len=9)
PLAIN = {}
LLAMA = dict(norm="rmsnorm", mlp="swiglu", pos="rope", kv_heads=2, bias=False, qkv_bias=False)
NEOX = dict(pos="rope", rope_fraction=0.5, mlp="gelu_tanh", tie_head=False)
COMBOS = {"layernorm-gelu": PLAIN, "rmsnorm-swiglu-rope-gqa": LLAMA}
SLOW = pytest.mark.slow  # torch.export and ONNX take 15-50 s to capture even a tiny model
SOLVER_CASES = [
    SolverConfig("euler"),
    SolverConfig("rk4"),
    SolverConfig("dopri5", rtol=1e-5, atol=1e-6),
    SolverConfig("rk2-learned"),
]


def gpt(arch="sequential", solver=SolverConfig("euler"), dtype=torch.float64, **kw):
    """A tiny GPT (dim 16, 4 heads of 4) with weights large enough to matter."""
    torch.manual_seed(0)
    kw = {"depth": 2, "dim": 16, "heads": 4, "mlp_ratio": 2.0, "context": CONTEXT, **kw}
    model = create_model(ModelConfig(preset="gpt-tiny", arch=arch, **kw), solver, TEXT)
    model = model.to(dtype).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return model


def ids(length=CONTEXT, batch=2, seed=2):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def randn(*shape, seed=3, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- plain references


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate(vec, pos, rot, theta):
    """One head's vector at position ``pos``, rotated pair by pair: dim i with i + rot/2."""
    out = vec.clone()
    half = rot // 2
    for i in range(half):
        angle = pos * theta ** (-2.0 * i / rot)
        a, b = vec[i], vec[i + half]
        out[i] = a * math.cos(angle) - b * math.sin(angle)
        out[i + half] = b * math.cos(angle) + a * math.sin(angle)
    return out


def attention_ref(h, w_qkv, b_qkv, heads, kv_heads, rope=None, causal=True):
    """Grouped-query attention of one sequence ``h`` (N, dim), loop by loop; ``rope`` is
    ``(rot, theta)``. Rows of ``w_qkv``: all query heads, all key heads, all value heads."""
    N, dim = h.shape
    hd = dim // heads
    qkv = h @ w_qkv.T + (0 if b_qkv is None else b_qkv)
    q = qkv[:, : heads * hd].reshape(N, heads, hd)
    k = qkv[:, heads * hd : (heads + kv_heads) * hd].reshape(N, kv_heads, hd)
    v = qkv[:, (heads + kv_heads) * hd :].reshape(N, kv_heads, hd)
    out = torch.zeros(N, heads, hd, dtype=h.dtype)
    for head in range(heads):
        g = head // (heads // kv_heads)  # the key/value head this query head reads
        for i in range(N):
            qi = q[i, head] if rope is None else rotate(q[i, head], i, *rope)
            scores = []
            for j in range(N):
                kj = k[j, g] if rope is None else rotate(k[j, g], j, *rope)
                allowed = j <= i or not causal
                scores.append(float(qi @ kj) / math.sqrt(hd) if allowed else -math.inf)
            weights = torch.softmax(torch.tensor(scores, dtype=h.dtype), 0)
            out[i, head] = sum(weights[j] * v[j, g] for j in range(N))
    return out.reshape(N, dim)


def linear(x, sd, name):
    bias = sd.get(name + ".bias")
    return x @ sd[name + ".weight"].T + (0 if bias is None else bias)


# ---------------------------------------------------------------- components alone


def test_rmsnorm_is_the_formula_and_squares_half_precision_in_float32():
    norm = TimeNorm(8, NORMS["rmsnorm"], 1e-6).double()
    with torch.no_grad():
        norm.weight.copy_(randn(8, seed=1))
    x = randn(3, 5, 8)
    assert dict(norm.named_parameters()).keys() == {"weight"}
    torch.testing.assert_close(norm(x), rms_norm(x, norm.weight, 1e-6), rtol=1e-12, atol=1e-12)
    # bfloat16 in: squared and averaged in float32 (Llama's), rounded back, then scaled.
    half, w = x.to(torch.bfloat16), norm.weight.float()
    h = half.float()
    want = w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(norm.float()(half), want, rtol=0, atol=0)


def test_swiglu_keeps_gate_then_up_in_fc1_and_gelu_tanh_is_the_tanh_formula():
    mlp = GatedMLP(8, 6, bias=False).double()
    x = randn(4, 8)
    w = mlp.fc1.weight
    assert w.shape == (12, 8) and mlp.fc1.bias is None and mlp.fc2.bias is None
    want = (F.silu(x @ w[:6].T) * (x @ w[6:].T)) @ mlp.fc2.weight.T
    torch.testing.assert_close(mlp(x), want, rtol=1e-12, atol=1e-12)
    tanh = MLPS["gelu_tanh"].build(8, 6, 0.0, TimeParts(), True).double()
    h = linear(x, tanh.state_dict(), "fc1")
    g = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    torch.testing.assert_close(tanh(x), linear(g, tanh.state_dict(), "fc2"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fraction, start", [(1.0, 0), (0.5, 7), (0.25, 100)])
def test_rope_rotates_the_first_dims_of_each_head_by_position(fraction, start):
    rope = Rotary(8, fraction, theta=500.0)
    x = randn(2, 3, 5, 8)  # (B, heads, N, head_dim)
    got = rope(x, start)
    rot = round(8 * fraction)
    for b in range(2):
        for h in range(3):
            for n in range(5):
                want = rotate(x[b, h, n], start + n, rot, 500.0)
                torch.testing.assert_close(got[b, h, n], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("rope", [False, True])
def test_grouped_query_attention_is_the_loops(kv_heads, rope):
    comp = Components(kv_heads=kv_heads, rope=rope, rope_theta=100.0, rope_fraction=0.5)
    attn = Attention(16, 4, qkv_bias=True, causal=True, comp=comp).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.copy_(0.4 * randn(*p.shape, seed=p.numel()))
    assert attn.qkv.weight.shape == ((4 + 2 * kv_heads) * 4, 16)
    x = randn(2, 6, 16)
    got = attn(x)
    sd = attn.state_dict()
    for b in range(2):
        mixed = attention_ref(
            x[b], sd["qkv.weight"], sd["qkv.bias"], 4, kv_heads, (2, 100.0) if rope else None
        )
        torch.testing.assert_close(got[b], linear(mixed, sd, "proj"), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- against transformers


def test_components_match_transformers_llama_and_neox_code():
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt_neox import modeling_gpt_neox as neox
    from transformers.models.llama import modeling_llama as llama

    hf_norm = llama.LlamaRMSNorm(16, eps=1e-6)
    ours = TimeNorm(16, NORMS["rmsnorm"], 1e-6)
    with torch.no_grad():
        hf_norm.weight.copy_(randn(16, seed=4, dtype=torch.float32))
        ours.weight.copy_(hf_norm.weight)
    x = randn(2, 5, 16, dtype=torch.float32)
    torch.testing.assert_close(ours(x), hf_norm(x), rtol=0, atol=1e-6)
    half = x.to(torch.bfloat16)  # squared in float32 by both
    torch.testing.assert_close(ours(half), hf_norm(half), rtol=0, atol=0)

    q, k = randn(2, 4, 7, 8, seed=5, dtype=torch.float32), randn(2, 2, 7, 8, seed=6).float()
    positions = torch.arange(3, 10)[None]
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_attention_heads=4,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
    )
    cos, sin = llama.LlamaRotaryEmbedding(config)(q, positions)
    want_q, want_k = llama.apply_rotary_pos_emb(q, k, cos, sin)
    rope = Rotary(8, 1.0, 500.0)
    torch.testing.assert_close(rope(q, 3), want_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(rope(k, 3), want_k, rtol=0, atol=1e-6)

    config = transformers.GPTNeoXConfig(
        hidden_size=32, num_attention_heads=4, rotary_pct=0.5, rotary_emb_base=10000
    )
    cos, sin = neox.GPTNeoXRotaryEmbedding(config)(q, positions)
    want_q, _ = neox.apply_rotary_pos_emb(q, q, cos, sin)
    torch.testing.assert_close(Rotary(8, 0.5)(q, 3), want_q, rtol=0, atol=1e-6)

    attn = Attention(32, 4, comp=Components(kv_heads=2))
    torch.testing.assert_close(attn.core.expand(k), llama.repeat_kv(k, 2), rtol=0, atol=0)


def llama_state(model):
    """Our llama-like GPT's weights under Hugging Face's LlamaForCausalLM names."""
    sd, out = model.state_dict(), {}
    dim = sd["token_embed.weight"].shape[1]
    out["model.embed_tokens.weight"] = sd["token_embed.weight"]
    out["model.norm.weight"] = sd["norm.weight"]
    out["lm_head.weight"] = sd["head.weight"]
    for i in range(len(model.stack.blocks)):
        p, h = f"stack.blocks.{i}.field.", f"model.layers.{i}."
        qkv = sd[p + "attn.qkv.weight"]
        kv = (qkv.shape[0] - dim) // 2
        q_w, k_w, v_w = qkv.split([dim, kv, kv])
        gate, up = sd[p + "mlp.fc1.weight"].chunk(2)
        out.update(
            {
                h + "input_layernorm.weight": sd[p + "norm_a.weight"],
                h + "post_attention_layernorm.weight": sd[p + "norm_m.weight"],
                h + "self_attn.q_proj.weight": q_w,
                h + "self_attn.k_proj.weight": k_w,
                h + "self_attn.v_proj.weight": v_w,
                h + "self_attn.o_proj.weight": sd[p + "attn.proj.weight"],
                h + "mlp.gate_proj.weight": gate,
                h + "mlp.up_proj.weight": up,
                h + "mlp.down_proj.weight": sd[p + "mlp.fc2.weight"],
            }
        )
    return out


def test_a_llama_shaped_gpt_is_transformers_llama():
    transformers = pytest.importorskip("transformers")
    model = gpt(dtype=torch.float32, rope_theta=500.0, norm_eps=1e-5, **LLAMA, tie_head=False)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=CONTEXT,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
    )
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.load_state_dict(llama_state(model))
    tokens = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, rtol=0, atol=1e-5)


def test_a_neox_shaped_gpt_is_transformers_gpt_neox():
    transformers = pytest.importorskip("transformers")
    model = gpt("parallel", dtype=torch.float32, pos="rope", rope_fraction=0.5, tie_head=False)
    config = transformers.GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT,
        rotary_pct=0.5,
        rotary_emb_base=10000,
        hidden_act="gelu",
        use_parallel_residual=True,
        tie_word_embeddings=False,
    )
    hf = transformers.GPTNeoXForCausalLM(config).eval()
    sd, out = model.state_dict(), {}
    out["gpt_neox.embed_in.weight"] = sd["token_embed.weight"]
    out["gpt_neox.final_layer_norm.weight"] = sd["norm.weight"]
    out["gpt_neox.final_layer_norm.bias"] = sd["norm.bias"]
    out["lm_head.weight"] = sd["head.weight"]
    for i in range(2):
        p, h = f"stack.blocks.{i}.field.", f"gpt_neox.layers.{i}."
        for ours, theirs in (
            ("norm_a", "input_layernorm"),
            ("norm_m", "post_attention_layernorm"),
            ("attn.proj", "attention.dense"),
            ("mlp.fc1", "mlp.dense_h_to_4h"),
            ("mlp.fc2", "mlp.dense_4h_to_h"),
        ):
            for kind in ("weight", "bias"):
                out[f"{h}{theirs}.{kind}"] = sd[f"{p}{ours}.{kind}"]
        # NeoX keeps each head's q, k, v together; ours: all q heads, all k heads, all v heads.
        w = sd[p + "attn.qkv.weight"].view(3, 4, 4, 16).transpose(0, 1).reshape(48, 16)
        b = sd[p + "attn.qkv.bias"].view(3, 4, 4).transpose(0, 1).reshape(48)
        out[h + "attention.query_key_value.weight"], out[h + "attention.query_key_value.bias"] = (
            w,
            b,
        )
    hf.load_state_dict(out)
    tokens = ids()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- a whole model, by hand


def test_a_llama_like_gpt_is_the_plain_forward_written_out():
    model = gpt(norm_eps=1e-5, rope_theta=1000.0, **LLAMA, tie_head=False)
    sd = model.state_dict()
    assert "pos_embed" not in sd and "head.weight" in sd
    assert not any(k.endswith(".bias") for k in sd)
    tokens = ids(length=6, batch=1)
    x = sd["token_embed.weight"][tokens[0]]
    for i in range(2):
        p = f"stack.blocks.{i}.field."
        h = rms_norm(x, sd[p + "norm_a.weight"], 1e-5)
        mixed = attention_ref(h, sd[p + "attn.qkv.weight"], None, 4, 2, (4, 1000.0))
        x = x + mixed @ sd[p + "attn.proj.weight"].T
        h = rms_norm(x, sd[p + "norm_m.weight"], 1e-5)
        gate, up = sd[p + "mlp.fc1.weight"].chunk(2)
        x = x + (F.silu(h @ gate.T) * (h @ up.T)) @ sd[p + "mlp.fc2.weight"].T
    want = rms_norm(x, sd["norm.weight"], 1e-5) @ sd["head.weight"].T
    torch.testing.assert_close(model(tokens)[0], want, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- every arch and solver


def scripted_parity(model):
    """Script ``model`` as ``odetx export`` does and compare on two fresh batches."""
    spec = input_spec(TEXT)
    artefact = FORMATS["torchscript"].build(model, spec.sample(2, torch.Generator()), ())
    gen = torch.Generator().manual_seed(1)
    batches = {1: spec.sample(1, gen), 3: spec.sample(3, gen, short=True)}
    return check_parity(model, artefact, batches, 1e-5)


@pytest.mark.parametrize("combo", COMBOS.values(), ids=COMBOS.keys())
@pytest.mark.parametrize("solver", SOLVER_CASES, ids=lambda s: s.method)
@pytest.mark.parametrize("arch", ARCHS.names())
def test_every_arch_and_solver_runs_stays_causal_and_scripts(arch, solver, combo):
    model = gpt(arch, solver, dtype=torch.float32, **combo)
    tokens = ids(length=8)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert a.shape == (2, 8, VOCAB) and torch.isfinite(a).all()
    if SOLVERS[solver.method].adaptive:
        # A whole-sequence error norm couples the tokens' step sizes: causal to tolerance.
        assert (a[:, :5] - b[:, :5]).abs().max() < 1e-3
    else:
        assert torch.equal(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-4
    if SOLVERS[solver.method].adaptive:  # what `odetx export --solver rk4` bakes in
        fixed = gpt(arch, SolverConfig("rk4"), dtype=torch.float32, **combo)
        fixed.load_state_dict(model.state_dict())
        model = fixed
    assert scripted_parity(model).ok


def test_components_train_with_sharing_time_drop_path_and_regularisers(tmp_path):
    write_corpus(tmp_path)
    overrides = {
        **TINY_LM,
        "data.root": str(tmp_path),
        "model.dim": 16,
        "model.heads": 4,
        "model.groups": 1,
        "model.time": "film",
        "model.drop_path": 0.1,
        "model.dropout": 0.1,
        "train.epochs": 1,
        "train.reg_kinetic": 0.01,
        "solver.method": "rk2-learned",
        "train.threads": 1,
        **{f"model.{k}": v for k, v in LLAMA.items()},
    }
    summary = Trainer(build_config(overrides=overrides), tmp_path / "run").fit()
    assert math.isfinite(summary["test"]["loss"])


@pytest.mark.parametrize("time, kw", [("film", {}), ("basis", {"time_basis": 3})])
def test_time_dependent_components_script_and_start_as_the_autonomous_model(time, kw):
    plain = gpt("strang", SolverConfig("heun"), **LLAMA)
    timed = gpt("strang", SolverConfig("heun"), **LLAMA, time=time, **kw)
    state = dict(plain.state_dict())
    fresh = timed.state_dict()
    for k, v in fresh.items():  # the autonomous weights; the rest as a fresh model has them
        if k not in state:
            state[k] = torch.zeros_like(v)
        elif v.shape != state[k].shape:  # basis: the constant term first, the others zero
            state[k] = torch.cat([state[k][None], torch.zeros_like(v[1:])])
    timed.load_state_dict(state)
    tokens = ids()
    with torch.no_grad():
        torch.testing.assert_close(timed(tokens), plain(tokens), rtol=1e-12, atol=1e-12)
    assert scripted_parity(timed.float()).ok


def test_the_fused_layer_takes_rmsnorm_rope_gqa_and_gelu_tanh():
    comps = dict(norm="rmsnorm", pos="rope", rope_fraction=0.5, kv_heads=1, mlp="gelu_tanh")
    solver = SolverConfig("rk4")
    plain = gpt("parallel", solver, shared_norm=True, dropout=0.0, **comps)
    fused = gpt("parallel", solver, shared_norm=True, dropout=0.0, fused=True, **comps)
    state = plain.state_dict()
    fused.load_state_dict(fuse_state_dict(state))
    back = unfuse_state_dict(fused.state_dict())
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    tokens = ids()
    with torch.no_grad():
        torch.testing.assert_close(fused(tokens), plain(tokens), rtol=1e-10, atol=1e-10)
    assert scripted_parity(fused.float()).ok


# ---------------------------------------------------------------- the key/value cache


def fed_one_by_one(model, tokens, prompt=3):
    with torch.no_grad(), KVCache(model) as cache:
        cache.begin()
        pieces = [model.forward_from(tokens[:, :prompt], 0)]
        cache.commit(prompt)
        for i in range(prompt, tokens.shape[1]):
            cache.begin()
            pieces.append(model.forward_from(tokens[:, i : i + 1], i))
            cache.commit(1)
    return torch.cat(pieces, dim=1)


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize("combo", [LLAMA, NEOX, dict(pos="none")], ids=["llama", "neox", "nope"])
def test_the_cache_is_exact_up_to_the_context(arch, combo):
    model = gpt(arch, SolverConfig("rk4", steps=2), **combo)
    tokens = ids(batch=1)
    with torch.no_grad():
        whole = model(tokens)
    assert (fed_one_by_one(model, tokens) - whole).abs().max() < 1e-12


def loaded(model, cfg: ModelConfig, solver=SolverConfig("euler")):
    config = Config(model=resolve_model(cfg), solver=solver)
    info = DataInfo("text", 256, vocab_size=256, max_len=cfg.context)
    return LoadedModel(model, config, info, solver, solver, Path("memory"))


def byte_gpt(depth, solver=SolverConfig("euler"), **kw):
    cfg = ModelConfig(
        preset="gpt-tiny", arch="sequential", depth=depth, dim=16, heads=4, context=8, **kw
    )
    torch.manual_seed(0)
    model = create_model(cfg, solver, DataInfo("text", 256, vocab_size=256, max_len=8))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    return model.double().eval(), cfg


def generate(model, cfg, cache, n=30, prompt="abcdef"):
    fed = []
    forward = model.forward_from

    def spy(tokens, start):
        fed.append(tokens.shape[1])
        return forward(tokens, start)

    model.forward_from = spy
    try:
        run = Generation(loaded(model, cfg), prompt, Sampling(n, temperature=0.0), cache)
        out = list(run.ids())
    finally:
        del model.forward_from
    return out, fed


def test_past_the_context_a_rope_cache_rolls_and_feeds_one_token():
    model, cfg = byte_gpt(2, **LLAMA)
    _, fed = generate(model, cfg, cache=True)  # context 8, prompt 6, 30 new tokens
    assert fed == [6] + [1] * 29  # never the whole window again
    learned, lcfg = byte_gpt(2)
    _, fed = generate(learned, lcfg, cache=True)
    assert fed[:3] == [6, 1, 1] and fed[3:] == [8] * 27  # learned positions recompute
    with KVCache(model) as cache:  # rolling keeps the held keys at the context
        cache.begin()
        with torch.no_grad():
            model.forward_from(torch.zeros(1, 8, dtype=torch.long), 0)
        cache.commit(8)
        cache.drop_oldest(1)
        held = [k for slots in cache.slots.values() for k, _ in slots]
        assert {k.shape[2] for k in held} == {7}  # positions held
        assert {k.shape[1] for k in held} == {2}  # the 2 key/value heads, not 4 repeats
        assert cache.length == 8


@pytest.mark.parametrize("combo", [LLAMA, dict(pos="none")], ids=["rope", "nope"])
def test_with_one_attention_evaluation_rolling_is_recomputing_the_window(combo):
    # One Euler layer: cached keys depend on their own token alone, so a rolled cache
    # holds what recomputing the window would (rotary: the same relative positions).
    model, cfg = byte_gpt(1, **combo)
    rolled, _ = generate(model, cfg, cache=True)
    recomputed, fed = generate(model, cfg, cache=False)
    assert fed[-1] == 8 and rolled == recomputed


def test_past_the_context_a_deeper_models_rolling_cache_is_a_sliding_window():
    # Deeper evaluations cached states that saw older tokens: equal while the window
    # fills, different (as documented) once it rolls.
    model, cfg = byte_gpt(3, **LLAMA)
    tokens = torch.randint(0, 256, (1, 14), generator=torch.Generator().manual_seed(4))
    with torch.no_grad(), KVCache(model) as cache:
        steps = []
        cache.begin()
        steps.append(model.forward_from(tokens[:, :8], 0)[:, -1])
        cache.commit(8)
        for i in range(8, 14):
            cache.drop_oldest(1)
            cache.begin()
            steps.append(model.forward_from(tokens[:, i : i + 1], 7)[:, -1])
            cache.commit(1)
        windows = [model(tokens[:, i - 7 : i + 1])[:, -1] for i in range(7, 14)]
    assert (steps[0] - windows[0]).abs().max() < 1e-12
    assert all(torch.isfinite(s).all() for s in steps)
    assert (steps[-1] - windows[-1]).abs().max() > 1e-6


# ---------------------------------------------------------------- config, sizes, presets


@pytest.mark.parametrize(
    "kw, key",
    [
        (dict(norm="batchnorm"), "model.norm"),
        (dict(mlp="relu"), "model.mlp"),
        (dict(pos="alibi"), "model.pos"),
        (dict(norm_eps=0.0), "model.norm_eps"),
        (dict(norm_eps=float("nan")), "model.norm_eps"),
        (dict(mlp_hidden=0), "model.mlp_hidden"),
        (dict(kv_heads=3), "model.kv_heads"),
        (dict(kv_heads=0), "model.kv_heads"),
        (dict(pos="rope", rope_fraction=0.1), "model.rope_fraction"),  # 0.4 of 4 dims
        (dict(pos="rope", rope_fraction=0.75), "model.rope_fraction"),  # 3 dims: odd
        (dict(pos="rope", rope_fraction=1.5), "model.rope_fraction"),
        (dict(pos="rope", rope_theta=-1.0), "model.rope_theta"),
        (dict(rope_theta=500.0), "model.rope_theta"),  # learned positions
        (
            dict(arch="parallel", shared_norm=True, fused=True, dropout=0.0, mlp="swiglu"),
            "model.fused",
        ),
        (
            dict(arch="parallel", shared_norm=True, fused=True, dropout=0.0, bias=False),
            "model.fused",
        ),
    ],
)
def test_impossible_components_are_refused_naming_the_key(kw, key):
    with pytest.raises(ConfigError) as info:
        resolve_model(ModelConfig(preset="gpt-tiny", dim=16, heads=4, **kw))
    assert info.value.key == key


@pytest.mark.parametrize(
    "preset, kw, key",
    [
        ("vit-micro", dict(pos="rope"), "model.pos"),
        ("vit-micro", dict(tie_head=False), "model.tie_head"),
        ("enc-tiny", dict(tie_head=True), "model.tie_head"),
    ],
)
def test_components_that_do_not_apply_to_a_backbone_are_refused(preset, kw, key):
    with pytest.raises(ConfigError) as info:
        resolve_model(ModelConfig(preset=preset, **kw))
    assert info.value.key == key


def test_presets_fill_components_and_resolving_twice_changes_nothing():
    llama = resolve_model(ModelConfig(preset="llama-tiny"))
    assert (llama.norm, llama.norm_eps, llama.mlp, llama.pos, llama.kv_heads) == (
        "rmsnorm",
        1e-6,
        "swiglu",
        "rope",
        2,
    )
    assert (llama.bias, llama.qkv_bias, llama.tie_head, llama.rope_theta) == (
        False,
        False,
        False,
        1e4,
    )
    neox = resolve_model(ModelConfig(preset="neox-tiny"))
    assert (neox.norm, neox.pos, neox.rope_fraction, neox.tie_head, neox.bias) == (
        "layernorm",
        "rope",
        0.25,
        False,
        True,
    )
    plain = resolve_model(ModelConfig(preset="gpt-tiny"))
    assert (plain.norm, plain.norm_eps, plain.mlp, plain.pos, plain.tie_head) == (
        "layernorm",
        1e-5,
        "gelu",
        "learned",
        True,
    )
    assert plain.rope_theta is None and plain.kv_heads is None
    vit = resolve_model(ModelConfig(preset="vit-micro", norm="rmsnorm"))
    assert vit.norm_eps == 1e-6 and vit.tie_head is None
    for cfg in (llama, neox, plain, vit):
        assert resolve_model(cfg) == cfg
    # Another norm on a preset takes that norm's own eps, not the preset's norm's.
    assert resolve_model(ModelConfig(preset="llama-tiny", norm="layernorm")).norm_eps == 1e-5


@pytest.mark.parametrize(
    "preset, info, kw",
    [
        ("gpt-tiny", TEXT, LLAMA),
        ("gpt-tiny", TEXT, dict(NEOX, mlp_hidden=24, shared_norm=True, arch="parallel")),
        ("gpt-tiny", TEXT, dict(pos="none", norm="rmsnorm", tie_head=False)),
        ("gpt-tiny", TEXT, dict(LLAMA, time="basis", time_basis=2)),
        ("gpt-tiny", TEXT, dict(LLAMA, time="film")),
        ("vit-micro", IMAGES, dict(norm="rmsnorm", mlp="swiglu", kv_heads=1, bias=False)),
        ("vit-micro", IMAGES, dict(pos="none", mlp="gelu_tanh")),
        ("enc-tiny", TOKENS, dict(LLAMA, pool="mean")),
        ("enc-tiny", TOKENS, dict(pos="none", qkv_bias=False)),
    ],
)
def test_the_size_estimate_counts_every_component(preset, info, kw):
    kw = {"depth": 2, "dim": 16, "heads": 4, **kw}
    if info.kind == "image":
        kw["patch_size"] = 4
    cfg = resolve_model(ModelConfig(preset=preset, **kw))
    model = create_model(cfg, SolverConfig("euler"), info)
    assert estimate_params(cfg, info) == pytest.approx(count_params(model), abs=1)


def test_an_encoder_with_rotary_positions_honours_its_padding():
    cfg = ModelConfig(preset="enc-tiny", depth=2, dim=16, heads=4, **LLAMA)
    torch.manual_seed(0)
    model = create_model(cfg, SolverConfig("rk4"), TOKENS).double().eval()
    tokens = torch.randint(1, 12, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.arange(9)[None] < torch.tensor([[9], [5]])
    other = tokens.masked_fill(~mask, 3)  # what padding holds changes nothing
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, mask), model(other, mask), rtol=0, atol=1e-12)
    artefact = FORMATS["torchscript"].build(model.float(), (tokens, mask), ())
    assert check_parity(model, artefact, {2: (tokens, mask)}, 1e-5).ok


def test_list_shows_the_component_registries():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for name in [*NORMS, *MLPS, *POSITIONS, "llama-tiny", "neox-tiny"]:
        assert name in result.output


def test_llama_tiny_is_small_enough_for_a_cpu():
    info = DataInfo("text", 256, vocab_size=256, max_len=128)
    model = create_model(ModelConfig(preset="llama-tiny"), SolverConfig("euler"), info)
    assert 0.7e6 < count_params(model) < 0.9e6


# ---------------------------------------------------------------- export formats


@pytest.mark.parametrize(
    "fmt", ["torchscript", pytest.param("pt2", marks=SLOW), pytest.param("onnx", marks=SLOW)]
)
def test_a_llama_like_checkpoint_exports_with_parity(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    write_corpus(tmp_path)
    overrides = {
        **TINY_LM,
        "data.root": str(tmp_path),
        "data.context": CONTEXT,
        "model.dim": 16,
        "model.heads": 4,
        "solver.method": "rk4",
        **{f"model.{k}": v for k, v in LLAMA.items()},
    }
    cfg = build_config(overrides=overrides)
    info = DATASETS["text"].info(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.solver, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    payload = {"config": cfg.to_dict(), "data_info": info.__dict__, "model": model.state_dict()}
    save_checkpoint(tmp_path / "m.pt", payload)
    out = tmp_path / f"m{FORMATS[fmt].suffix}"
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "m.pt"), "--out", str(out), "--format", fmt, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["parity"]["max_abs_diff"] < 1e-4
