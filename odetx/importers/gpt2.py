"""GPT-2 (``model_type: gpt2``): sequential pre-LN layers, learned positions, tied head.

Its linear layers are ``Conv1D`` modules storing ``(in, out)`` weights: transposed here.
"""

from __future__ import annotations

from odetx.importers.family import (
    Family,
    Imported,
    block,
    language_model,
    layer_prefix,
    layers,
    register_family,
)
from odetx.importers.source import Source, require

ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def convert(src: Source) -> Imported:
    dim = src.get("n_embd", int, low=1)
    depth = src.get("n_layer", int, low=1)
    heads = src.get("n_head", int, low=1)
    context = src.get("n_positions", int, low=1)
    vocab = src.get("vocab_size", int, low=1)
    hidden = src.get("n_inner", int, 4 * dim, low=1)
    act = src.get("activation_function", str, "gelu_new")
    require(act in ACTIVATIONS, "activation_function", f"{act!r} has no odetx MLP")
    require(src.get("scale_attn_weights", bool, True), "scale_attn_weights", "must be true")
    require(
        not src.get("scale_attn_by_inverse_layer_idx", bool, False),
        "scale_attn_by_inverse_layer_idx",
        "is not an odetx attention",
    )
    require(src.get("tie_word_embeddings", bool, True), "tie_word_embeddings", "must be true")
    require(dim % heads == 0, "n_head", f"{heads} does not divide n_embd {dim}")
    p = layer_prefix(src, ("transformer.", ""), "wte.weight")
    state = {
        "token_embed.weight": src.shaped(f"{p}wte.weight", vocab, dim),
        "pos_embed": src.shaped(f"{p}wpe.weight", context, dim)[None],
        "norm.weight": src.shaped(f"{p}ln_f.weight", dim),
        "norm.bias": src.shaped(f"{p}ln_f.bias", dim),
    }
    for i in range(depth):
        h, o = f"{p}h.{i}.", block(i)
        state[o + "norm_a.weight"] = src.shaped(h + "ln_1.weight", dim)
        state[o + "norm_a.bias"] = src.shaped(h + "ln_1.bias", dim)
        state[o + "norm_m.weight"] = src.shaped(h + "ln_2.weight", dim)
        state[o + "norm_m.bias"] = src.shaped(h + "ln_2.bias", dim)
        for ours, theirs, shape in (
            ("attn.qkv", "attn.c_attn", (dim, 3 * dim)),
            ("attn.proj", "attn.c_proj", (dim, dim)),
            ("mlp.fc1", "mlp.c_fc", (dim, hidden)),
            ("mlp.fc2", "mlp.c_proj", (hidden, dim)),
        ):
            state[f"{o}{ours}.weight"] = src.shaped(f"{h}{theirs}.weight", *shape).t().contiguous()
            state[f"{o}{ours}.bias"] = src.shaped(f"{h}{theirs}.bias", shape[1])
    model = {
        **layers("gpt-tiny", "sequential", depth, dim, heads, hidden),
        "context": context,
        "norm": "layernorm",
        "norm_eps": src.get("layer_norm_epsilon", float, 1e-5),
        "mlp": ACTIVATIONS[act],
        "pos": "learned",
        "bias": True,
        "qkv_bias": True,
        "tie_head": True,
    }
    info = language_model(vocab, context)
    return Imported(model, info, state)


register_family(
    Family(
        "gpt2",
        "GPT-2 (transformers model_type gpt2): sequential, learned positions, tied head",
        lambda src: src.config.get("model_type") == "gpt2",
        convert,
    )
)
