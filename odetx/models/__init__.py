"""Fields, schemes, ODE blocks, backbones and presets."""

from odetx.models.factory import BACKBONES, build_model, check_fits, count_params, resolve_model
from odetx.models.presets import PRESETS, Preset, register_preset
from odetx.models.schemes import SCHEMES, Scheme

__all__ = [
    "BACKBONES",
    "PRESETS",
    "Preset",
    "SCHEMES",
    "Scheme",
    "build_model",
    "check_fits",
    "count_params",
    "register_preset",
    "resolve_model",
]
