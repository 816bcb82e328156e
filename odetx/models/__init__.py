"""Fields, archs (splitting schemes), ODE blocks, backbones and presets."""

from odetx.models.archs import ARCHS, Arch
from odetx.models.factory import (
    BACKBONES,
    build_model,
    check_context,
    check_fits,
    check_kind,
    count_params,
    resolve_model,
)
from odetx.models.presets import PRESETS, Preset, register_preset
from odetx.models.stems import STEMS, Stem

__all__ = [
    "ARCHS",
    "Arch",
    "BACKBONES",
    "PRESETS",
    "Preset",
    "STEMS",
    "Stem",
    "build_model",
    "check_context",
    "check_fits",
    "check_kind",
    "count_params",
    "register_preset",
    "resolve_model",
]
