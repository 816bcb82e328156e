"""``train.init_from``: start a new run from another run's weights (fine-tuning, transfer).

Every weight of the new model comes from the checkpoint, and every weight of the
checkpoint goes somewhere, with the same name and shape, except where a rule of
:data:`RULES` says otherwise:

- the classification head starts afresh when the class count differs (the old head
  is then left out);
- learned solver coefficients follow the new solver: dropped when it has none, at
  their initial values when the checkpoint has none;
- fewer weight groups over the same depth (``--set model.groups=G`` from a run of
  G' groups, G dividing G'): each new group's weights are the mean of the G'/G
  consecutive groups whose span it covers (every weight of a group: field, time
  dependence, learned coefficients), the natural start for a shared block that
  must do what those layers did.

Anything else is refused in one line: a weight the model needs that the checkpoint
lacks or holds in another shape, and a checkpoint weight the model has no place for
(another depth, fewer groups, no Q/K/V bias …), which loading non-strictly would
silently discard. :func:`map_weights` alone decides the mapping; a new deliberate
change is one more rule there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from odetx.artefacts import load_checkpoint, resolve_checkpoint_path
from odetx.config import ModelConfig, flatten
from odetx.errors import ConfigError
from odetx.solvers import is_coefficient

KEY = "train.init_from"
HEAD = "head."  # the classifier of the ViT and the sequence encoder
SHOWN = 3  # unused weights named in the refusal


def _shape(t: Tensor) -> str:
    return "x".join(str(n) for n in t.shape) or "scalar"


def _copy(tensors: list[Tensor]) -> Tensor:
    return tensors[0]


@dataclass(frozen=True)
class Source:
    """Where one weight of the model comes from: ``combine`` of these checkpoint weights."""

    names: tuple[str, ...]
    combine: Callable[[list[Tensor]], Tensor] = _copy


@dataclass
class WeightMap:
    """How a checkpoint's weights fill a model.

    Attributes:
        sources: model weight -> where its value comes from.
        fresh: model weight -> why it keeps its initial value.
        dropped: checkpoint weight -> why it is deliberately left out.
    """

    sources: dict[str, Source] = field(default_factory=dict)
    fresh: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def unused(self, state: dict[str, Tensor]) -> list[str]:
        """Checkpoint weights that no rule took or dropped, in the checkpoint's order."""
        taken = {n for s in self.sources.values() for n in s.names} | set(self.dropped)
        return [n for n in state if n not in taken]


class Refusal(Exception):
    """A weight no rule can place: ``what`` (which weight) and ``rule`` (what is allowed)."""

    def __init__(self, what: str, rule: str) -> None:
        super().__init__(what, rule)
        self.what, self.rule = what, rule


# A rule looks at one model weight and the checkpoint and decides it (True) or passes (False).
Rule = Callable[[str, Tensor, dict[str, Tensor], WeightMap], bool]


def same_name_and_shape(name: str, own: Tensor, state: dict[str, Tensor], plan: WeightMap) -> bool:
    theirs = state.get(name)
    if theirs is None or theirs.shape != own.shape:
        return False
    plan.sources[name] = Source((name,))
    return True


def new_head(name: str, own: Tensor, state: dict[str, Tensor], plan: WeightMap) -> bool:
    if not name.startswith(HEAD) or name not in state:
        return False
    plan.fresh[name] = f"another class count ({_shape(state[name])} -> {_shape(own)})"
    plan.dropped[name] = "replaced by a new head"
    return True


def coefficients(name: str, own: Tensor, state: dict[str, Tensor], plan: WeightMap) -> bool:
    if not is_coefficient(name) or name in state:
        return False
    plan.fresh[name] = "the new solver's coefficients start at its base method"
    return True


RULES: tuple[Rule, ...] = (same_name_and_shape, new_head, coefficients)
GROUP = re.compile(r"^stack\.blocks\.(\d+)\.(.+)$")


def _mean(tensors: list[Tensor]) -> Tensor:
    return torch.stack(tensors).mean(0)


def merged_groups(factor: int) -> Rule:
    """Group g of the model: the mean of groups g·factor … g·factor + factor − 1."""

    def rule(name: str, own: Tensor, state: dict[str, Tensor], plan: WeightMap) -> bool:
        m = GROUP.match(name)
        if m is None:
            return False
        first, rest = int(m[1]) * factor, m[2]
        names = tuple(f"stack.blocks.{first + j}.{rest}" for j in range(factor))
        if not all(n in state and state[n].shape == own.shape for n in names):
            return False
        plan.sources[name] = Source(names, _mean)
        return True

    return rule


def group_factor(saved: dict[str, Any], config: ModelConfig | None) -> int:
    """How many of the checkpoint's groups each group of ``config`` averages (1: none):
    the same depth, fewer groups dividing the checkpoint's."""
    model = saved.get("model", {}) if isinstance(saved, dict) else {}
    depth, groups = model.get("depth"), model.get("groups")
    if config is None or not isinstance(depth, int) or not isinstance(groups, int):
        return 1
    if depth != config.depth or groups <= config.groups or groups % config.groups:
        return 1
    return groups // config.groups


def map_weights(state: dict[str, Tensor], target: dict[str, Tensor], factor: int = 1) -> WeightMap:
    """Decide where each weight of ``target`` (a model's state dict) comes from in ``state``;
    ``factor`` > 1 averages that many consecutive checkpoint groups into each of the
    model's.

    Raises:
        Refusal: a model weight no rule places, or a checkpoint weight left unused.
    """
    plan = WeightMap()
    rules = (merged_groups(factor), *RULES) if factor > 1 else RULES
    for name, own in target.items():
        if any(rule(name, own, state, plan) for rule in rules):
            continue
        if name not in state:
            raise Refusal(f"has no weight {name!r}", "it holds another kind of model")
        raise Refusal(
            f"holds {name} as {_shape(state[name])}, this model needs {_shape(own)}",
            "only the head may change shape",
        )
    for name in state:
        if is_coefficient(name) and name not in target:
            plan.dropped[name] = "a coefficient of another solver"
    unused = plan.unused(state)
    if unused:
        shown = ", ".join(unused[:SHOWN]) + (", …" if len(unused) > SHOWN else "")
        raise Refusal(
            f"has {len(unused)} weight{'s' if len(unused) > 1 else ''} this model has no "
            f"place for ({shown})",
            "every weight must be used; only the head may be replaced",
        )
    return plan


def _differences(saved: dict[str, Any], config: ModelConfig | None) -> str:
    """``model.depth 2 -> 1, …``: the model fields the checkpoint and the new run differ in."""
    if config is None:
        return ""
    theirs = flatten({"model": saved.get("model", {})})
    mine = flatten({"model": dataclasses.asdict(config)})
    diff = [f"{k} {theirs[k]} -> {mine[k]}" for k in mine if k in theirs and theirs[k] != mine[k]]
    return f" (the models differ in {', '.join(diff)})" if diff else ""


def init_from(model: nn.Module, source: str | Path, config: ModelConfig | None = None) -> list[str]:
    """Load ``source``'s weights (its weight average when it has one, as eval would) into
    ``model`` as :func:`map_weights` decides; returns the names left at their fresh
    initialisation. ``config`` (the new model's) lets a refusal say how the models differ.

    Raises:
        ConfigError: a weight the mapping cannot place (one line naming it and why).
        CheckpointError: ``source`` is missing, corrupt or untrusted.
    """
    path = resolve_checkpoint_path(source, "best.pt", "--init-from")
    ckpt = load_checkpoint(path, purpose="--init-from")
    state = ckpt.get("model_ema", ckpt["model"])
    try:
        plan = map_weights(state, model.state_dict(), group_factor(ckpt["config"], config))
    except Refusal as e:
        why = _differences(ckpt["config"], config)
        raise ConfigError(KEY, f"{path} {e.what}{why}; {e.rule}") from None
    weights = {n: s.combine([state[k] for k in s.names]) for n, s in plan.sources.items()}
    model.load_state_dict(weights, strict=False)  # the rest: ``plan.fresh``, by decision
    return list(plan.fresh)
