"""Resolve a model config against its preset, and build the network a resolved one describes."""

from __future__ import annotations

import dataclasses
import math

from torch import nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models.archs import ARCHS
from odetx.models.components import check_components, fill_components
from odetx.models.encoder import POOLS, Encoder
from odetx.models.gpt import GPT
from odetx.models.mlps import MLPS
from odetx.models.norms import NORMS
from odetx.models.positions import POSITIONS
from odetx.models.presets import PRESETS
from odetx.models.stems import MAX_CONV_LAYERS, STEMS
from odetx.models.time import TIME_MODES
from odetx.models.vit import ViT
from odetx.registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("backbone")
# The kind of data (DataInfo.kind) each backbone reads.
DATA_KIND: dict[str, str] = {}


def register_backbone(name: str, cls: type[nn.Module], kind: str) -> type[nn.Module]:
    """Add a backbone reading data of ``kind`` (``image``, ``tokens`` or ``text``)."""
    BACKBONES.register(name, cls)
    DATA_KIND[name] = kind
    return cls


register_backbone("vit", ViT, "image")
register_backbone("encoder", Encoder, "tokens")
register_backbone("gpt", GPT, "text")

_FROM_PRESET = ("depth", "dim", "heads", "mlp_ratio", "patch_size", "dropout", "context")
# Filled by resolve_model from the preset too (odetx.models.components), never left unset.
_COMPONENTS = ("norm", "norm_eps", "mlp", "attn", "pos", "bias", "qkv_bias")


def resolve_model(cfg: ModelConfig) -> ModelConfig:
    """Fill ``None`` fields from the preset and check the combination is possible."""
    preset = PRESETS.lookup(cfg.preset, "model.preset")
    filled = {k: getattr(preset, k) for k in _FROM_PRESET if getattr(cfg, k) is None}
    cfg = fill_components(dataclasses.replace(cfg, **filled), preset)
    if cfg.groups is None:
        cfg = dataclasses.replace(cfg, groups=cfg.depth)
    # Only image backbones have a patch size, only language models a context.
    own = {"image": ("patch_size",), "text": ("context",)}.get(DATA_KIND[preset.backbone], ())
    for key in ("depth", "groups", "dim", "heads", *own):
        if getattr(cfg, key) <= 0:
            raise ConfigError(
                f"model.{key}", f"must be a positive integer, got {getattr(cfg, key)}"
            )
    if not to_float(cfg.dim) * cfg.mlp_ratio >= 1:  # also refuses NaN
        raise ConfigError(
            "model.mlp_ratio", f"{cfg.mlp_ratio} gives the MLP no hidden unit at dim {cfg.dim}"
        )
    if cfg.depth % cfg.groups:
        raise ConfigError("model.groups", f"{cfg.groups} does not divide model.depth {cfg.depth}")
    if cfg.dim % cfg.heads:
        raise ConfigError("model.heads", f"{cfg.heads} does not divide model.dim {cfg.dim}")
    POOLS.lookup(cfg.pool, "model.pool")
    ARCHS.lookup(cfg.arch, "model.arch")
    if cfg.shared_norm and cfg.arch != "parallel":
        raise ConfigError("model.shared_norm", f"applies to arch parallel only, not {cfg.arch!r}")
    if cfg.fused and not cfg.shared_norm:
        # Only one norm gives A and M the same input, which is what fusion shares.
        raise ConfigError("model.fused", "needs model.shared_norm=true (and arch parallel)")
    if cfg.fused and (cfg.dropout or not cfg.qkv_bias or not cfg.bias):
        # The MLP's output dropout has no place in the fused sum A + M.
        raise ConfigError(
            "model.fused", "needs model.dropout=0, model.qkv_bias=true and model.bias=true"
        )
    check_components(cfg, preset.backbone)
    check_time(cfg)
    check_stem(cfg, preset.backbone)
    return cfg


def check_stem(cfg: ModelConfig, backbone: str) -> None:
    """Refuse a stem that is not registered, or one set on a model that reads no images."""
    STEMS.lookup(cfg.stem, "model.stem")
    default = ModelConfig()
    if cfg.stem != default.stem and DATA_KIND[backbone] != "image":
        raise ConfigError("model.stem", f"applies to image models only, not {backbone!r}")
    if cfg.stem_layers != default.stem_layers and cfg.stem != "conv":
        raise ConfigError("model.stem_layers", f"applies to model.stem=conv only, not {cfg.stem!r}")
    if not 1 <= cfg.stem_layers <= MAX_CONV_LAYERS:
        raise ConfigError(
            "model.stem_layers", f"must be 1 to {MAX_CONV_LAYERS}, got {cfg.stem_layers}"
        )


def check_time(cfg: ModelConfig) -> None:
    """Refuse a time mode that is not registered or does not fit the other settings."""
    TIME_MODES.lookup(cfg.time, "model.time")
    if cfg.time_basis != 1 and cfg.time != "basis":
        raise ConfigError("model.time_basis", f"applies to model.time=basis only, not {cfg.time!r}")
    if cfg.fused and cfg.time == "basis":
        # The fused layout stores one weight per projection; a basis stores K.
        raise ConfigError("model.time", "basis has no fused form; set model.fused=false")


def check_kind(cfg: ModelConfig, kind: str) -> None:
    """Refuse a preset whose backbone reads another kind of data than ``kind``."""
    backbone = PRESETS[cfg.preset].backbone
    if kind != DATA_KIND[backbone]:
        raise ConfigError(
            "model.preset",
            f"{cfg.preset} is a model ({backbone}) for {DATA_KIND[backbone]} data; the data is "
            f"{kind} (choose one of: "
            f"{', '.join(n for n, p in PRESETS.items() if DATA_KIND[p.backbone] == kind)})",
        )


def check_context(cfg: ModelConfig, context: int) -> None:
    """Refuse text windows longer than a language model's positions."""
    if context > cfg.context:
        raise ConfigError(
            "data.context",
            f"{context} tokens is longer than the {cfg.context} positions of model "
            f"{cfg.preset} (raise model.context or shorten data.context)",
        )


def check_fits(cfg: ModelConfig, info: DataInfo) -> None:
    """Data-dependent checks of a resolved config (e.g. patches must tile the image)."""
    check_kind(cfg, info.kind)
    if info.kind == "text":
        check_context(cfg, info.max_len)
    misfit = STEMS[cfg.stem].misfit(info.image_size, cfg) if info.kind == "image" else None
    if misfit:
        raise ConfigError("model.patch_size", misfit)


def build_model(model: ModelConfig, solver: SolverConfig, info: DataInfo) -> nn.Module:
    """The network a resolved ``model`` describes, integrated by ``solver``, shaped for ``info``."""
    unresolved = [k for k in (*_FROM_PRESET, "groups", *_COMPONENTS) if getattr(model, k) is None]
    if unresolved:
        raise ValueError(f"build_model takes a resolved ModelConfig; {unresolved} are unset")
    check_fits(model, info)
    return BACKBONES[PRESETS[model.preset].backbone](model, solver, info)


# ---------------------------------------------------------------- size estimates
#
# From the config alone, in floats (nothing is allocated, and an absurd size gives a
# large float or inf, never an OverflowError), so that a typo such as model.dim=1000000
# is refused with its size before torch tries to allocate it.


def to_float(value: float) -> float:
    """``float(value)``; inf where a huge int has no float."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _finite_or_inf(value: float) -> float:
    return math.inf if math.isnan(value) else value  # inf * 0 from an absurd size


def tokens_per_example(model: ModelConfig, info: DataInfo) -> float:
    """Tokens the stack sees per example: patches + class token, padded length, or window."""
    backbone = PRESETS[model.preset].backbone
    if backbone == "vit":
        side = STEMS[model.stem].side(info.image_size, model) if model.patch_size > 0 else 0
        return to_float(side) ** 2 + 1
    if backbone == "encoder":
        return to_float(POOLS[model.pool].prefix) + to_float(info.max_len)
    return to_float(info.max_len)


def estimate_params(model: ModelConfig, info: DataInfo) -> float:
    """About the parameter count :func:`build_model` gives a resolved ``model`` on ``info``.

    Per group, attention ``4·dim²`` (Q, K, V and output projections; fewer with
    ``model.kv_heads``) plus MLP ``2·dim·hidden`` (``3·dim·hidden`` gated) plus biases
    and norms; times the groups; plus embeddings, positions, the final norm and head.
    Within a few parameters of the built model for the built-in backbones (the tests
    compare them); a backbone registered elsewhere is counted by its stack alone.
    """
    d, groups = to_float(model.dim), to_float(model.groups)
    h = _hidden(model)
    qkv = _qkv_rows(model)
    fc1 = 2 * h if MLPS[model.mlp].gated else h
    norm = d * (2 if NORMS[model.norm].bias else 1)
    # One or two norms; biases of Q/K/V, of the output projection, fc1 and fc2 (if any).
    norms = 1 if model.shared_norm else 2
    per_group = d * (qkv + d + fc1 + h) + norms * norm
    per_group += qkv * model.qkv_bias + (d + fc1 + d) * model.bias
    per_group += TIME_MODES[model.time].extra(per_group, d, norms, model.time_basis)
    classes = to_float(info.num_classes)
    backbone = PRESETS[model.preset].backbone
    tokens = tokens_per_example(model, info)
    positions = tokens * d if POSITIONS[model.pos].learned else 0.0
    embed, head = 0.0, 0.0
    if backbone == "vit":
        # The stem, class token, positions.
        stem = STEMS[model.stem].params(
            to_float(info.in_chans), d, to_float(model.patch_size), model.stem_layers
        )
        embed = stem + d + positions
        head = d * classes + classes
    elif backbone == "encoder":
        cls = d * POOLS[model.pool].prefix  # a class token, if the pooling has one
        embed = to_float(info.vocab_size) * d + positions + cls
        head = d * classes + classes
    elif backbone == "gpt":  # the head is the token embedding, tied, or its own
        positions = to_float(model.context) * d if POSITIONS[model.pos].learned else 0.0
        embed = to_float(info.vocab_size) * d + positions
        head = 0.0 if model.tie_head else to_float(info.vocab_size) * d
    return _finite_or_inf(groups * per_group + embed + norm + head)


def _hidden(model: ModelConfig) -> float:
    """The MLP's hidden units."""
    return to_float(model.mlp_hidden) if model.mlp_hidden else to_float(model.dim) * model.mlp_ratio


def _qkv_rows(model: ModelConfig) -> float:
    """Rows of the Q, K, V projection: ``3·dim``, or fewer with grouped-query attention."""
    kv = model.kv_heads or model.heads
    return to_float(model.dim) * (1 + 2 * to_float(kv) / to_float(model.heads))


def estimate_activations(model: ModelConfig, info: DataInfo, evaluations: float) -> float:
    """About the values autograd keeps for one example through ``evaluations`` full-field
    evaluations (A + M; a split sub-field counts half, as in the NFE).

    Per token and evaluation: the norm's input and output, Q/K/V, the attention output
    (``6·dim`` with one key/value head per query head) and the MLP's hidden layer before
    and after its activation (``2·hidden``; ``3·hidden`` gated).
    Attention scores are not counted (fused attention kernels never store them), so
    this errs low: it is meant to refuse what cannot fit, never what might.
    """
    d = to_float(model.dim)
    h = _hidden(model)
    mlp = (3 if MLPS[model.mlp].gated else 2) * h
    tokens = tokens_per_example(model, info)
    kept = tokens * evaluations * (3 * d + _qkv_rows(model) + mlp) + 2 * tokens * d
    if PRESETS[model.preset].backbone == "gpt":
        kept += 2 * tokens * to_float(info.vocab_size)  # logits and their gradient
    return _finite_or_inf(kept)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
