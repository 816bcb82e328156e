"""What a family of source models provides: its odetx config and its weights renamed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from odetx.data.base import DataInfo
from odetx.importers.source import Source
from odetx.registry import Registry


@dataclass
class Imported:
    """A source read as odetx: model config fields (``model.*``), data info, weights under
    odetx's names, and what to record of the source."""

    model: dict[str, Any]
    info: DataInfo
    state: dict[str, Tensor]
    data: dict[str, Any] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """``matches(source)``: whether this family reads it; ``convert`` reads it."""

    name: str
    description: str
    matches: Callable[[Source], bool]
    convert: Callable[[Source], Imported]


FAMILIES: Registry[Family] = Registry("model family")


def register_family(family: Family) -> Family:
    return FAMILIES.register(family.name, family)


def layer_prefix(source: Source, candidates: tuple[str, ...], probe: str) -> str:
    """The prefix under which ``probe`` appears (a bare model, or one under a head)."""
    for prefix in candidates:
        if source.has(prefix + probe):
            return prefix
    return candidates[0]


def block(i: int) -> str:
    """odetx's name of layer ``i``'s field (G = D: one group per layer)."""
    return f"stack.blocks.{i}.field."


def layers(preset: str, arch: str, depth: int, dim: int, heads: int, hidden: int) -> dict:
    """The ``model.*`` fields every import shares: the source's arch, one group per layer
    (G = D), no dropout."""
    return {
        "preset": preset,
        "arch": arch,
        "depth": depth,
        "groups": depth,
        "dim": dim,
        "heads": heads,
        "mlp_hidden": hidden,
        "dropout": 0.0,
    }


def language_model(vocab: int, context: int) -> DataInfo:
    return DataInfo(kind="text", num_classes=vocab, vocab_size=vocab, max_len=context)
