"""Llama and the models with its layer (``model_type: llama``, ``mistral``, ``qwen2``):
sequential pre-norm layers with RMSNorm, SwiGLU, rotary positions and grouped-query
attention.

Qwen2 adds q/k/v biases (``qkv_bias``); Mistral's sliding window equals full attention
while a window is no longer than it, so the context is capped there; an attention
output bias without MLP biases (or the reverse), a head size other than
width / heads, and scaled rotary variants are refused by name.
"""

from __future__ import annotations

import torch

from odetx.importers.family import Family, Imported, block, language_model, layers, register_family
from odetx.importers.rope import rope_settings
from odetx.importers.source import Source, require

TYPES = ("llama", "mistral", "qwen2")
EVAL_CONTEXT = 1024


def convert(src: Source) -> Imported:
    kind = src.config.get("model_type")
    dim = src.get("hidden_size", int, low=1)
    depth = src.get("num_hidden_layers", int, low=1)
    heads = src.get("num_attention_heads", int, low=1)
    kv_heads = src.get("num_key_value_heads", int, heads, low=1)
    hidden = src.get("intermediate_size", int, low=1)
    vocab = src.get("vocab_size", int, low=1)
    context = src.get("max_position_embeddings", int, low=1)
    act = src.get("hidden_act", str, "silu")
    require(act == "silu", "hidden_act", f"{act!r}: odetx's swiglu gates with SiLU")
    require(dim % heads == 0, "num_attention_heads", f"{heads} does not divide {dim}")
    head_dim = dim // heads
    require(
        src.get("head_dim", int, head_dim) == head_dim,
        "head_dim",
        f"{src.config.get('head_dim')} is not hidden_size / num_attention_heads = {head_dim}",
    )
    require(heads % kv_heads == 0, "num_key_value_heads", f"{kv_heads} does not divide {heads}")
    qkv_bias = kind == "qwen2" or src.get("attention_bias", bool, False)
    out_bias = kind != "qwen2" and src.get("attention_bias", bool, False)
    mlp_bias = src.get("mlp_bias", bool, False)
    require(out_bias == mlp_bias, "mlp_bias", "must equal attention_bias in odetx's field")
    window = src.config.get("sliding_window")
    if kind == "mistral" and isinstance(window, int) and window > 0:
        context = min(context, window)
    theta, fraction = rope_settings(src)
    require(fraction == 1.0, "partial_rotary_factor", "Llama's layer rotates every dimension")
    tied = src.get("tie_word_embeddings", bool, False)
    p = "model."
    state = {
        "token_embed.weight": src.shaped(f"{p}embed_tokens.weight", vocab, dim),
        "norm.weight": src.shaped(f"{p}norm.weight", dim),
    }
    if not tied:
        state["head.weight"] = src.shaped("lm_head.weight", vocab, dim)
    kv = kv_heads * head_dim
    for i in range(depth):
        h, o = f"{p}layers.{i}.", block(i)
        state[o + "norm_a.weight"] = src.shaped(h + "input_layernorm.weight", dim)
        state[o + "norm_m.weight"] = src.shaped(h + "post_attention_layernorm.weight", dim)
        a = h + "self_attn."
        state[o + "attn.qkv.weight"] = torch.cat(
            [
                src.shaped(a + "q_proj.weight", dim, dim),
                src.shaped(a + "k_proj.weight", kv, dim),
                src.shaped(a + "v_proj.weight", kv, dim),
            ]
        )
        if qkv_bias:
            state[o + "attn.qkv.bias"] = torch.cat(
                [
                    src.shaped(a + "q_proj.bias", dim),
                    src.shaped(a + "k_proj.bias", kv),
                    src.shaped(a + "v_proj.bias", kv),
                ]
            )
        state[o + "attn.proj.weight"] = src.shaped(a + "o_proj.weight", dim, dim)
        m = h + "mlp."
        state[o + "mlp.fc1.weight"] = torch.cat(
            [
                src.shaped(m + "gate_proj.weight", hidden, dim),
                src.shaped(m + "up_proj.weight", hidden, dim),
            ]
        )
        state[o + "mlp.fc2.weight"] = src.shaped(m + "down_proj.weight", dim, hidden)
        if out_bias:
            state[o + "attn.proj.bias"] = src.shaped(a + "o_proj.bias", dim)
            state[o + "mlp.fc1.bias"] = torch.cat(
                [src.shaped(m + "gate_proj.bias", hidden), src.shaped(m + "up_proj.bias", hidden)]
            )
            state[o + "mlp.fc2.bias"] = src.shaped(m + "down_proj.bias", dim)
    model = {
        **layers("gpt-tiny", "sequential", depth, dim, heads, hidden),
        "kv_heads": kv_heads,
        "context": context,
        "norm": "rmsnorm",
        "norm_eps": src.get("rms_norm_eps", float, 1e-6),
        "mlp": "swiglu",
        "pos": "rope",
        "rope_theta": theta,
        "rope_fraction": 1.0,
        "bias": out_bias,
        "qkv_bias": qkv_bias,
        "tie_head": tied,
    }
    info = language_model(vocab, context)
    return Imported(model, info, state, {"context": min(context, EVAL_CONTEXT)})


register_family(
    Family(
        "llama",
        "Llama-family (model_type llama, mistral, qwen2): sequential, RMSNorm, SwiGLU, "
        "RoPE, grouped-query attention",
        lambda src: src.config.get("model_type") in TYPES,
        convert,
    )
)
