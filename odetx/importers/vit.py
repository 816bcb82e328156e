"""timm's Vision Transformer and DeiT (``config.json`` with ``architecture: vit_*|deit_*``).

The layer is odetx's sequential pre-LN layer (LayerNorm eps 1e-6, exact GELU), with a
class token, learned positions over it and the patches, a final norm and a linear head
on the class token (``global_pool: token``) or on the mean of the patch tokens
(``avg``, when timm applies no norm after pooling). Distilled DeiT (a second,
distillation token and head), layer scale, query/key norms, register tokens and an
``fc_norm`` are not odetx's layer: each is refused by name.
"""

from __future__ import annotations

import math
import re

from odetx.data.base import DataInfo
from odetx.importers.family import Family, Imported, block, layers, register_family
from odetx.importers.source import Source, SourceError, require

# timm's widths -> heads, for configs that do not list model_args.
HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 16}
ARCH = re.compile(r"^(vit|deit)_(\w+?)_patch(\d+)_")


def _heads(src: Source, arch: str) -> int:
    args = src.config.get("model_args")
    if isinstance(args, dict) and "num_heads" in args:
        heads = args["num_heads"]
        if isinstance(heads, int) and not isinstance(heads, bool) and heads > 0:
            return heads
        raise SourceError(f"{src.folder}/config.json: model_args.num_heads is {heads!r}")
    m = ARCH.match(arch)
    if m and m.group(2) in HEADS:
        return HEADS[m.group(2)]
    raise SourceError(
        f"{src.folder}/config.json: cannot tell the head count of {arch!r}; "
        "save it with model_args={'num_heads': …}"
    )


def convert(src: Source) -> Imported:
    arch = src.get("architecture", str)
    require(
        "distilled" not in arch and not src.has("dist_token"),
        "architecture",
        f"{arch} is a distilled DeiT (a second token and head); import the undistilled one",
    )
    for name, what in (
        ("blocks.0.ls1.gamma", "layer scale"),
        ("blocks.0.attn.q_norm.weight", "query/key norms"),
        ("reg_token", "register tokens"),
        ("fc_norm.weight", "a norm after pooling (fc_norm)"),
    ):
        require(not src.has(name), "architecture", f"{arch} has {what}, which odetx's ViT lacks")
    cls = src.tensor("cls_token")
    dim = cls.shape[-1]
    patch = src.tensor("patch_embed.proj.weight")
    if patch.ndim != 4 or patch.shape[0] != dim or patch.shape[2] != patch.shape[3]:
        raise SourceError(f"{src.folder}: patch_embed.proj.weight is {tuple(patch.shape)}")
    chans, size = patch.shape[1], patch.shape[2]
    pos = src.tensor("pos_embed")
    grid = math.isqrt(pos.shape[1] - 1)
    require(
        pos.ndim == 3 and grid * grid == pos.shape[1] - 1,
        "architecture",
        f"pos_embed {tuple(pos.shape)} is not a class token and a square grid",
    )
    depth = sum(1 for n in src.prefixed("blocks.") if n.endswith(".attn.qkv.weight"))
    require(depth > 0, "architecture", "has no blocks.N.attn.qkv")
    heads = _heads(src, arch)
    require(dim % heads == 0, "num_heads", f"{heads} does not divide the width {dim}")
    hidden = src.tensor("blocks.0.mlp.fc1.weight").shape[0]
    classes = src.tensor("head.weight").shape[0] if src.has("head.weight") else 0
    require(classes > 0, "num_classes", "the model has no classification head")
    pool = src.get("global_pool", str, "token")
    require(pool in ("token", "avg"), "global_pool", f"{pool!r} is neither token nor avg")
    state = {
        "cls_token": src.shaped("cls_token", 1, 1, dim),
        "pos_embed": pos,
        "patch_embed.weight": patch,
        "patch_embed.bias": src.shaped("patch_embed.proj.bias", dim),
        "norm.weight": src.shaped("norm.weight", dim),
        "norm.bias": src.shaped("norm.bias", dim),
        "head.weight": src.shaped("head.weight", classes, dim),
        "head.bias": src.shaped("head.bias", classes),
    }
    shapes = {
        "norm1": ("norm_a", (dim,)),
        "attn.qkv": ("attn.qkv", (3 * dim, dim)),
        "attn.proj": ("attn.proj", (dim, dim)),
        "norm2": ("norm_m", (dim,)),
        "mlp.fc1": ("mlp.fc1", (hidden, dim)),
        "mlp.fc2": ("mlp.fc2", (dim, hidden)),
    }
    for i in range(depth):
        for theirs, (ours, shape) in shapes.items():
            state[f"{block(i)}{ours}.weight"] = src.shaped(f"blocks.{i}.{theirs}.weight", *shape)
            state[f"{block(i)}{ours}.bias"] = src.shaped(f"blocks.{i}.{theirs}.bias", shape[0])
    side = grid * size
    pretrained = src.config.get("pretrained_cfg")
    pretrained = pretrained if isinstance(pretrained, dict) else {}
    mean = _stats(pretrained.get("mean"), chans, (0.5,) * chans)
    std = _stats(pretrained.get("std"), chans, (0.5,) * chans)
    names = src.config.get("label_names")
    labels = (
        tuple(str(n) for n in names)
        if isinstance(names, list) and len(names) == classes
        else tuple(str(i) for i in range(classes))  # the class indices, as names
    )
    model = {
        **layers("deit-tiny", "sequential", depth, dim, heads, hidden),
        "patch_size": size,
        "pool": "cls" if pool == "token" else "mean",
        "norm": "layernorm",
        "norm_eps": 1e-6,
        "mlp": "gelu",
        "bias": True,
        "qkv_bias": True,
    }
    info = DataInfo(
        kind="image", num_classes=classes, image_size=side, in_chans=chans, classes=labels
    )
    data = {
        "name": "folder",
        "image_size": side,
        "channels": chans,
        "mean": mean,
        "std": std,
        "classes": list(labels),
    }
    return Imported(model, info, state, data, {"architecture": arch})


def _stats(value, chans: int, default: tuple[float, ...]) -> tuple[float, ...]:
    if (
        isinstance(value, list)
        and len(value) == chans
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    ):
        return tuple(float(v) for v in value)
    return default


register_family(
    Family(
        "vit",
        "timm ViT / DeiT (config.json architecture vit_* or deit_*): sequential, class token",
        lambda src: str(src.config.get("architecture", "")).startswith(("vit_", "deit_")),
        convert,
    )
)
