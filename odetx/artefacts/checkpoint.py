"""Checkpoints: plain tensors and JSON-able data, written atomically, loaded safely.

Loading uses ``torch.load(weights_only=True)`` only, so a file carrying pickled
objects is refused rather than executed.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from odetx.errors import CheckpointError
from odetx.io import atomic_write

FORMAT = "odetx-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "config", "data_info", "model")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically: a crash mid-save keeps the previous file."""
    with atomic_write(path) as (f, _):
        torch.save({"format": FORMAT, "version": VERSION, **payload}, f)


def resolve_checkpoint_path(path: str | Path, name: str = "best.pt") -> Path:
    """Accept a checkpoint file or a run directory (then ``name`` inside it)."""
    p = Path(path)
    if p.is_dir():
        p = p / name
        if not p.is_file() and (p.parent / "last.pt").is_file():
            raise CheckpointError(f"no checkpoint at {p}; the run has {p.parent / 'last.pt'}")
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check an odetx checkpoint; refuse anything corrupt or untrusted."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}")
    with p.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(
            f"cannot read {p}: the file is corrupt or truncated (not a torch archive)"
        )
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next(
            (
                ln.split("error:", 1)[1].strip()
                for ln in str(e).splitlines()
                if "Unpickler error:" in ln
            ),
            "unsupported content",
        )
        raise CheckpointError(
            f"refused {p}: it holds objects other than tensors and plain data, and odetx "
            f"loads checkpoints with weights_only=True only ({detail})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        # torch's own words (a zip offset, an errno) would tell a user nothing more.
        raise CheckpointError(f"cannot read {p}: the file is corrupt or truncated") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not an odetx checkpoint")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p} lacks {', '.join(missing)}; it is not a complete checkpoint")
    if ckpt["version"] > VERSION:
        raise CheckpointError(f"{p} was written by a newer odetx (format {ckpt['version']})")
    return ckpt
