"""Artefact formats: how to build, save and load each one with plain torch.

Both formats write the same metadata, ``odetx.json`` (the resolved config with the
baked solver, the data shapes and the signature), as an extra file of the archive:

    extra = {"odetx.json": ""}
    torch.jit.load("model.ts", _extra_files=extra)          # TorchScript
    torch.export.load("model.pt2", extra_files=extra)       # torch.export
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from odetx.artefacts.modelfile import METADATA, quiet_torchscript, read_export
from odetx.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    """One artefact format.

    Args:
        name: ``--format`` value.
        suffix: the file suffix the format is inferred from.
        title: what the artefact is, for people.
        build: ``(model, example_inputs, dynamic_shapes) -> artefact``.
        save: ``(artefact, file, metadata_json)``; writes the artefact to an open file.
        load: ``path -> callable module``, with plain torch only (every format reads back
            through :func:`load_artefact`).
        load_hint: the load line shown to users; ``{path}`` is filled in.
        steps: how the solver's step count lives in the artefact.
        note: one line shown after exporting, if any.
        tolerance: the parity limit, when the format's runtime cannot match eager closer
            than the default (None: the default).
        requires: raises ConfigError when the format's optional packages are missing.
    """

    name: str
    suffix: str
    title: str
    build: Callable[[nn.Module, tuple, tuple], Any]
    save: Callable[[Any, IO[bytes], str], None]
    load: Callable[[Path], nn.Module]
    load_hint: str
    steps: str
    note: str | None = None
    tolerance: float | None = None
    requires: Callable[[], None] | None = None


def _script(model: nn.Module, example: tuple, dynamic: tuple) -> Any:
    with quiet_torchscript():
        return torch.jit.script(model)


def _save_script(artefact: Any, f: IO[bytes], metadata: str) -> None:
    with quiet_torchscript():
        torch.jit.save(artefact, f, _extra_files={METADATA: metadata})


def _export(model: nn.Module, example: tuple, dynamic: tuple) -> Any:
    return torch.export.export(model, example, dynamic_shapes=dynamic)


def _save_exported(artefact: Any, f: IO[bytes], metadata: str) -> None:
    torch.export.save(artefact, f, extra_files={METADATA: metadata})


def load_artefact(path: Path) -> nn.Module:
    """The artefact at ``path``, read as ``odetx predict`` reads it (by its content)."""
    return read_export(path).module


FORMATS: Registry[ExportFormat] = Registry("export format")
FORMATS.register(
    "torchscript",
    ExportFormat(
        "torchscript",
        ".ts",
        "TorchScript",
        _script,
        _save_script,
        load_artefact,
        'm = torch.jit.load("{path}")',
        "runtime: for b in m.stack.blocks.children(): b.steps = 8",
        "PyTorch deprecates TorchScript (its FutureWarnings are silenced here; torch.jit.load "
        "still warns); --format pt2 writes the torch.export format it recommends",
    ),
)
FORMATS.register(
    "pt2",
    ExportFormat(
        "pt2",
        ".pt2",
        "torch.export ExportedProgram",
        _export,
        _save_exported,
        load_artefact,
        'm = torch.export.load("{path}").module()',
        "unrolled into the graph; export again with --steps to change it",
    ),
)


def format_for(name: str | None, out: Path | None) -> ExportFormat | None:
    """The format ``name`` names, else the one ``out``'s suffix implies (None: neither)."""
    if name is not None:
        return FORMATS[name]
    if out is not None:
        for _, fmt in FORMATS.items():
            if out.suffix == fmt.suffix:
                return fmt
    return None
