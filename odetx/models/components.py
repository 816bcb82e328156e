"""Field components: which norm, MLP, positions, key/value heads and biases a model has.

``model.norm``, ``model.mlp`` and ``model.pos`` name entries of their registries
(:mod:`~odetx.models.norms`, :mod:`~odetx.models.mlps`,
:mod:`~odetx.models.positions`); with ``model.kv_heads``, ``model.bias`` and
``model.qkv_bias`` they say what one group's field is built of. Unset (``None``)
fields take the preset's value; this module fills them and refuses impossible
combinations, naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import nn

from odetx.config import ModelConfig
from odetx.errors import ConfigError
from odetx.models.attention import ATTENTIONS
from odetx.models.mlps import MLPS
from odetx.models.norms import NORMS
from odetx.models.positions import POSITIONS, rotary_dims
from odetx.models.presets import Preset
from odetx.models.time import TimeNorm


@dataclass(frozen=True)
class Components:
    """What one field is built of (the defaults are the plain pre-LN layer).

    Args:
        norm: a :data:`~odetx.models.norms.NORMS` name.
        norm_eps: its epsilon; None: the kind's own.
        mlp: an :data:`~odetx.models.mlps.MLPS` name.
        attn: an :data:`~odetx.models.attention.ATTENTIONS` name.
        mlp_hidden: the MLP's hidden units; 0: ``dim · mlp_ratio``.
        kv_heads: key/value heads (grouped-query attention); 0: one per query head.
        bias: biases of attention's output projection and of the MLP's linears.
        rope: rotary positions in attention, with ``rope_theta`` and ``rope_fraction``.
    """

    norm: str = "layernorm"
    norm_eps: float | None = None
    mlp: str = "gelu"
    attn: str = "softmax"
    mlp_hidden: int = 0
    kv_heads: int = 0
    bias: bool = True
    rope: bool = False
    rope_theta: float = 10000.0
    rope_fraction: float = 1.0

    def hidden(self, dim: int, mlp_ratio: float) -> int:
        return self.mlp_hidden or int(dim * mlp_ratio)


PLAIN = Components()

# Config fields a preset fills when they are unset, on every backbone.
_FILLED = ("norm", "mlp", "attn", "pos", "bias", "qkv_bias")
# Floats that must be positive and finite where set.
_POSITIVE = ("norm_eps", "rope_theta")


def components(model: ModelConfig) -> Components:
    """The components a resolved ``model`` describes."""
    rope = POSITIONS[model.pos].rotary
    return Components(
        norm=model.norm,
        norm_eps=model.norm_eps,
        mlp=model.mlp,
        attn=model.attn,
        mlp_hidden=model.mlp_hidden or 0,
        kv_heads=model.kv_heads or 0,
        bias=model.bias,
        rope=rope,
        rope_theta=model.rope_theta if rope else 10000.0,
        rope_fraction=model.rope_fraction if rope else 1.0,
    )


def final_norm(model: ModelConfig) -> nn.Module:
    """The backbone's last norm, of the field's kind (``norm.weight``, ``norm.bias``)."""
    return TimeNorm(model.dim, NORMS[model.norm], model.norm_eps)


def fill_components(cfg: ModelConfig, preset: Preset) -> ModelConfig:
    """``cfg`` with its unset component fields taken from ``preset``.

    The rotary settings are filled only where the positions are rotary, and the head's
    tying only on a language model, so that set values that do not apply can be refused
    (:func:`check_components`) and resolving twice changes nothing.
    """
    filled = {k: getattr(preset, k) for k in _FILLED if getattr(cfg, k) is None}
    cfg = dataclasses.replace(cfg, **filled)
    if cfg.norm_eps is None:
        norm = NORMS.lookup(cfg.norm, "model.norm")
        own = preset.norm_eps if cfg.norm == preset.norm else None  # the preset's norm's eps
        cfg = dataclasses.replace(cfg, norm_eps=norm.eps if own is None else own)
    if cfg.kv_heads is None and preset.kv_heads is not None:
        cfg = dataclasses.replace(cfg, kv_heads=preset.kv_heads)
    if POSITIONS.lookup(cfg.pos, "model.pos").rotary:
        for key in ("rope_theta", "rope_fraction"):
            if getattr(cfg, key) is None:
                cfg = dataclasses.replace(cfg, **{key: getattr(preset, key)})
    if cfg.tie_head is None and preset.backbone == "gpt":
        cfg = dataclasses.replace(cfg, tie_head=preset.tie_head)
    return cfg


def check_components(cfg: ModelConfig, backbone: str) -> None:
    """Refuse component settings that are unknown, out of range or do not fit together."""
    NORMS.lookup(cfg.norm, "model.norm")
    mlp = MLPS.lookup(cfg.mlp, "model.mlp")
    attn = ATTENTIONS.lookup(cfg.attn, "model.attn")
    pos = POSITIONS.lookup(cfg.pos, "model.pos")
    for key in _POSITIVE:
        value = getattr(cfg, key)
        if value is not None and not (value > 0 and math.isfinite(value)):  # refuses NaN
            raise ConfigError(f"model.{key}", f"must be a positive finite number, got {value}")
    if cfg.mlp_hidden is not None and cfg.mlp_hidden <= 0:
        raise ConfigError("model.mlp_hidden", f"must be a positive integer, got {cfg.mlp_hidden}")
    if cfg.kv_heads is not None:
        if cfg.kv_heads <= 0:
            raise ConfigError("model.kv_heads", f"must be a positive integer, got {cfg.kv_heads}")
        if cfg.heads % cfg.kv_heads:
            raise ConfigError(
                "model.kv_heads", f"{cfg.kv_heads} does not divide model.heads {cfg.heads}"
            )
    if not pos.rotary:
        for key in ("rope_theta", "rope_fraction"):
            if getattr(cfg, key) is not None:
                raise ConfigError(
                    f"model.{key}", f"applies to model.pos=rope only, not {cfg.pos!r}"
                )
    else:
        _check_rope(cfg, backbone)
    if cfg.tie_head is not None and backbone != "gpt":
        raise ConfigError(
            "model.tie_head", f"applies to language models (gpt) only, not {backbone!r}"
        )
    if cfg.fused and mlp.gated:
        # The fused layout applies one activation to the MLP's rows of its input projection.
        raise ConfigError(
            "model.fused",
            f"has no form for the gated MLP {cfg.mlp!r}; set model.mlp=gelu or gelu_tanh",
        )
    if cfg.fused and not (attn.fused and mlp.gelu):
        what = f"attention {cfg.attn!r}" if not attn.fused else f"MLP {cfg.mlp!r}"
        raise ConfigError("model.fused", f"has no form for the {what}; set model.fused=false")


def _check_rope(cfg: ModelConfig, backbone: str) -> None:
    if backbone == "vit":
        # A ViT's tokens lie on a 2-D grid (and a class token); a 1-D rotation of the
        # flattened grid would tell rows apart only by a jump in position.
        raise ConfigError(
            "model.pos", "rope applies to sequences (gpt, encoder); a vit takes learned or none"
        )
    fraction = cfg.rope_fraction
    if not (0 < fraction <= 1):  # refuses NaN
        raise ConfigError("model.rope_fraction", f"must lie in (0, 1], got {fraction}")
    head_dim = cfg.dim // cfg.heads
    rot = rotary_dims(head_dim, fraction)
    if rot < 2 or rot % 2:
        raise ConfigError(
            "model.rope_fraction",
            f"{fraction:g} of the head dim {head_dim} rotates {rot} dims; it must be an even "
            "number, at least 2",
        )
