"""``train.init_from``: start a new run from another run's weights (fine-tuning, transfer).

Every weight of the new model must be in the checkpoint with the same shape, except the
classification head, which starts afresh when the class count differs. The solver and its
step count may differ (learned solver coefficients follow the new solver), and so may
everything outside the model: optimiser, schedule, data, epochs.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from odetx.artefacts import load_checkpoint, resolve_checkpoint_path
from odetx.errors import ConfigError
from odetx.solvers import fit_coefficients

KEY = "train.init_from"
HEAD = "head."  # the classifier of the ViT and the sequence encoder


def _shape(t) -> str:
    return "x".join(str(n) for n in t.shape) or "scalar"


def init_from(model: nn.Module, source: str | Path) -> list[str]:
    """Load ``source``'s weights (its weight average when it has one, as eval would) into
    ``model``; returns the names left at their fresh initialisation.

    Raises:
        ConfigError: a weight of ``model`` missing from ``source`` or of another shape
            outside the head (one line naming it).
        CheckpointError: ``source`` is missing, corrupt or untrusted.
    """
    path = resolve_checkpoint_path(source, "best.pt")
    ckpt = load_checkpoint(path)
    state = fit_coefficients(ckpt.get("model_ema", ckpt["model"]), model)
    fresh, keep = [], {}
    for name, own in model.state_dict().items():
        if name not in state:
            raise ConfigError(KEY, f"{path} has no weight {name!r}; it holds another kind of model")
        theirs = state[name]
        if theirs.shape == own.shape:
            keep[name] = theirs
        elif name.startswith(HEAD):  # another class count: a new head for the new classes
            fresh.append(name)
        else:
            raise ConfigError(
                KEY,
                f"{path}: {name} is {_shape(theirs)}, this model needs {_shape(own)} "
                "(only the head may change shape)",
            )
    model.load_state_dict(keep, strict=False)
    return fresh
