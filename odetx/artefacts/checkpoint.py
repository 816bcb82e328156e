"""Checkpoints: plain tensors and JSON-able data, written atomically, loaded safely.

Loading uses ``torch.load(weights_only=True)`` only, so a file carrying pickled
objects is refused rather than executed.
"""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from odetx.artefacts.modelfile import damaged_member, identify, printable, require_checkpoint
from odetx.data.base import DataInfo
from odetx.errors import CheckpointError
from odetx.io import atomic_write

FORMAT = "odetx-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "config", "data_info", "model")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a crash mid-save keeps the previous file.

    Raises:
        CheckpointError: the write failed (a full disk, say); the message names the file
            and says whether a previous one is kept.
    """
    path = Path(path)
    try:
        with atomic_write(path) as (f, _):
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
    except (OSError, RuntimeError) as e:  # torch reports a failed write as a RuntimeError
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        kept = f"the previous {path.name} is kept" if path.exists() else "nothing was saved"
        raise CheckpointError(f"cannot write {path}: {reason}; {kept}") from None


def resolve_checkpoint_path(
    path: str | Path, name: str = "best.pt", purpose: str | None = None
) -> Path:
    """Accept a checkpoint file or a run directory (then ``name`` inside it).

    Raises:
        CheckpointError: no such file, or a file of another kind (an export, say: the
            message names it and ``purpose``, who needs a checkpoint).
    """
    p = Path(path)
    if p.is_dir():
        p = p / name
        if not p.is_file() and (p.parent / "last.pt").is_file():
            raise CheckpointError(f"no checkpoint at {p}; the run has {p.parent / 'last.pt'}")
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    require_checkpoint(identify(p), purpose)
    return p


def _refusal(p: Path, e: pickle.UnpicklingError) -> CheckpointError:
    """What a weights_only refusal means: foreign objects, or a damaged pickle inside."""
    detail = next(
        (
            ln.split("error:", 1)[1].strip()
            for ln in str(e).splitlines()
            if "Unpickler error:" in ln
        ),
        "",
    )
    if detail.startswith("Unsupported global:"):
        name = detail.removeprefix("Unsupported global:").strip().removeprefix("GLOBAL ")
        name = name.split(" was not", 1)[0]
        return CheckpointError(
            f"refused {p}: it holds objects other than tensors and plain data, and odetx "
            f"loads checkpoints with weights_only=True only ({printable(name)})"
        )
    reason = f" ({printable(detail)})" if detail else ""
    return CheckpointError(f"cannot read {p}: the file is corrupt or truncated{reason}")


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_str_mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _is_tensor_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in value)


# Optional entries (present in checkpoints written by training) and what each must be.
OPTIONAL: dict[str, tuple[str, Any]] = {
    "epoch": ("an int", _is_int),
    "step": ("an int", _is_int),
    "best_epoch": ("an int", _is_int),
    "params": ("an int", _is_int),
    "best_val_acc": ("a number", _is_number),
    "best_val_loss": ("a number", _is_number),
    "wall_time_s": ("a number", _is_number),
    "optimizer": ("a mapping", _is_str_mapping),
    "scaler": ("a mapping", _is_str_mapping),
    "rng": ("a mapping", _is_str_mapping),
    "model_ema": ("a mapping of parameter names to tensors", _is_str_mapping),
    "ema_updates": ("an int", _is_int),
}


def check_structure(p: Path, ckpt: Any) -> dict[str, Any]:
    """``ckpt`` if it has the layout :func:`save_checkpoint` writes, else a
    :class:`CheckpointError` naming ``p`` and the first field that is wrong."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an odetx checkpoint")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p} lacks {', '.join(missing)}; it is not a complete checkpoint")

    def wrong(field: str, expected: str, value: Any) -> CheckpointError:
        if isinstance(value, dict) and "mapping" in expected:
            key = next(k for k in value if not isinstance(k, str))
            what = f"has the key {printable(repr(key), 40)} ({_kind(key)})"
            return CheckpointError(f"{p}: {field} {what}, expected str keys")
        return CheckpointError(f"{p}: {field} is {_kind(value)}, expected {expected}")

    version = ckpt["version"]
    if not _is_int(version) or version < 1:
        raise CheckpointError(
            f"{p}: version is {printable(repr(version), 40)}, expected an int >= 1"
        )
    if version > VERSION:
        raise CheckpointError(f"{p} was written by a newer odetx (format {version})")
    if not _is_str_mapping(ckpt["config"]):
        raise wrong("config", "a mapping of settings", ckpt["config"])
    info = ckpt["data_info"]
    if not _is_str_mapping(info):
        raise wrong("data_info", "a mapping", info)
    for f in dataclasses.fields(DataInfo):
        if f.name in info:
            value = info[f.name]
            if f.type in ("tuple[str, ...]", tuple[str, ...]):
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, str) for v in value
                ):
                    raise wrong(f"data_info.{f.name}", "a list of str", value)
                continue
            want = (str, "a str") if f.type in (str, "str") else (int, "an int")
            if not isinstance(value, want[0]) or isinstance(value, bool):
                raise wrong(f"data_info.{f.name}", want[1], value)
    # A run with train.ema keeps its weight average beside the trained weights.
    for part in ("model", "model_ema"):
        weights = ckpt.get(part, {})
        if not _is_str_mapping(weights):
            raise wrong(part, "a mapping of parameter names to tensors", weights)
        for name, value in weights.items():
            if not isinstance(value, torch.Tensor):
                raise wrong(f"{part}[{printable(repr(name), 60)}]", "a tensor", value)
    for key, (expected, ok) in OPTIONAL.items():
        if key in ckpt and not ok(ckpt[key]):
            raise wrong(key, expected, ckpt[key])
    rng = ckpt.get("rng", {})
    if "torch" in rng and not isinstance(rng["torch"], torch.Tensor):
        raise wrong("rng.torch", "a tensor", rng["torch"])
    if "ranks" in rng and not _is_tensor_list(rng["ranks"]):
        raise wrong("rng.ranks", "a list of tensors", rng["ranks"])
    return ckpt


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", purpose: str | None = None
) -> dict[str, Any]:
    """Load and check an odetx checkpoint; refuse anything corrupt, untrusted or odd.

    Every failure is a :class:`CheckpointError` naming the file (and the field, for a
    file that loads but holds the wrong structure); a model file of another kind (an
    export) is named as what it is, with ``purpose``, who needed a checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    require_checkpoint(identify(p), purpose)
    try:
        bad = damaged_member(p)
    except Exception:  # no readable directory: torch.load below says so in one line
        bad = None
    if bad is not None:
        raise CheckpointError(f"cannot read {p}: the file is corrupt ({bad} fails its checksum)")
    try:
        with warnings.catch_warnings():
            # A damaged pickle header reads as an unusual protocol; the error below says more.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refusal(p, e) from None
    except Exception:
        # Damaged bytes surface as RuntimeError (zip), EOFError, UnicodeDecodeError,
        # IndexError, ValueError, ... from torch's reader; their words tell a user nothing.
        raise CheckpointError(f"cannot read {p}: the file is corrupt or truncated") from None
    return check_structure(p, ckpt)
