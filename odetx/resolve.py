"""Resolve a parsed config once, against the registries, into the plain value every part takes.

Above :mod:`odetx.config` (the schema) and the registries it names — datasets,
presets and archs, solvers, precision modes — and below everything that runs a
config (training, evaluation, compare, export, the CLI). A resolved config has
the preset's dimensions, the group count and the solver defaults filled in, so
what is saved with a run is exactly what ran.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from odetx.config import (
    Config,
    DataConfig,
    ModelConfig,
    PluginRef,
    SolverConfig,
    TrainConfig,
    load_config,
)
from odetx.data import DATASETS, DataInfo
from odetx.data.folder import check_keys
from odetx.data.images import check_augmentation
from odetx.errors import ConfigError
from odetx.models import (
    BACKBONES,
    MLPS,
    NORMS,
    POSITIONS,
    PRESETS,
    STEMS,
    build_model,
    check_context,
    check_kind,
    resolve_model,
)
from odetx.models.archs import ARCHS
from odetx.models.attention import ATTENTIONS
from odetx.models.factory import estimate_activations, estimate_params, to_float
from odetx.origins import require
from odetx.registry import Registry
from odetx.runtime.optimizers import check_optimizer
from odetx.runtime.precision import AMP_DTYPES
from odetx.solvers import CONTROLLERS, SOLVERS, resolve_solver, validate_solver
from odetx.solvers.field import FIELD_WEIGHT


def resolve(cfg: Config) -> Config:
    """``cfg`` checked against every registry, with presets and solver defaults filled in.

    Resolving a resolved config returns it unchanged.

    Raises:
        ConfigError: naming the first key that no registry accepts, or the key most to
            blame for a model over :data:`MAX_PARAMS` parameters (:func:`check_params`).
    """
    # The config being run: its own plugins: list loads as written (a run's recorded ones
    # were checked where it was opened, odetx.evaluation.load and odetx.training.start).
    require(cfg.plugins, trusted=True)
    dataset = DATASETS.lookup(cfg.data.name, "data.name")
    AMP_DTYPES.lookup(cfg.train.amp, "train.amp")
    check_optimizer(cfg.train)
    check_augmentation(cfg.data)
    check_keys(cfg.data)
    validate_solver(cfg.solver)
    check_drop_path(cfg.model, cfg.solver)
    model = resolve_model(cfg.model)
    check_kind(model, dataset.kind)
    check_regularisers(cfg.train, model, cfg.solver)
    data = cfg.data
    if dataset.kind == "text":
        if data.context == 0:  # windows as long as the model reads
            data = dataclasses.replace(data, context=model.context)
        check_context(model, data.context)
    if dataset.settle is not None:  # keys the files decide (ListOps' padded length)
        data = dataset.settle(data)
    out = dataclasses.replace(cfg, model=model, data=data, solver=resolve_solver(cfg.solver))
    check_params(out, cfg)
    return dataclasses.replace(out, plugins=plugins_used(out))


def plugins_used(cfg: Config) -> tuple[PluginRef, ...]:
    """The plugins whose entries a resolved ``cfg`` names, each once, in load order: what a
    run records (``plugins:`` in its config) so that loading it elsewhere finds them."""
    m = cfg.model
    named: list[tuple[Registry[Any], str | None]] = [
        (DATASETS, cfg.data.name),
        (PRESETS, m.preset),
        (BACKBONES, PRESETS[m.preset].backbone),
        (ARCHS, m.arch),
        (STEMS, m.stem),
        (NORMS, m.norm),
        (MLPS, m.mlp),
        (POSITIONS, m.pos),
        (ATTENTIONS, m.attn),
        (SOLVERS, cfg.solver.method),
        (CONTROLLERS, cfg.solver.controller),
    ]
    found = (registry.origin(name) for registry, name in named if name is not None)
    return tuple(dict.fromkeys(origin for origin in found if origin is not None))


def check_drop_path(model: ModelConfig, solver: SolverConfig) -> None:
    """Drop-path drops a solver step's increment; adaptive solvers have no fixed steps."""
    if model.drop_path > 0.0 and SOLVERS[solver.method].adaptive:
        raise ConfigError(
            "model.drop_path",
            f"applies to fixed-step solvers; {solver.method} adapts its steps "
            "(train with e.g. rk4, or set model.drop_path=0)",
        )


def check_regularisers(train: TrainConfig, model: ModelConfig, solver: SolverConfig) -> None:
    """STEER moves a group's end by less than its span; the penalised path runs forward
    solves (an adjoint would need the augmented state's own adjoint)."""
    span = model.depth / model.groups
    if train.steer > 0.0 and train.steer >= span:
        message = f"must be below the group span depth/groups = {span:g}, got {train.steer}"
        raise ConfigError("train.steer", message)
    active = train.reg_kinetic > 0.0 or train.reg_jacobian > 0.0 or train.steer > 0.0
    if active and solver.adjoint:
        raise ConfigError(
            "solver.adjoint", "train.reg_kinetic, reg_jacobian and steer need solver.adjoint=false"
        )
    if active and solver.per_sample:
        raise ConfigError(
            "solver.per_sample",
            "train.reg_kinetic, reg_jacobian and steer run batch-shared solves; "
            "train with solver.per_sample=false and evaluate with --per-sample",
        )


def build_config(
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Parse (:func:`odetx.config.load_config`) and :func:`resolve`: the config a run uses.

    On top of :func:`resolve`, the memory of one training step is checked against
    this machine's (:func:`check_step_memory`): this is the config a run trains with.
    """
    parsed = load_config(file, overrides, base)
    cfg = resolve(parsed)
    check_step_memory(cfg, parsed)
    return cfg


def create_model(model: ModelConfig, solver: SolverConfig, info: DataInfo) -> nn.Module:
    """Resolve ``model`` and ``solver`` on their own and build the network, for library use
    (``create_model(ModelConfig(preset="vit-micro"), SolverConfig("rk4"), info)``)."""
    validate_solver(solver)
    return build_model(resolve_model(model), resolve_solver(solver), info)


# ---------------------------------------------------------------- size limits
#
# A config can ask for a model or a training step no machine holds (model.dim=1000000,
# a billion groups, a batch of a billion). torch would try, allocate gigabytes and die
# with an allocator traceback, or swap for hours. The size is estimated from the config
# alone and refused, naming the key most plausibly to blame, before anything runs.

# Parameters: 20 billion (80 GB of float32 weights, 320 GB with gradients and AdamW's
# two moments) is far beyond anything odetx trains; the largest preset has 22M.
MAX_PARAMS = 2e10
# One training step may need up to this many times the machine's memory: generous,
# because the step usually lives on a GPU and the estimate is rough; the point is to
# refuse the absurd (a typo's extra zeros), never a run that might fit.
MEMORY_FACTOR = 4
FALLBACK_MEMORY = 64 * 2**30  # where the OS does not say how much memory there is
# Weights, gradients and AdamW's two moments, all float32 whatever train.amp says.
BYTES_PER_PARAM = 16


def machine_memory() -> int:
    """This machine's physical memory in bytes (:data:`FALLBACK_MEMORY` if unknown)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return FALLBACK_MEMORY
    return pages * size if pages > 0 and size > 0 else FALLBACK_MEMORY


@dataclass(frozen=True)
class SizeEstimate:
    """What a resolved config costs, from the config alone (floats; inf when absurd)."""

    params: float  # parameters
    step_bytes: float  # one training step: weights, gradients, optimiser state, activations


def static_info(cfg: Config) -> DataInfo:
    """The data shapes a size estimate can know without reading data.

    Text shapes come from the data config (a character vocabulary is fitted to the
    text, so it is counted as empty: the estimate errs low); the image and token
    datasets say theirs statically (``DatasetEntry.info``).
    """
    entry = DATASETS[cfg.data.name]
    if entry.kind == "text":
        vocab = 256 if cfg.data.vocab == "byte" else 0
        return DataInfo("text", vocab, vocab_size=vocab, max_len=cfg.data.context)
    return entry.info(cfg.data)


def evaluations_kept(model: ModelConfig, solver: SolverConfig) -> float:
    """Full-field evaluations whose activations one training step keeps for backward.

    Fixed-step: every stage of every step of every group (split sub-fields count
    half, as in the NFE). Adaptive: at least one evaluation per sub-solve (the real
    count depends on the tolerances, so the estimate errs low); with the adjoint
    method, one, since backward recomputes them.
    """
    info = SOLVERS[solver.method]
    if info.adaptive and solver.adjoint:
        return 1.0
    per_step = sum(FIELD_WEIGHT[which] for which, _ in ARCHS[model.arch].substeps)
    stages = 1 if info.adaptive else info.stages
    return to_float(model.groups) * to_float(solver.steps) * stages * per_step


def estimate_size(cfg: Config, info: DataInfo | None = None) -> SizeEstimate:
    """Parameters and training-step memory of a resolved ``cfg`` (``info``: the data's
    shapes, by default what :func:`static_info` knows)."""
    info = info if info is not None else static_info(cfg)
    params = estimate_params(cfg.model, info)
    per_example = estimate_activations(cfg.model, info, evaluations_kept(cfg.model, cfg.solver))
    itemsize = AMP_DTYPES[cfg.train.amp].itemsize
    activations = to_float(cfg.train.batch_size) * per_example * itemsize
    step = params * BYTES_PER_PARAM + activations
    return SizeEstimate(params, math.inf if math.isnan(step) else step)


def _baselines(cfg: Config, parsed: Config) -> list[tuple[str, Config]]:
    """For each size key, ``cfg`` with that key put back to its preset or default value.

    ``parsed`` (before resolving) says which keys followed another: ``model.groups``
    left unset follows ``model.depth``, ``data.context`` left at 0 ``model.context``.
    """
    m, preset = cfg.model, PRESETS[cfg.model.preset]

    def model(**kw: Any) -> Config:
        return dataclasses.replace(cfg, model=dataclasses.replace(m, **kw))

    depth: dict[str, Any] = {"depth": preset.depth}
    if parsed.model.groups is None:
        depth["groups"] = preset.depth
    context = model(context=preset.context)
    if parsed.data.context == 0:
        context = dataclasses.replace(
            context, data=dataclasses.replace(cfg.data, context=preset.context)
        )

    def data(**kw: Any) -> Config:
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **kw))

    default_data, default_train = DataConfig(), TrainConfig()
    return [
        ("model.dim", model(dim=preset.dim)),
        ("model.mlp_ratio", model(mlp_ratio=preset.mlp_ratio)),
        ("model.depth", model(**depth)),
        ("model.groups", model(groups=preset.depth)),
        ("model.patch_size", model(patch_size=preset.patch_size)),
        ("model.context", context),
        ("solver.steps", dataclasses.replace(cfg, solver=dataclasses.replace(cfg.solver, steps=1))),
        (
            "train.batch_size",
            dataclasses.replace(
                cfg, train=dataclasses.replace(cfg.train, batch_size=default_train.batch_size)
            ),
        ),
        ("data.context", data(context=preset.context)),
        ("data.max_len", data(max_len=default_data.max_len)),
        ("data.seq_len_max", data(seq_len_max=default_data.seq_len_max)),
    ]


def _culprit(
    cfg: Config, parsed: Config, measure: Callable[[SizeEstimate], float]
) -> tuple[str, Any]:
    """The key whose return to its preset or default value shrinks ``measure`` the most,
    and its value (``model.preset`` when no single key is to blame)."""
    now = measure(estimate_size(cfg))
    best_key, best = "model.preset", now
    for key, reset in _baselines(cfg, parsed):
        if reset == cfg:
            continue
        size = measure(estimate_size(reset))
        if size < best:
            best_key, best = key, size
    section, name = best_key.split(".")
    return best_key, getattr(getattr(cfg, section), name)


def _count(x: float) -> str:
    """``1.2e13``: two significant digits, no ``+`` in the exponent."""
    return f"{x:.2g}".replace("e+", "e") if math.isfinite(x) else "over 1e308"


def _about(text: str) -> str:
    return text if text.startswith("over") else f"about {text}"


def _bytes(n: float) -> str:
    """``n`` bytes in decimal units, two significant digits: ``48 TB``."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000:
            return f"{n:.2g} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1000
    return f"{_count(n * 1e18)} bytes"


def _shown(value: Any) -> str:
    """A config value for a message: an int of many digits as ``1e400``, not 400 digits."""
    text = str(value)
    if isinstance(value, int) and len(text) > 15:
        return f"{text[0]}.{text[1]}e{len(text) - 1}"
    return text


def check_params(cfg: Config, parsed: Config | None = None) -> None:
    """Refuse a resolved ``cfg`` whose model has more than :data:`MAX_PARAMS` parameters.

    Machine-independent, so it applies wherever a config is resolved, a checkpoint's too.
    ``parsed``: the config before resolving, to tell which keys the user set.
    """
    params = estimate_size(cfg).params
    if params <= MAX_PARAMS:
        return
    key, value = _culprit(cfg, parsed or cfg, lambda e: e.params)
    raise ConfigError(
        key,
        f"{_shown(value)} gives {_about(_count(params))} parameters "
        f"({_bytes(params * 4)} in float32); the limit is {_count(MAX_PARAMS)}",
    )


def check_step_memory(cfg: Config, parsed: Config | None = None) -> None:
    """Refuse a resolved ``cfg`` whose training step needs more than
    :data:`MEMORY_FACTOR` times this machine's memory.

    Only for a config about to train (:func:`build_config`): evaluating a checkpoint
    needs none of it, so a run trained on a larger machine still loads here.
    """
    step = estimate_size(cfg).step_bytes
    limit = MEMORY_FACTOR * machine_memory()
    if step <= limit:
        return
    key, value = _culprit(cfg, parsed or cfg, lambda e: e.step_bytes)
    raise ConfigError(
        key,
        f"{_shown(value)} gives {_about(_bytes(step))} for one training step (weights, gradients, "
        f"optimiser state, activations); the limit is {MEMORY_FACTOR}x this machine's "
        f"memory, {_bytes(limit)}",
    )
