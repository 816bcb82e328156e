"""GPT-NeoX / Pythia (``model_type: gpt_neox``): the pretrained *parallel* layer.

With ``use_parallel_residual`` (Pythia's default) a layer is
``x + attn(ln1 x) + mlp(ln2 x)``: one Euler step of A + M, odetx's ``parallel`` arch
with two norms; without it, the ``sequential`` one. Partial rotary positions
(``rotary_pct``), LayerNorms, exact GELU, biases everywhere, an untied head. The fused
``query_key_value`` holds each head's q, k, v together: reordered to odetx's
``[q; k; v]`` rows.
"""

from __future__ import annotations

import torch

from odetx.importers.family import Family, Imported, block, language_model, layers, register_family
from odetx.importers.rope import rope_settings
from odetx.importers.source import Source, require

EVAL_CONTEXT = 1024  # tokens per evaluation window unless the model reads fewer


def _qkv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``(heads, 3, head_dim, …)`` interleaved rows -> ``[q; k; v]``."""
    rest = t.shape[1:]
    grouped = t.reshape(heads, 3, -1, *rest)
    return torch.cat([grouped[:, j].reshape(-1, *rest) for j in range(3)])


def convert(src: Source) -> Imported:
    dim = src.get("hidden_size", int, low=1)
    depth = src.get("num_hidden_layers", int, low=1)
    heads = src.get("num_attention_heads", int, low=1)
    hidden = src.get("intermediate_size", int, low=1)
    vocab = src.get("vocab_size", int, low=1)
    context = src.get("max_position_embeddings", int, low=1)
    act = src.get("hidden_act", str, "gelu")
    require(act in ("gelu", "gelu_new", "gelu_pytorch_tanh"), "hidden_act", f"{act!r}")
    require(dim % heads == 0, "num_attention_heads", f"{heads} does not divide {dim}")
    require(src.get("attention_bias", bool, True), "attention_bias", "must be true")
    theta, fraction = rope_settings(src, 0.25)
    rotary = int(dim // heads * fraction)
    require(rotary % 2 == 0 and rotary > 0, "rotary_pct", f"gives {rotary} rotary dims")
    parallel = src.get("use_parallel_residual", bool, True)
    tied = src.get("tie_word_embeddings", bool, False)
    p = "gpt_neox."
    state = {
        "token_embed.weight": src.shaped(f"{p}embed_in.weight", vocab, dim),
        "norm.weight": src.shaped(f"{p}final_layer_norm.weight", dim),
        "norm.bias": src.shaped(f"{p}final_layer_norm.bias", dim),
    }
    if not tied:
        state["head.weight"] = src.shaped("embed_out.weight", vocab, dim)
    for i in range(depth):
        h, o = f"{p}layers.{i}.", block(i)
        for ours, theirs in (("norm_a", "input_layernorm"), ("norm_m", "post_attention_layernorm")):
            state[f"{o}{ours}.weight"] = src.shaped(f"{h}{theirs}.weight", dim)
            state[f"{o}{ours}.bias"] = src.shaped(f"{h}{theirs}.bias", dim)
        qkv = src.shaped(f"{h}attention.query_key_value.weight", 3 * dim, dim)
        state[o + "attn.qkv.weight"] = _qkv(qkv, heads)
        qkv_b = src.shaped(f"{h}attention.query_key_value.bias", 3 * dim)
        state[o + "attn.qkv.bias"] = _qkv(qkv_b, heads)
        for ours, theirs, shape in (
            ("attn.proj", "attention.dense", (dim, dim)),
            ("mlp.fc1", "mlp.dense_h_to_4h", (hidden, dim)),
            ("mlp.fc2", "mlp.dense_4h_to_h", (dim, hidden)),
        ):
            state[f"{o}{ours}.weight"] = src.shaped(f"{h}{theirs}.weight", *shape)
            state[f"{o}{ours}.bias"] = src.shaped(f"{h}{theirs}.bias", shape[0])
    model = {
        **layers("gpt-tiny", "parallel" if parallel else "sequential", depth, dim, heads, hidden),
        "context": context,
        "norm": "layernorm",
        "norm_eps": src.get("layer_norm_eps", float, 1e-5),
        "mlp": "gelu" if act == "gelu" else "gelu_tanh",
        "pos": "rope",
        "rope_theta": theta,
        "rope_fraction": rotary / (dim // heads),
        "bias": True,
        "qkv_bias": True,
        "tie_head": tied,
    }
    info = language_model(vocab, context)
    data = {"context": min(context, EVAL_CONTEXT)}
    return Imported(model, info, state, data, {"use_parallel_residual": parallel})


register_family(
    Family(
        "gpt_neox",
        "GPT-NeoX / Pythia (model_type gpt_neox): parallel (or sequential) residual, "
        "partial rotary",
        lambda src: src.config.get("model_type") == "gpt_neox",
        convert,
    )
)
