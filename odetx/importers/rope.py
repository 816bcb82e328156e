"""Rotary settings as config.json spells them, old and new (``rope_theta``,
``rotary_emb_base``, ``rotary_pct``, ``partial_rotary_factor``, ``rope_parameters``)."""

from __future__ import annotations

from odetx.importers.source import Source, require


def rope_settings(src: Source, fraction_default: float = 1.0) -> tuple[float, float]:
    """``(theta, fraction)``; scaled variants (linear, dynamic, YaRN, Llama 3) are refused."""
    params = src.config.get("rope_parameters")
    params = params if isinstance(params, dict) else {}
    scaling = src.config.get("rope_scaling")
    kind = params.get("rope_type", "default")
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type", scaling.get("type", kind))
    require(kind == "default", "rope_scaling", f"{kind!r} rotary scaling is not odetx's RoPE")
    theta = params.get("rope_theta")
    if theta is None:
        theta = src.get("rope_theta", float, None) or src.get("rotary_emb_base", float, 10000.0)
    fraction = params.get("partial_rotary_factor")
    if fraction is None:
        fraction = src.get("partial_rotary_factor", float, None)
    if fraction is None:
        fraction = src.get("rotary_pct", float, fraction_default)
    ok = isinstance(theta, (int, float)) and theta > 0 and 0 < float(fraction) <= 1
    require(ok, "rope_parameters", f"rope_theta {theta!r} / rotary fraction {fraction!r}")
    return float(theta), float(fraction)
