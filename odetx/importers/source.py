"""A pretrained model on disk, read as hostile input.

A source is a folder written by ``transformers``' ``save_pretrained`` (``config.json``
with a ``model_type``, weights in ``model.safetensors``, sharded safetensors with an
index, or ``pytorch_model.bin``) or by timm's ``save_for_hf`` (``config.json`` with an
``architecture``), or a hub id ``hf-hub:ORG/NAME`` fetched with ``huggingface_hub``.
``config.json`` is parsed with a size bound and its numbers checked where they are
read; weights come only from safetensors or ``torch.load(weights_only=True)``, one
tensor at a time from a memory map, so nothing is held twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from odetx.errors import CheckpointError, ConfigError

HUB = "hf-hub:"
MAX_CONFIG = 1 << 20  # bytes: a config.json is a few kB
MAX_DIM = 1 << 20  # widths, head counts, vocabularies: anything larger is not a model here
MAX_INDEX = 64 << 20


class SourceError(CheckpointError):
    """A source that is missing, damaged, or not a model odetx can read (one line)."""


def fetch_hub(repo: str) -> Path:
    """The local snapshot of ``repo``, downloaded when the network allows."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SourceError(
            f"{HUB}{repo} needs huggingface_hub: pip install huggingface_hub "
            "(or download the folder and pass its path)"
        ) from None
    patterns = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"]
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, gated: hub errors of many classes
        home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        why = "offline (HF_HUB_OFFLINE)" if offline else type(e).__name__
        raise SourceError(
            f"{HUB}{repo} is not in the local cache under {home} (HF_HOME) and could not "
            f"be downloaded ({why}); nothing was written"
        ) from None


def read_config(folder: Path) -> dict[str, Any]:
    p = folder / "config.json"
    if not p.is_file():
        raise SourceError(
            f"{folder} has no config.json: expected a folder written by transformers' "
            "save_pretrained or timm's save_for_hf"
        )
    size = p.stat().st_size
    if size > MAX_CONFIG:
        raise SourceError(f"{p} is {size:,} bytes; a model's config.json is a few kB")
    try:
        cfg = json.loads(p.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"{p} is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(cfg, dict):
        raise SourceError(f"{p} holds {type(cfg).__name__}, not a JSON object")
    return cfg


class Source:
    """One source folder: its config, its tensors by name, its tokenizer."""

    def __init__(self, spec: str | Path) -> None:
        spec = str(spec)
        self.spec = spec
        folder = fetch_hub(spec[len(HUB) :]) if spec.startswith(HUB) else Path(spec)
        if not folder.exists():
            raise SourceError(f"no model at {folder}")
        if not folder.is_dir():
            raise SourceError(f"{folder} is a file; give the folder holding config.json")
        self.folder = folder
        self.config = read_config(folder)
        self._files = self._weight_files()
        self._index: dict[str, Path] | None = None
        self._open: dict[Path, Any] = {}

    # ------------------------------------------------------------ config values

    def get(self, key: str, kind: type | tuple, default: Any = ..., low: float = 0) -> Any:
        """``config[key]`` checked to be of ``kind`` (ints also bounded); ``default`` when
        absent (``...``: required)."""
        if key not in self.config or self.config[key] is None:
            if default is ...:
                raise SourceError(f"{self.folder}/config.json lacks {key!r}")
            return default
        value = self.config[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise SourceError(
                f"{self.folder}/config.json: {key} is {str(value)[:40]!r}, expected {names}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not low <= value <= (MAX_DIM if isinstance(value, int) else float("inf")):
                raise SourceError(
                    f"{self.folder}/config.json: {key} = {value} is outside [{low}, {MAX_DIM}]"
                )
        return value

    # ------------------------------------------------------------ weights

    def _weight_files(self) -> list[Path]:
        f = self.folder
        for pattern in ("model.safetensors", "pytorch_model.bin"):
            if (f / pattern).is_file():
                return [f / pattern]
        for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            if (f / index).is_file():
                return [f / index]
        raise SourceError(
            f"{f} has no weights: expected model.safetensors, pytorch_model.bin or a sharded index"
        )

    def _shards(self) -> dict[str, Path]:
        """Tensor name -> the file holding it."""
        if self._index is not None:
            return self._index
        first = self._files[0]
        index: dict[str, Path] = {}
        if first.name.endswith(".index.json"):
            if first.stat().st_size > MAX_INDEX:
                raise SourceError(f"{first} is too large for an index")
            try:
                data = json.loads(first.read_text("utf-8"))
                weight_map = data["weight_map"]
                assert isinstance(weight_map, dict)
            except Exception:
                raise SourceError(f"{first} is not a weight index (no weight_map)") from None
            for name, shard in weight_map.items():
                p = self.folder / Path(str(shard)).name  # never outside the folder
                if not p.is_file():
                    raise SourceError(f"{first} names {p.name}, which is missing")
                index[str(name)] = p
        else:
            for name in self._names_in(first):
                index[name] = first
        self._index = index
        return index

    def _reader(self, path: Path) -> Any:
        if path not in self._open:
            try:
                if path.suffix == ".safetensors":
                    from safetensors import safe_open

                    self._open[path] = safe_open(str(path), framework="pt", device="cpu")
                else:
                    self._open[path] = torch.load(
                        path, map_location="cpu", weights_only=True, mmap=True
                    )
                    if not isinstance(self._open[path], dict):
                        raise TypeError("not a state dict")
            except Exception as e:
                detail = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
                raise SourceError(f"cannot read weights from {path} ({detail})") from None
        return self._open[path]

    def _names_in(self, path: Path) -> list[str]:
        reader = self._reader(path)
        return list(reader.keys())

    def names(self) -> set[str]:
        return set(self._shards())

    def has(self, name: str) -> bool:
        return name in self._shards()

    def tensor(self, name: str, dtype: torch.dtype = torch.float32) -> Tensor:
        """The tensor ``name``, as ``dtype``; a missing one names the file and tensor."""
        shards = self._shards()
        if name not in shards:
            raise SourceError(
                f"{self.folder}: the weights lack {name!r}; config.json and the weights "
                "describe different models"
            )
        reader = self._reader(shards[name])
        try:
            t = reader.get_tensor(name) if hasattr(reader, "get_tensor") else reader[name]
        except Exception as e:
            raise SourceError(f"cannot read {name!r} from {shards[name]} ({e})") from None
        if not isinstance(t, Tensor):
            raise SourceError(f"{shards[name]}: {name!r} is not a tensor")
        return t.to(dtype) if t.is_floating_point() else t

    def shaped(self, name: str, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """:meth:`tensor`, refused with one line unless it has ``shape``."""
        t = self.tensor(name, dtype)
        if tuple(t.shape) != tuple(shape):
            raise SourceError(
                f"{self.folder}: {name} is {tuple(t.shape)}, config.json implies {tuple(shape)}"
            )
        return t

    def prefixed(self, prefix: str) -> Iterator[str]:
        return (n for n in sorted(self._shards()) if n.startswith(prefix))

    # ------------------------------------------------------------ tokenizer

    def tokenizer_json(self) -> str:
        """The folder's ``tokenizer.json`` text, or "" when it has none."""
        p = self.folder / "tokenizer.json"
        if not p.is_file():
            return ""
        if p.stat().st_size > 64 << 20:
            raise SourceError(f"{p} is too large for a tokenizer.json")
        return p.read_text("utf-8")


def require(condition: bool, key: str, message: str) -> None:
    """A source setting odetx cannot express: one line naming it (exit code 2)."""
    if not condition:
        raise ConfigError(f"config.json {key}", message)
