"""Training-image augmentation policies from torchvision.transforms.v2, named by
``data.randaugment`` in timm's spelling, and random erasing.

``off``; ``trivial`` (TrivialAugment, Müller & Hutter 2021: one random op at a random
magnitude); ``rand-mM-nN`` (RandAugment, Cubuk et al. 2020: N ops at magnitude M of 30,
as timm writes ``rand-m9-n2``). Random erasing (Zhong et al. 2020) runs after
normalisation, filling its box with per-pixel normal noise as DeiT's recipe does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from odetx.errors import ConfigError
from odetx.registry import Registry

Transform = Callable[[Tensor], Tensor]
MAGNITUDE_BINS = 31  # torchvision's default: magnitudes 0..30, as in the RandAugment paper
MAX_OPS = 16


@dataclass(frozen=True)
class Policy:
    """One policy: its builder from the numbers its name carries, and its source."""

    name: str
    build: Callable[[dict[str, int]], Transform | None]
    params: dict[str, tuple[int, int, int]]  # letter -> (default, low, high)
    reference: str


POLICIES: Registry[Policy] = Registry("augmentation policy")


def _rand(p: dict[str, int]) -> Transform:
    from torchvision.transforms import v2

    return v2.RandAugment(num_ops=p["n"], magnitude=p["m"], num_magnitude_bins=MAGNITUDE_BINS)


def _trivial(p: dict[str, int]) -> Transform:
    from torchvision.transforms import v2

    return v2.TrivialAugmentWide(num_magnitude_bins=MAGNITUDE_BINS)


for _policy in (
    Policy("off", lambda p: None, {}, "no policy (crop and flip still apply)"),
    Policy("trivial", _trivial, {}, "TrivialAugment (Müller & Hutter 2021)"),
    Policy(
        "rand",
        _rand,
        {"m": (9, 0, MAGNITUDE_BINS - 1), "n": (2, 1, MAX_OPS)},
        "RandAugment (Cubuk et al. 2020), timm's rand-mM-nN",
    ),
):
    POLICIES.register(_policy.name, _policy)


def parse_policy(text: str, key: str = "data.randaugment") -> tuple[Policy, dict[str, int]]:
    """``"rand-m9-n2"`` as (the ``rand`` policy, ``{"m": 9, "n": 2}``); refused with one
    line naming ``key`` if the name or a number is not one the policy takes."""
    name, *parts = text.split("-")
    policy = POLICIES.lookup(name, key)
    values = {letter: default for letter, (default, _, _) in policy.params.items()}
    for part in parts:
        letter, digits = part[:1], part[1:]
        if letter not in policy.params or not digits.isdigit():
            takes = ", ".join(f"{k}N" for k in policy.params) or "no numbers"
            raise ConfigError(key, f"{part!r} in {text!r} is not a setting of {name} ({takes})")
        _, low, high = policy.params[letter]
        if not low <= int(digits) <= high:
            raise ConfigError(key, f"{letter} in {text!r} must lie in {low}..{high}")
        values[letter] = int(digits)
    return policy, values


def policy_transform(text: str) -> Transform | None:
    """The transform ``data.randaugment`` names (uint8 ``(C, H, W)`` in and out), or None."""
    policy, values = parse_policy(text)
    return policy.build(values)


def random_erasing(p: float) -> Transform | None:
    """Erase one box (2-33% of the area, aspect 0.3-3.3) with chance ``p``; None at 0."""
    if p <= 0:
        return None
    from torchvision.transforms import v2

    return v2.RandomErasing(p=p, value="random")
