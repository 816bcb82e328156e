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
    context: int | None = None  # gpt: learned positions, the longest window it reads
    pool: str = "cls"  # "cls" token or "mean" over tokens
    shared_norm: bool = False
    fused: bool = False  # A + M with fused projections (needs shared_norm, no dropout)
    qkv_bias: bool = True
    dropout: float | None = None


@dataclass(frozen=True)
class SolverConfig:
    """How each group's ODE is integrated."""

    method: str = "euler"
    steps: int = 1  # solver steps per group (fixed-step); splitting steps (adaptive)
    rtol: float | None = None
    atol: float | None = None
    max_num_steps: int | None = None
    adjoint: bool = False


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
    vocab: str = "byte"  # text: "byte" (256 ids, any file) or "char" (fitted to train text)
    train_windows: int = 2000  # text: random windows drawn per training epoch
    max_depth: int = 4  # listops: deepest operator nesting (LRA: 10)
    max_args: int = 5  # listops: most arguments per operator (LRA: 10)
    train_size: int = 10_000  # generated examples per split
    val_size: int = 1_000
    test_size: int = 1_000
    seed: int = 0  # generated datasets only; image validation splits use a fixed seed


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    mixup: float = 0.2  # Beta concentration of mixup (image data; 0 turns it off)
    cutmix: float = 0.0  # Beta concentration of CutMix (image data; 0 turns it off)
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: str = "off"  # autocast: off, bf16 or fp16 (fp16 adds a gradient scaler)
    compile: bool = False  # torch.compile the model
    out: str | None = None


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys that say where or how a run executes, not what it computes: runs that differ
# only in them are the same experiment, and a resumed run may change them.
MACHINE_KEYS = (
    "train.out",
    "train.device",
    "train.compile",
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
    raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from nested plain data, refusing unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip("."), f"expected a mapping, got {data!r}")
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


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse ``--set a.b=value`` items; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file (``safe_load`` only)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError("--config", f"{p} is a folder, not a YAML file")
    if not p.is_file():
        raise ConfigError("--config", f"no such file: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("--config", f"{p} is not a UTF-8 text file") from None
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


def check_values(cfg: Config) -> None:
    """Checks that need no registry: ranges of the training and model numbers."""
    t = cfg.train
    for key, value in (("epochs", t.epochs), ("batch_size", t.batch_size)):
        if value <= 0:
            raise ConfigError(f"train.{key}", f"must be positive, got {value}")
    if t.lr <= 0:
        raise ConfigError("train.lr", f"must be positive, got {t.lr}")
    if not 0.0 <= t.label_smoothing < 1.0:
        raise ConfigError("train.label_smoothing", f"must lie in [0, 1), got {t.label_smoothing}")
    if t.warmup_epochs < 0:
        raise ConfigError("train.warmup_epochs", f"must be >= 0, got {t.warmup_epochs}")
    for key in ("mixup", "cutmix"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key}", f"must be >= 0 (0 disables), got {getattr(t, key)}")
    if t.grad_clip < 0:
        raise ConfigError("train.grad_clip", f"must be >= 0 (0 disables), got {t.grad_clip}")
    if cfg.model.dropout is not None and not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError("model.dropout", f"must lie in [0, 1), got {cfg.model.dropout}")
