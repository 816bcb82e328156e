"""Fields, archs (splitting schemes), field components, ODE blocks, backbones and presets."""

from odetx.models.archs import ARCHS, Arch
from odetx.models.components import Components, components
from odetx.models.factory import (
    BACKBONES,
    build_model,
    check_context,
    check_fits,
    check_kind,
    count_params,
    resolve_model,
)
from odetx.models.mlps import MLPS, MLPKind
from odetx.models.norms import NORMS, NormKind
from odetx.models.positions import POSITIONS, Positions
from odetx.models.presets import PRESETS, Preset, register_preset
from odetx.models.stems import STEMS, Stem

__all__ = [
    "ARCHS",
    "Arch",
    "BACKBONES",
    "Components",
    "MLPKind",
    "MLPS",
    "NORMS",
    "NormKind",
    "POSITIONS",
    "PRESETS",
    "Positions",
    "Preset",
    "STEMS",
    "Stem",
    "build_model",
    "check_context",
    "check_fits",
    "check_kind",
    "components",
    "count_params",
    "register_preset",
    "resolve_model",
]
