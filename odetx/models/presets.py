"""Named model presets (``--model``): backbone, dimensions and field components; any field
can be overridden."""

from __future__ import annotations

from dataclasses import dataclass

from odetx.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A backbone and its sizes; the field components (``model.norm`` …) default to the
    plain pre-LN layer with learned positions."""

    name: str
    backbone: str
    depth: int
    dim: int
    heads: int
    mlp_ratio: float
    patch_size: int
    description: str
    dropout: float = 0.0
    context: int = 0  # gpt: positions, the longest window the model reads
    norm: str = "layernorm"
    norm_eps: float | None = None  # None: the norm's own
    mlp: str = "gelu"
    attn: str = "softmax"
    pos: str = "learned"
    rope_theta: float = 10000.0
    rope_fraction: float = 1.0
    kv_heads: int | None = None  # None: one per query head
    bias: bool = True
    qkv_bias: bool = True
    tie_head: bool = True  # gpt only


PRESETS: Registry[Preset] = Registry("preset")


def register_preset(preset: Preset) -> Preset:
    return PRESETS.register(preset.name, preset)


# 2x2 patches of 4x4 pixels: on 1,257 training digits, fewer and wider tokens plus
# dropout and light mixup generalise better than 16 tokens of 2x2 pixels.
register_preset(
    Preset("vit-micro", "vit", 6, 96, 4, 2.0, 4, "tiny ViT for 8x8 digits (CPU, seconds)", 0.1)
)
register_preset(Preset("vit-mini", "vit", 6, 128, 4, 2.0, 4, "small ViT for 28-32 px images (CPU)"))
register_preset(
    Preset("deit-tiny", "vit", 12, 192, 3, 4.0, 16, "DeiT-Ti (Touvron et al. 2021), 5.7M @224")
)
register_preset(
    Preset("deit-small", "vit", 12, 384, 6, 4.0, 16, "DeiT-S (Touvron et al. 2021), 22M @224")
)
register_preset(
    Preset("enc-tiny", "encoder", 4, 64, 4, 2.0, 0, "tiny sequence encoder (ListOps, parity; CPU)")
)
register_preset(
    Preset("enc-small", "encoder", 6, 128, 4, 2.0, 0, "small sequence encoder (LRA ListOps)")
)
register_preset(
    Preset(
        "gpt-tiny",
        "gpt",
        4,
        128,
        4,
        4.0,
        0,
        "tiny byte-level language model (CPU, minutes)",
        context=128,
    )
)
register_preset(
    Preset(
        "gpt-shakespeare",
        "gpt",
        6,
        384,
        6,
        4.0,
        0,
        "nanoGPT's character-level Shakespeare size, ~10.7M (GPU)",
        0.2,
        context=256,
    )
)
# Llama's layer (use --arch sequential for Llama's own splitting): RMSNorm, SwiGLU with
# about Llama's 8/3 · dim hidden units at gpt-tiny's MLP size, rotary positions, two
# key/value heads for four query heads, no biases, an untied head.
register_preset(
    Preset(
        "llama-tiny",
        "gpt",
        4,
        128,
        4,
        2.75,
        0,
        "tiny Llama-shaped LM: RMSNorm, SwiGLU, RoPE, GQA, no biases (CPU, minutes)",
        context=128,
        norm="rmsnorm",
        mlp="swiglu",
        pos="rope",
        kv_heads=2,
        bias=False,
        qkv_bias=False,
        tie_head=False,
    )
)
# GPT-NeoX's layer (Pythia): the parallel arch (the default) with two LayerNorms, exact
# GELU, a quarter of each head rotary, biases, an untied head.
register_preset(
    Preset(
        "neox-tiny",
        "gpt",
        4,
        128,
        4,
        4.0,
        0,
        "tiny GPT-NeoX-shaped LM: parallel, partial RoPE 0.25, untied head (CPU, minutes)",
        context=128,
        pos="rope",
        rope_fraction=0.25,
        tie_head=False,
    )
)
