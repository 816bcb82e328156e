"""Your own variants without forking odetx: one function per registry.

A plugin is a module or a ``.py`` file that calls these functions::

    # my_variants.py
    from odetx.plugins import arch, tableau

    tableau("ssprk3", order=3, c=[0, 1, 0.5], a=[[], [1], [0.25, 0.25]], b=[1/6, 1/6, 2/3])
    arch("reverse", substeps=[("mlp", 1.0), ("attn", 1.0)], order=1, description="M, then A")

and is loaded with ``--plugin my_variants.py`` (any command; repeatable), a config file's
``plugins: [my_variants.py]``, or, installed as a package, through the entry-point group
``odetx.plugins`` (``[project.entry-points."odetx.plugins"] name = "my_pkg.variants"``).

Each function builds the entry exactly as odetx builds its own, so it passes the same
checks (a tableau whose rows do not sum to ``c`` is refused, an arch must integrate each
field over the whole step, a preset must resolve, …), and registers it under a name no
one holds: a plugin adds entries, it never replaces one. A failure is one line naming the
plugin and the entry (:class:`~odetx.origins.PluginError`, exit code 2).

Every entry remembers its plugin: ``odetx list`` shows it, and a run records the plugins
whose entries it uses (a package's name and version, a file's path and SHA-256) in its
``config.yaml``, checkpoints and exports' ``odetx.json``, so that evaluating it elsewhere
loads them again or says which one is missing. Exports (TorchScript, pt2, ONNX) of a
plugin's variant are plain torch and run without the plugin.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from odetx.config import ModelConfig, PluginRef
from odetx.data import DATASETS, DataInfo, DatasetEntry, Splits
from odetx.errors import ConfigError
from odetx.export.formats import FORMATS, ExportFormat
from odetx.models import (
    ARCHS,
    BACKBONES,
    MLPS,
    NORMS,
    POSITIONS,
    PRESETS,
    STEMS,
    Arch,
    MLPKind,
    NormKind,
    Positions,
    Preset,
    Stem,
)
from odetx.models.attention import ATTENTIONS, AttentionKind
from odetx.models.components import Components
from odetx.models.factory import register_backbone, resolve_model
from odetx.models.time import AUTONOMOUS
from odetx.origins import (
    EntryError,
    adopt,
    file_ref,
    load,
    load_installed,
    loaded,
    module_ref,
)
from odetx.registry import Registry, current_origin, holder, registering
from odetx.solvers import (
    ADAPTIVE,
    LEARNED,
    SOLVERS,
    TABLEAUS,
    ButcherTableau,
    FixedStepIntegrator,
    SolverInfo,
)
from odetx.solvers.adaptive import AdaptiveMethod
from odetx.solvers.controllers import CONTROLLERS, FACTOR_MIN, StepController
from odetx.solvers.embedded import EMBEDDED, EmbeddedTableau
from odetx.solvers.field import ATTN, BOTH, MLP
from odetx.solvers.learned import LearnedMethod

__all__ = [
    "ATTN",
    "BOTH",
    "MLP",
    "adaptive",
    "arch",
    "attention",
    "backbone",
    "dataset",
    "embedded_pair",
    "export_format",
    "learned_solver",
    "load",
    "load_installed",
    "loaded",
    "mlp",
    "norm",
    "positions",
    "preset",
    "stem",
    "step_controller",
    "tableau",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
DATA_KINDS = ("image", "tokens", "text")


# ---------------------------------------------------------------- machinery


def _caller_origin() -> PluginRef | None:
    """The plugin a call comes from when no loader is running (a module imported by hand):
    the first calling module outside odetx, so its entries are attributed and recorded
    all the same."""
    if current_origin() is not None:
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
        "odetx",
        "contextlib",
    ):
        frame = frame.f_back
    if frame is None:
        return None
    module = frame.f_globals.get("__name__", "")
    if module == "__main__" and frame.f_globals.get("__file__"):
        return adopt(file_ref(frame.f_globals["__file__"]))
    return adopt(module_ref(module))


@contextmanager
def _entry(kind: str, name: str, *registries: Registry[Any]) -> Iterator[list]:
    """Add one entry, all or nothing: ``name`` is checked, then free in every registry it
    goes into; the block registers it (appending ``(registry, name)`` to the list it gets)
    and runs its checks. Any failure takes back what the block registered and becomes an
    :class:`~odetx.origins.EntryError` naming the entry."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise EntryError(
            f"{kind} {name!r}: a name is letters, digits and _ . + - (starting with a letter "
            "or digit)"
        )
    origin = _caller_origin()
    added: list[tuple[Registry[Any], str]] = []
    try:
        for registry in registries:
            if name in registry:
                where = holder(registry.origin(name))
                raise EntryError(f"{kind} {name!r}: the name is taken ({where})")
        with registering(origin) if origin is not None else nullcontext():
            yield added
    except EntryError:
        _withdraw(added)
        raise
    except Exception as e:  # whatever the entry's own code raised while it was checked
        _withdraw(added)
        reason = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if not isinstance(e, (ValueError, TypeError, KeyError, ConfigError)):
            reason = f"{type(e).__name__}: {reason}"
        reason = reason.strip().splitlines()[0] if reason.strip() else type(e).__name__
        raise EntryError(f"{kind} {name!r}: {reason.removeprefix(f'{name}: ')}") from None


def _withdraw(added: list[tuple[Registry[Any], str]]) -> None:
    for registry, name in reversed(added):
        registry.discard(name)


def _add(added: list, registry: Registry[Any], name: str, item: Any) -> Any:
    registry.register(name, item)
    added.append((registry, name))
    return item


def _callable(what: str, value: Any) -> None:
    if not callable(value):
        raise TypeError(f"{what} must be callable, got {type(value).__name__}")


def _text(what: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")


def _count(what: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an int >= {low}, got {value!r}")


def _numbers(what: str, values: Sequence[Any]) -> tuple[float, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{what} must hold finite numbers, got {v!r}")
        out.append(float(v))
    return tuple(out)


def _same_shape(what: str, module: nn.Module, x: torch.Tensor, *args: Any) -> None:
    """Call ``module`` on a small input: it must map ``(B, N, d)`` to ``(B, N, d)``."""
    with torch.no_grad():
        y = module(x, *args)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{what} maps {tuple(x.shape)} to {shape}, not the same shape")


# ---------------------------------------------------------------- solvers


def tableau(
    name: str,
    order: int,
    c: Sequence[float],
    a: Sequence[Sequence[float]],
    b: Sequence[float],
    reference: str = "",
) -> ButcherTableau:
    """A fixed-step explicit Runge–Kutta method (``--solver name``), run by odetx's one
    integrator (so it exports), e.g. ``tableau("ssprk3", 3, c, a, b)``.

    Checks (:class:`~odetx.solvers.ButcherTableau`'s own): ``a`` strictly lower
    triangular, each row of ``a`` sums to its ``c``, ``b`` sums to 1.
    """
    with _entry("tableau", name, TABLEAUS, SOLVERS) as added:
        _count("order", order, 1)
        _text("reference", reference)
        rows = tuple(_numbers(f"row {i} of a", row) for i, row in enumerate(a))
        t = ButcherTableau(name, order, _numbers("c", c), rows, _numbers("b", b), reference)
        _add(added, TABLEAUS, name, t)
        info = SolverInfo(name, order, "fixed-step", t.stages, "odetx", reference)
        _add(added, SOLVERS, name, info)
    return t


def learned_solver(
    name: str,
    base: str | ButcherTableau,
    integrator: type[FixedStepIntegrator],
    reference: str = "",
) -> LearnedMethod:
    """A solver with trained coefficients: ``base``'s stages combined by ``integrator``, a
    :class:`~odetx.solvers.FixedStepIntegrator` subclass that overrides ``combine`` and
    keeps its parameters under ``coef`` (see :mod:`odetx.solvers.learned`)."""
    with _entry("learned solver", name, LEARNED, SOLVERS) as added:
        if isinstance(base, str):
            base = TABLEAUS[base]
        if not isinstance(base, ButcherTableau):
            raise TypeError(f"base must be a tableau or its name, got {type(base).__name__}")
        if not (isinstance(integrator, type) and issubclass(integrator, FixedStepIntegrator)):
            raise TypeError("integrator must be a subclass of odetx's FixedStepIntegrator")
        _text("reference", reference)
        method = _add(added, LEARNED, name, LearnedMethod(name, base, integrator, reference))
        info = SolverInfo(name, None, "learned", base.stages, "odetx", reference)
        _add(added, SOLVERS, name, info)
    return method


def _torchdiffeq_adaptive() -> list[str]:
    from torchdiffeq._impl.odeint import SOLVERS as METHODS
    from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver

    return [n for n, cls in METHODS.items() if issubclass(cls, RKAdaptiveStepsizeODESolver)]


def adaptive(name: str, order: int, reference: str = "") -> AdaptiveMethod:
    """An adaptive method torchdiffeq's ``odeint`` knows (e.g. ``fehlberg2``), with the
    order of the solution it propagates; odetx validates its options as for dopri5, and
    the batch shares its steps (see :func:`embedded_pair` for per-sample steps)."""
    with _entry("adaptive solver", name, ADAPTIVE, SOLVERS) as added:
        known = _torchdiffeq_adaptive()
        if name not in known:
            raise ValueError(
                f"not an adaptive method of torchdiffeq's odeint (it has: {', '.join(known)})"
            )
        _count("order", order, 1)
        _text("reference", reference)
        method = _add(added, ADAPTIVE, name, AdaptiveMethod(name, order, reference))
        info = SolverInfo(name, order, "adaptive", None, "torchdiffeq", reference)
        _add(added, SOLVERS, name, info)
    return method


def embedded_pair(
    name: str,
    order: int,
    c: Sequence[float],
    a: Sequence[Sequence[float]],
    b: Sequence[float],
    error: Sequence[float],
    error_order: int,
    reference: str = "",
) -> EmbeddedTableau:
    """An adaptive method of odetx's own: an explicit Runge–Kutta pair run by the per-sample
    integrator (``--solver name --per-sample``: each sample takes its own steps). ``b`` is
    the propagated solution of order ``order``, ``error`` = ``b − b̂`` the weights of the
    error estimate, ``b̂`` of order ``error_order``.

    Checks (:class:`~odetx.solvers.embedded.EmbeddedTableau`'s own): the tableau's, the
    error row sums to 0 and has a weight per stage, ``0 < error_order < order``.
    """
    with _entry("embedded pair", name, EMBEDDED, SOLVERS) as added:
        _count("order", order, 2)
        _count("error_order", error_order, 1)
        _text("reference", reference)
        rows = tuple(_numbers(f"row {i} of a", row) for i, row in enumerate(a))
        pair = EmbeddedTableau(
            name,
            order,
            _numbers("c", c),
            rows,
            _numbers("b", b),
            reference,
            error=_numbers("error", error),
            error_order=error_order,
        )
        _add(added, EMBEDDED, name, pair)
        info = SolverInfo(name, order, "adaptive", pair.stages, "odetx per sample", reference)
        _add(added, SOLVERS, name, info)
    return pair


def step_controller(
    name: str, alpha: float, beta: float, accept_min: float, description: str
) -> StepController:
    """A step-size rule for per-sample steps (``--controller name``): after a step with
    error ratio ε the next is ``h · clamp(0.9 · ε^(−alpha/k) · ε_prev^(beta/k), low, 10)``,
    ``k`` the pair's embedded order + 1, ``ε_prev`` the last accepted step's ratio, ``low``
    0.2 after a rejection and ``accept_min`` after an acceptance (1: accepted steps never
    shrink the next). Checks: ``alpha > 0``, ``beta ≥ 0``, ``0.2 ≤ accept_min ≤ 1``."""
    with _entry("step-size controller", name, CONTROLLERS) as added:
        alpha, beta, accept_min = _numbers("alpha, beta, accept_min", (alpha, beta, accept_min))
        if alpha <= 0 or beta < 0:
            raise ValueError(f"alpha must be > 0 and beta >= 0, got {alpha}, {beta}")
        if not FACTOR_MIN <= accept_min <= 1:
            raise ValueError(f"accept_min must lie in [{FACTOR_MIN}, 1], got {accept_min}")
        _text("description", description)
        rule = StepController(name, alpha, beta, accept_min, description)
        return _add(added, CONTROLLERS, name, rule)


# ---------------------------------------------------------------- archs and fields

_WHICH = {"attn": ATTN, "a": ATTN, "mlp": MLP, "m": MLP, "both": BOTH, "a+m": BOTH}


def arch(
    name: str, substeps: Sequence[tuple[str | int, float]], order: int, description: str
) -> Arch:
    """A splitting of a layer step (``--arch name``): ``substeps`` are ``(field, fraction of
    the step)`` pairs applied in order, the field ``"attn"``, ``"mlp"`` or ``"both"``.
    ``order`` is the splitting's order (0: unsplit). Each field must be integrated over
    exactly the whole step (its fractions sum to 1), as in every built-in arch."""
    with _entry("arch", name, ARCHS) as added:
        steps = []
        for i, pair in enumerate(substeps):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"substep {i} must be a (field, fraction) pair, got {pair!r}")
            which, fraction = pair
            code = _WHICH.get(which.lower()) if isinstance(which, str) else which
            if code not in (ATTN, MLP, BOTH) or isinstance(code, bool):
                raise ValueError(f"substep {i}: the field is attn, mlp or both, not {which!r}")
            steps.append((code, *_numbers(f"substep {i}'s fraction", [fraction])))
        _count("order", order, 0)
        _text("description", description)
        return _add(added, ARCHS, name, Arch(name, tuple(steps), order, description))


def _probe_input(dim: int = 8) -> torch.Tensor:
    return torch.randn(2, 5, dim, generator=torch.Generator().manual_seed(0))


def norm(name: str, fn: type[nn.Module], bias: bool, eps: float, description: str) -> NormKind:
    """A norm (``model.norm``): ``fn(dim, eps)`` is a parameter-free module called as
    ``fn(x, weight, bias)``; the time modes own the gain (and bias, if ``bias``)."""
    with _entry("norm", name, NORMS) as added:
        _callable("fn", fn)
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        _text("description", description)
        kind = NormKind(name, fn, bool(bias), float(eps), description)
        x = _probe_input()
        _same_shape("fn", fn(8, eps), x, torch.ones(8), torch.zeros(8) if bias else None)
        return _add(added, NORMS, name, kind)


def mlp(
    name: str,
    build: Callable[..., nn.Module],
    description: str,
    gated: bool = False,
    gelu: str = "",
) -> MLPKind:
    """An MLP (``model.mlp``): ``build(dim, hidden, dropout, parts, bias)`` returns a module
    called as ``(x, t)`` whose linears come from ``parts.linear`` (so every time mode works).
    ``gated``: ``fc1`` holds a gate and a value; ``gelu``: the ``approximate`` of a plain
    GELU MLP (only such a one has a fused form)."""
    with _entry("MLP", name, MLPS) as added:
        _callable("build", build)
        _text("description", description)
        _text("gelu", gelu)
        kind = MLPKind(name, build, bool(gated), gelu, description)
        _same_shape(
            "build(8, 16, 0.0, parts, True)",
            build(8, 16, 0.0, AUTONOMOUS, True),
            _probe_input(),
            0.0,
        )
        return _add(added, MLPS, name, kind)


def attention(name: str, build: Callable[..., nn.Module], description: str) -> AttentionKind:
    """An attention (``model.attn``): ``build(dim, heads, qkv_bias, dropout, causal, parts,
    comp)`` returns a module called as ``(x, mask, t)``, ``mask`` a ``(B, N)`` key-padding
    mask (True: a real token) or None; its linears come from ``parts.linear``. It must be
    scriptable (``torch.jit.script``) for TorchScript exports."""
    with _entry("attention", name, ATTENTIONS) as added:
        _callable("build", build)
        _text("description", description)
        kind = AttentionKind(name, build, description)
        for causal in (False, True):
            module = build(8, 2, True, 0.0, causal, AUTONOMOUS, Components(attn=name)).eval()
            x = _probe_input()
            _same_shape(f"build(causal={causal})", module, x, None, 0.0)
            _same_shape(
                f"build(causal={causal})", module, x, torch.ones(2, 5, dtype=torch.bool), 0.0
            )
        return _add(added, ATTENTIONS, name, kind)


def positions(
    name: str, description: str, learned: bool = False, rotary: bool = False
) -> Positions:
    """Positions (``model.pos``): a learned table in the backbone (``learned``), rotary
    queries and keys in attention (``rotary``), or neither."""
    with _entry("positions", name, POSITIONS) as added:
        _text("description", description)
        if learned and rotary:
            raise ValueError("positions are learned or rotary, not both")
        return _add(
            added, POSITIONS, name, Positions(name, bool(learned), bool(rotary), description)
        )


def stem(
    name: str,
    build: Callable[[int, ModelConfig], nn.Module],
    side: Callable[[int, ModelConfig], int],
    params: Callable[[float, float, float, int], float],
    misfit: Callable[[int, ModelConfig], str | None],
    description: str,
) -> Stem:
    """An image stem (``model.stem``): see :class:`~odetx.models.Stem` for its four
    functions (the module, the grid's side, its parameter count, a misfit message)."""
    with _entry("stem", name, STEMS) as added:
        for what, fn in (("build", build), ("side", side), ("params", params), ("misfit", misfit)):
            _callable(what, fn)
        _text("description", description)
        return _add(added, STEMS, name, Stem(name, build, side, params, misfit, description))


def backbone(name: str, cls: type[nn.Module], kind: str) -> type[nn.Module]:
    """A backbone (a preset's ``backbone``): ``cls(model, solver, info)`` is embedding +
    :class:`~odetx.models.ode.ODEStack` + head, like ``odetx/models/vit.py``; ``kind`` is the
    data it reads: ``image``, ``tokens`` or ``text``."""
    with _entry("backbone", name, BACKBONES) as added:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError("cls must be an nn.Module subclass")
        if kind not in DATA_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DATA_KINDS)}, got {kind!r}")
        register_backbone(name, cls, kind)
        added.append((BACKBONES, name))
        return cls


def preset(name: str, backbone: str, depth: int, dim: int, heads: int, **fields: Any) -> Preset:
    """A model preset (``--model name``): a backbone and its sizes, plus any other
    :class:`~odetx.models.Preset` field (``mlp_ratio``, ``patch_size``, ``context``,
    ``description``, ``norm``, ``mlp``, ``pos``, ``attn`` …). It must resolve as a model
    (every component registered, heads dividing dim, …), as the built-in presets do."""
    with _entry("preset", name, PRESETS) as added:
        defaults = {"mlp_ratio": 4.0, "patch_size": 0, "description": ""}
        BACKBONES[backbone]
        p = Preset(name, backbone, depth, dim, heads, **{**defaults, **fields})
        _add(added, PRESETS, name, p)
        resolve_model(ModelConfig(preset=name))
        return p


# ---------------------------------------------------------------- data and exports


def dataset(
    name: str,
    kind: str,
    info: Callable[..., DataInfo],
    load: Callable[..., Splits],
    description: str,
    source: str = "",
    settle: Callable[[Any], Any] | None = None,
) -> DatasetEntry:
    """A dataset (``--dataset name``): ``info(data_config) -> DataInfo`` (shapes, known
    without reading) and ``load(data_config) -> Splits``; ``kind`` is ``image``, ``tokens``
    (a sequence, one label) or ``text`` (next-token prediction)."""
    with _entry("dataset", name, DATASETS) as added:
        if kind not in DATA_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DATA_KINDS)}, got {kind!r}")
        _callable("info", info)
        _callable("load", load)
        if settle is not None:
            _callable("settle", settle)
        _text("description", description)
        _text("source", source)
        entry = DatasetEntry(name, kind, info, load, description, source, settle=settle)
        return _add(added, DATASETS, name, entry)


def export_format(
    name: str,
    suffix: str,
    title: str,
    build: Callable[..., Any],
    save: Callable[..., None],
    load: Callable[..., nn.Module],
    load_hint: str,
    steps: str,
    note: str | None = None,
    tolerance: float | None = None,
) -> ExportFormat:
    """An export format (``odetx export --format name``): ``build(model, example, dynamic)``
    captures the model, ``save(artefact, file, metadata_json)`` writes it (with odetx's
    metadata), ``load(path)`` reads it back for the parity check; see
    :class:`~odetx.export.formats.ExportFormat`."""
    with _entry("export format", name, FORMATS) as added:
        if not (isinstance(suffix, str) and re.fullmatch(r"\.[A-Za-z0-9_.]+", suffix)):
            raise ValueError(f"suffix must look like '.ext', got {suffix!r}")
        taken = [n for n, f in FORMATS.items() if f.suffix == suffix]
        if taken:
            raise ValueError(f"the suffix {suffix} is export format {taken[0]!r}'s")
        for what, fn in (("build", build), ("save", save), ("load", load)):
            _callable(what, fn)
        for what, text in (("title", title), ("load_hint", load_hint), ("steps", steps)):
            _text(what, text)
        if tolerance is not None and not (tolerance > 0 and math.isfinite(tolerance)):
            raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
        fmt = ExportFormat(
            name, suffix, title, build, save, load, load_hint, steps, note, tolerance
        )
        return _add(added, FORMATS, name, fmt)
