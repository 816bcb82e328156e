"""Typed, frozen run configuration: defaults -> YAML file -> CLI flags -> ``--set``.

This module is the bottom of the house: it parses and type-checks, and imports
nothing of odetx but its errors. Models, data and solvers take its dataclasses;
:mod:`odetx.resolve` checks a parsed config against their registries and fills
in presets and solver defaults. Every failure is a
:class:`~odetx.errors.ConfigError` naming the offending key.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from odetx.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. ``None`` fields take the preset's value."""

    preset: str = "vit-micro"
    arch: str = "parallel"  # how a layer step splits A + M: the splitting scheme
    depth: int | None = None
    groups: int | None = None  # None: one group per layer (no weight sharing)
    dim: int | None = None
    heads: int | None = None
    mlp_ratio: float | None = None
    patch_size: int | None = None
    stem: str = "patch"  # how images become tokens: patch (ViT) or conv (CCT's tokenizer)
    stem_layers: int = 2  # conv stem: conv-pool blocks, each halving the side
    context: int | None = None  # gpt: learned positions, the longest window it reads
    pool: str = "cls"  # "cls" token or "mean" over tokens
    shared_norm: bool = False
    fused: bool = False  # A + M with fused projections (needs shared_norm, no dropout)
    qkv_bias: bool | None = None  # biases of the Q, K, V projection (None: the preset's)
    bias: bool | None = None  # biases of attention's output projection and the MLP's linears
    norm: str | None = None  # every norm of the field and the final one: layernorm or rmsnorm
    norm_eps: float | None = None  # None: the norm's own (1e-5 LayerNorm, 1e-6 RMSNorm)
    mlp: str | None = None  # gelu, gelu_tanh or swiglu
    attn: str | None = None  # the attention: softmax (multi-head dot-product) or a plugin's
    mlp_hidden: int | None = None  # the MLP's hidden units; None: dim * mlp_ratio
    pos: str | None = None  # positions: learned (a table), rope (rotary) or none
    rope_theta: float | None = None  # pos rope: base of the rotation frequencies (10000)
    rope_fraction: float | None = None  # pos rope: share of each head's dims that rotate (1)
    kv_heads: int | None = None  # key/value heads (grouped-query attention); None: heads
    tie_head: bool | None = None  # gpt: the head is the token embedding (None: the preset's)
    dropout: float | None = None
    drop_path: float = 0.0  # stochastic depth: chance a step's sub-field increment is dropped
    time: str = "none"  # how the field depends on depth time t: none, film, basis
    time_basis: int = 1  # time basis: Legendre terms K per weight (K = 1 is autonomous)


@dataclass(frozen=True)
class SolverConfig:
    """How each group's ODE is integrated."""

    method: str = "euler"
    steps: int = 1  # solver steps per group (fixed-step); splitting steps (adaptive)
    rtol: float | None = None
    atol: float | None = None
    max_num_steps: int | None = None
    adjoint: bool = False
    per_sample: bool = False  # embedded pairs: each sample its own steps (odetx's integrator)
    controller: str = "integral"  # per-sample step-size controller: integral or pi


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and how to read, download or generate it.

    The sequence fields shape the generated sets (``listops``, ``parity``) and,
    through ``max_len``, the padding every token dataset is cut to.
    """

    name: str = "digits"
    root: str | None = None
    download: bool = False  # fetch missing torchvision files into ``root``
    augment: bool = True  # train split only; evaluation never augments
    num_workers: int = 0
    seq_len_min: int = 16  # generated sequence length range (tokens; listops counts no parentheses)
    seq_len_max: int = 64
    max_len: int = 0  # padded length of token datasets; 0 means seq_len_max
    context: int = 0  # text: tokens per window; 0 takes model.context
    vocab: str = "byte"  # text: "byte" (256 ids, any file), "char" or "bpe" (fitted to train text)
    # vocab "bpe": ids to learn (0: 4096); tokens: the model's ids, at least the tokenizer's
    vocab_size: int = 0
    train_windows: int = 2000  # text: random windows drawn per training epoch
    eval_windows: int = 0  # text: val/test windows scored, evenly spaced; 0 scores every token
    max_depth: int = 4  # listops: deepest operator nesting (LRA: 10)
    max_args: int = 5  # listops: most arguments per operator (LRA: 10)
    train_size: int = 10_000  # generated examples per split
    val_size: int = 1_000
    test_size: int = 1_000
    seed: int = 0  # generated datasets only; image validation splits use a fixed seed
    randaugment: str = "off"  # image train split: "off", "trivial" or "rand-m9-n2" (timm-style)
    random_erasing: float = 0.0  # image train split: chance an image gets one erased box
    repeated_aug: int = 1  # each training image this many times per epoch, differently augmented
    image_size: int = 0  # folder: side images are resized to; 0 takes the training images'
    channels: int = 0  # folder: 1 (grey) or 3 (RGB); 0 takes the training images'
    strict: bool = False  # folder: refuse a file that does not decode instead of leaving it out
    classes: tuple[str, ...] = ()  # folder: class folder names in label order; () reads train/
    mean: tuple[float, ...] = ()  # folder: per-channel pixel mean in [0, 1]; () measures a sample
    std: tuple[float, ...] = ()  # folder: per-channel pixel std; () measures a sample


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    warmup_steps: int = 0  # optimiser steps of warmup; > 0 replaces warmup_epochs
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    mixup: float = 0.2  # Beta concentration of mixup (image data; 0 turns it off)
    cutmix: float = 0.0  # Beta concentration of CutMix (image data; 0 turns it off)
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "off"  # autocast: off, bf16 or fp16 (fp16 adds a gradient scaler)
    compile: bool = False  # torch.compile the model
    # torch intra-op threads per process; 0: a fixed default from the usable cores, the
    # count then recorded in the run's config; "auto": follow the load at start
    threads: int | str = 0
    out: str | None = None
    optimizer: str = "adamw"  # a name in odetx.training.optim.OPTIMIZERS: adamw, sgd
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    accumulate: int = 1  # micro-batches per optimiser step: effective batch = batch_size x this
    ema: float = 0.0  # weight EMA decay in (0, 1); 0 keeps no average
    ema_every: int = 1  # optimiser steps between EMA updates
    tensorboard: bool = False  # also log metrics.csv's rows under RUN/tensorboard (extra)
    init_from: str | None = None  # a checkpoint whose matching weights start a new run
    reg_kinetic: float = 0.0  # weight of ∫‖f‖² dt (RNODE kinetic energy); 0 is off
    reg_jacobian: float = 0.0  # weight of ∫‖∂f/∂x‖_F² dt (Hutchinson estimate); 0 is off
    steer: float = 0.0  # STEER: each group's end time drawn from [t1 − b, t1 + b] in training


@dataclass(frozen=True)
class PluginRef:
    """A plugin (:mod:`odetx.plugins`): a module or a ``.py`` file that adds registry entries.

    A config file names one by a string, ``my_pkg.variants`` or ``my_variants.py``
    (:meth:`parse`). A run's resolved config records each plugin its entries come from
    with what identifies it, so that loading the run elsewhere finds the same plugin or
    refuses in one line: a package by its distribution's ``version``, a file by its
    content's ``sha256``.

    Args:
        name: what people call it: the distribution (a package), module or file name.
        module: the module to import (``module:function`` also calls the function).
        version: the version of the distribution the module is installed from.
        path: a file plugin's absolute path.
        sha256: a file plugin's content hash (hex).
    """

    name: str
    module: str | None = None
    version: str | None = None
    path: str | None = None
    sha256: str | None = None

    @classmethod
    def parse(cls, text: str) -> PluginRef:
        """``text`` as given to ``--plugin`` or in a config's ``plugins:`` list: a file
        when it ends in ``.py`` or holds a path separator, else a module."""
        if text.endswith(".py") or "/" in text or "\\" in text:
            return cls(Path(text).name, path=text)
        return cls(text, module=text)

    @property
    def is_file(self) -> bool:
        return self.path is not None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # The plugins to load (a config file's strings) or, resolved, the ones the run uses.
    plugins: tuple[PluginRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data: sections as dicts, tuples as lists (YAML's safe dumper takes no tuples);
        ``plugins`` first, and only when there are any."""
        tree: dict[str, Any] = {}
        if self.plugins:
            tree["plugins"] = [p.to_dict() for p in self.plugins]
        for f in dataclasses.fields(self):
            if f.name == "plugins":
                continue
            values = dataclasses.asdict(getattr(self, f.name))
            tree[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return tree


# Keys that say where or how a run executes, not what it computes: runs that differ
# only in them are the same experiment, and a resumed run may change them.
MACHINE_KEYS = (
    "train.out",
    "train.device",
    "train.compile",
    "train.threads",
    "train.tensorboard",
    "data.root",
    "data.download",
    "data.num_workers",
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config tree as ``{"section.key": value}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ---------------------------------------------------------------- parsing


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; numeric strings become numbers."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # PyYAML reads "1e-3" as a string (YAML 1.1); accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        (item, *_) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    elif tp is PluginRef:
        if isinstance(value, str) and value.strip():
            return PluginRef.parse(value.strip())
        if isinstance(value, dict):
            return from_dict(PluginRef, value, f"{key}.")
        raise ConfigError(key, f"expected a module, a .py file or a mapping, got {_short(value)}")
    raise ConfigError(key, f"expected {_type_name(tp)}, got {_short(value)}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested plain data, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip("."), f"expected a mapping, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{prefix}{key}", f"unknown key; valid keys are: {', '.join(sorted(names))}"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = from_dict(tp, data[f.name], key + ".")
        else:
            kwargs[f.name] = _coerce(key, data[f.name], tp)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part!r} is not a section")
        node = child
    node[parts[-1]] = value


# ---------------------------------------------------------------- bounded YAML

# Config files are a few hundred bytes; these bounds are generous for any real one
# (the largest shipped sweep is ~3 kB, 150 values) and cheap to enforce.
MAX_YAML_BYTES = 1 << 20  # a file (or one --set value) larger than 1 MiB is not read
MAX_YAML_NODES = 100_000  # values a document may hold once its aliases are expanded
MAX_YAML_DEPTH = 64  # nesting, with aliases expanded (configs nest 2-4 levels)


class YamlTooLarge(Exception):
    """A YAML document over the bounds above; ``reason`` never quotes the document."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses documents too large once their aliases are expanded.

    Anchors and aliases stay allowed (a sweep file may reuse a block), but YAML lets a
    few hundred bytes of nested aliases stand for billions of values ("billion laughs"):
    PyYAML builds them shared, in linear time, and they explode later, in whatever
    walks them as a tree (``dataclasses.asdict``, ``repr`` in a message, a YAML dump).
    So the composed node graph is measured before anything is constructed: each node's
    expanded size and depth are computed once (memoised per node), in time linear in
    the document, never in its expansion. Self-referencing aliases are refused too.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nesting = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer recurses once per level; refuse deep nesting before Python's
        # recursion limit turns it into a RecursionError.
        self._nesting += 1
        try:
            if self._nesting > MAX_YAML_DEPTH:
                raise YamlTooLarge(f"nests more than {MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            measure_nodes(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def measure_nodes(root: yaml.Node) -> tuple[int, int]:
    """``(values, depth)`` of the tree ``root`` stands for, aliases expanded.

    Iterative and memoised per node, so linear in the number of distinct nodes.

    Raises:
        YamlTooLarge: over :data:`MAX_YAML_NODES` values or :data:`MAX_YAML_DEPTH`
            levels, or a node that contains itself.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    open_: set[int] = set()  # entered, not finished: exactly the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finish = stack.pop()
        key = id(node)
        if finish:
            kids = [done[id(k)] for k in _children(node)]
            size = 1 + sum(s for s, _ in kids)
            depth = 1 + max((d for _, d in kids), default=0)
            if size > MAX_YAML_NODES:
                raise YamlTooLarge(
                    f"expands to more than {MAX_YAML_NODES:,} values through its aliases "
                    "(an alias bomb?); write the values out"
                )
            if depth > MAX_YAML_DEPTH:
                raise YamlTooLarge(
                    f"nests more than {MAX_YAML_DEPTH} levels deep (aliases expanded)"
                )
            done[key] = (size, depth)
            open_.discard(key)
            continue
        if key in done:
            continue
        open_.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_:
                raise YamlTooLarge("has an alias that refers to a node containing it")
            if id(kid) not in done:
                stack.append((kid, False))
    return done[id(root)]


def load_yaml_text(text: str) -> Any:
    """``yaml.safe_load`` within the bounds above.

    Raises:
        YamlTooLarge: the text or its expansion is over the bounds.
        yaml.YAMLError: the text is not YAML (or holds a value YAML cannot construct).
    """
    if len(text) > MAX_YAML_BYTES:
        raise YamlTooLarge(f"is larger than {MAX_YAML_BYTES // 1024} KiB")
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except ValueError as e:
        # PyYAML lets a constructor's ValueError out: an integer over Python's digit
        # limit, an impossible date. Report it as the YAML error it is.
        problem = str(e).split(";")[0]
        raise yaml.constructor.ConstructorError(None, None, problem) from None
    finally:
        loader.dispose()


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``--set a.b=value`` items; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {_short(item)}")
        key = key.strip()
        try:
            out[key] = load_yaml_text(raw) if raw.strip() else None
        except YamlTooLarge as e:
            raise ConfigError(f"--set {key}", f"the value {e.reason}") from None
        except yaml.YAMLError:
            out[key] = raw
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (``safe_load`` only, bounded: see :class:`BoundedLoader`)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError("--config", f"{p} is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError("--config", f"no such file: {p}")
    limit = MAX_YAML_BYTES
    if p.stat().st_size > limit:
        raise ConfigError("--config", f"{p} is larger than {limit // 1024} KiB; not a config file")
    with p.open("rb") as f:
        raw = f.read(limit + 1)  # never more, even if the file grows meanwhile
    if len(raw) > limit:
        raise ConfigError("--config", f"{p} is larger than {limit // 1024} KiB; not a config file")
    try:
        data = load_yaml_text(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("--config", f"{p} is not a UTF-8 text file") from None
    except YamlTooLarge as e:
        raise ConfigError("--config", f"{p} {e.reason}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None)
        raise ConfigError(
            "--config", f"{p} is not valid YAML{where}{': ' + problem if problem else ''}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            "--config", f"{p} must hold a mapping of sections, got {type(data).__name__}"
        )
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """Parse a config: ``base`` (defaults) <- YAML ``file`` <- dotted ``overrides``.

    The result is typed and its values checked one by one, but not yet resolved
    against the registries (presets, solvers, datasets): :func:`odetx.resolve.build_config`
    does both, once, for everything that runs.

    Args:
        file: optional YAML file.
        overrides: ``{"model.arch": "parallel", ...}`` from flags and ``--set``.
        base: starting tree (e.g. a checkpoint's config when resuming).
    """
    tree = copy.deepcopy(base) if base is not None else Config().to_dict()
    if file is not None:
        tree = merge(tree, read_yaml(file))
    for dotted, value in (overrides or {}).items():
        _set_dotted(tree, dotted, value)
    cfg = from_dict(Config, tree)
    check_values(cfg)
    return cfg


# Bounds on counts that say how long a run takes: far beyond any real run, low enough
# that a typo (an extra six zeros) is refused instead of running for ever.
MAX_EPOCHS = 10_000_000


def _check_number(key: str, value: float, low: float, high: float, *, open_high: bool) -> None:
    """Refuse ``value`` outside ``[low, high]`` (or ``[low, high)``), NaN and infinities.

    Written as ``not (low <= value ...)`` on purpose: NaN fails every comparison, so a
    check written as ``value < low`` would let it through.
    """
    inside = low <= value < high if open_high else low <= value <= high
    if not (inside and math.isfinite(value)):
        what = f"lie in [{low:g}, {high:g}{')' if open_high else ']'}"
        if high == math.inf:
            what = f"be a finite number >= {low:g}"
        raise ConfigError(key, f"must {what}, got {value}")


MAX_EXAMPLES = 100_000_000
MAX_LENGTH = 1_000_000


def _check_regularisers(cfg: Config) -> None:
    """Regularisation weights and STEER's half-width are finite and non-negative (the
    span and solver checks need the resolved model: ``odetx.resolve.check_regularisers``)."""
    t = cfg.train
    inf = math.inf
    for key in ("reg_kinetic", "reg_jacobian", "steer"):
        _check_number(f"train.{key}", getattr(t, key), 0.0, inf, open_high=False)


def check_values(cfg: Config) -> None:
    """Checks that need no registry: ranges of the training and model numbers.

    Every float is checked for NaN and infinity too: each would pass a plain ``<``
    comparison and only fail (or silently poison the weights) deep inside training.
    """
    t = cfg.train
    for key, value in (("epochs", t.epochs), ("batch_size", t.batch_size)):
        if value <= 0:
            raise ConfigError(f"train.{key}", f"must be positive, got {value}")
    if t.epochs > MAX_EPOCHS:
        raise ConfigError("train.epochs", f"must be at most {MAX_EPOCHS:,}")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise ConfigError("train.lr", f"must be a positive finite number, got {t.lr}")
    inf = math.inf
    _check_number("train.weight_decay", t.weight_decay, 0.0, inf, open_high=False)
    _check_number("train.min_lr_ratio", t.min_lr_ratio, 0.0, 1.0, open_high=False)
    _check_number("train.label_smoothing", t.label_smoothing, 0.0, 1.0, open_high=True)
    _check_number("train.warmup_epochs", t.warmup_epochs, 0.0, inf, open_high=False)
    if not 0 <= t.warmup_steps <= MAX_EPOCHS:
        raise ConfigError(
            "train.warmup_steps", f"must lie in [0, {MAX_EPOCHS:,}], got {t.warmup_steps}"
        )
    for key in ("mixup", "cutmix", "grad_clip"):  # 0 disables each
        _check_number(f"train.{key}", getattr(t, key), 0.0, inf, open_high=False)
    if t.threads != "auto" and not (isinstance(t.threads, int) and t.threads >= 0):
        raise ConfigError(
            "train.threads",
            f"must be a count, 0 (the default count) or 'auto', got {_short(t.threads)}",
        )
    for key in ("accumulate", "ema_every"):
        value = getattr(t, key)
        if not 1 <= value <= MAX_EPOCHS:
            raise ConfigError(f"train.{key}", f"must lie in [1, {MAX_EPOCHS:,}], got {value}")
    _check_regularisers(cfg)
    # 0 is off; 1 would never move the average off the first weights.
    _check_number("train.ema", t.ema, 0.0, 1.0, open_high=True)
    _check_number("train.momentum", t.momentum, 0.0, 1.0, open_high=True)
    if not 0 <= t.seed < 2**63:  # torch's seeds are 64-bit
        raise ConfigError("train.seed", f"must lie in [0, 2**63), got {t.seed}")
    d = cfg.data
    for key in ("train_size", "val_size", "test_size", "train_windows"):
        if getattr(d, key) > MAX_EXAMPLES:  # generated or drawn up front, in memory
            raise ConfigError(
                f"data.{key}", f"{getattr(d, key)} is over the limit, {MAX_EXAMPLES:,}"
            )
    for key in ("max_depth", "max_args"):  # the generator recurses and loops on these
        if getattr(d, key) > MAX_LENGTH:
            raise ConfigError(f"data.{key}", f"{getattr(d, key)} is over the limit, {MAX_LENGTH:,}")
    _check_number("data.random_erasing", d.random_erasing, 0.0, 1.0, open_high=False)
    if not 1 <= d.repeated_aug <= 64:  # each repeat is a full copy of the epoch's work
        raise ConfigError("data.repeated_aug", f"must lie in [1, 64], got {d.repeated_aug}")
    m = cfg.model
    if m.dropout is not None:
        _check_number("model.dropout", m.dropout, 0.0, 1.0, open_high=True)
    _check_number("model.drop_path", m.drop_path, 0.0, 1.0, open_high=True)
    if not 1 <= m.time_basis <= MAX_LENGTH:
        raise ConfigError("model.time_basis", f"must lie in 1..{MAX_LENGTH:,}, got {m.time_basis}")
    if m.mlp_ratio is not None and not (m.mlp_ratio > 0 and math.isfinite(m.mlp_ratio)):
        raise ConfigError("model.mlp_ratio", f"must be a positive finite number, got {m.mlp_ratio}")


@functools.cache
def _flat_defaults() -> dict[str, Any]:  # read-only: shared by every call
    return flatten(Config().to_dict())


# Keys whose value, in a run written before they existed, was not today's default:
# the per-sample integrator stepped with the PI rule until the controller became a key.
_BEFORE_THE_KEY = {
    "solver.controller": lambda flat: "pi" if flat.get("solver.per_sample") else "integral",
}


def _as_then(flat: dict[str, Any]) -> dict[str, Any]:
    return {k: then(flat) for k, then in _BEFORE_THE_KEY.items() if k not in flat}


def with_defaults(flat: dict[str, Any]) -> dict[str, Any]:
    """A run's flattened config with the keys it lacks as odetx used them when it was
    written: the default, or for a key in ``_BEFORE_THE_KEY`` the behaviour it replaced."""
    then = {**_as_then(flat), **flat}
    return {**{k: v for k, v in _flat_defaults().items() if k not in then}, **then}


def as_written(tree: dict[str, Any]) -> dict[str, Any]:
    """A config tree odetx wrote (a checkpoint's), with the keys added since it was
    written set as odetx then behaved, so loading it runs what was trained."""
    if not isinstance(tree, dict):
        return tree  # from_dict refuses it in one line
    tree = copy.deepcopy(tree)
    for dotted, value in _as_then(flatten(tree)).items():
        try:
            _set_dotted(tree, dotted, value)
        except ConfigError:
            pass  # a section that is not a mapping: from_dict names it
    return tree
