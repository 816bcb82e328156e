"""A model file, told apart by its content: a run directory, a checkpoint or an export.

``torch.save``, ``torch.jit.save`` and ``torch.export.save`` all write zip archives, so
neither the suffix nor the magic bytes say which one a file is; the archive's member
names do (TorchScript has ``code/`` and ``constants.pkl``, a ``.pt2`` has
``archive_format``, ``models/`` and ``data/weights/``, a checkpoint ``data.pkl`` and none
of those). An ONNX graph is a protobuf ``ModelProto`` whose first field is its IR
version (byte 0x08). :func:`identify` says what a file is without loading it (a zip
whose directory is lost is read from its members' local headers). Each kind then has
one reader with one error path, so every failure is one line naming the file and what
it is: :func:`~odetx.artefacts.checkpoint.load_checkpoint` for checkpoints (which
refuses the other kinds by name, see :func:`require_checkpoint`) and
:func:`read_export` for TorchScript, ``.pt2`` and ONNX.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from odetx.errors import CheckpointError, ConfigError, ModelFileError
from odetx.registry import Registry

METADATA = "odetx.json"  # what every export carries: config, solver, data shapes


@dataclass(frozen=True)
class Kind:
    """One kind of model file: ``title`` is what a message calls it."""

    name: str
    title: str
    suffix: str


RUN = Kind("run", "a run directory", "")
CHECKPOINT = Kind("checkpoint", "an odetx checkpoint", ".pt")
TORCHSCRIPT = Kind("torchscript", "a TorchScript export", ".ts")
PT2 = Kind("pt2", "a torch.export program (.pt2)", ".pt2")
ONNX = Kind("onnx", "an ONNX export", ".onnx")
EXPORTS = (TORCHSCRIPT, PT2, ONNX)


@dataclass(frozen=True)
class ModelFile:
    """What :func:`identify` found: ``kind`` (None: no model file odetx reads) and a
    ``note`` on what the bytes show when they are not whole or not a model."""

    path: Path
    kind: Kind | None
    note: str = ""


def printable(text: str, limit: int = 100) -> str:
    """``text`` as one short line of printable characters (it may come from corrupt bytes)."""
    text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------- identifying

ZIP_MAGIC = b"PK\x03\x04"
ONNX_FIRST_BYTE = b"\x08"  # ModelProto field 1 (ir_version), varint
# A zip member's local header: magic, 22 bytes, then the name's and the extra field's lengths.
LOCAL_HEADER = re.compile(rb"PK\x03\x04[\s\S]{22}([\s\S]{2})[\s\S]{2}")
SCAN_BYTES = 64 << 20  # how much of a damaged zip is searched for member names
PT2_MEMBERS = ("archive_format", "archive_version", "models/", "data/weights/", "data/constants/")
TORCHSCRIPT_MEMBERS = ("constants.pkl", "code/", "extra/")


def zip_kind(names: list[str]) -> Kind | None:
    """The kind of torch archive holding members ``names`` (``<archive>/<member>``)."""
    members = [n.split("/", 1)[1] for n in names if "/" in n]
    if any(m.startswith(PT2_MEMBERS) for m in members):
        return PT2
    if any(m.startswith(TORCHSCRIPT_MEMBERS) for m in members):  # after .pt2: it has extra/ too
        return TORCHSCRIPT
    return CHECKPOINT if "data.pkl" in members else None


def local_names(head: bytes) -> list[str]:
    """Member names read from local headers, for a zip whose directory is lost."""
    names = []
    for m in LOCAL_HEADER.finditer(head):
        raw = head[m.end() : m.end() + int.from_bytes(m.group(1), "little")]
        if raw.isascii() and raw.decode().isprintable() and "/" in raw.decode():
            names.append(raw.decode())
    return names


def identify(path: str | Path) -> ModelFile:
    """What ``path`` holds, from its content alone (never its suffix).

    Raises:
        ModelFileError: ``path`` does not exist or cannot be read.
    """
    p = Path(path)
    if p.is_dir():
        return ModelFile(p, RUN)
    try:
        with p.open("rb") as f:
            head = f.read(len(ZIP_MAGIC))
            if head == ZIP_MAGIC:
                return _identify_zip(p, f)
    except FileNotFoundError:
        raise ModelFileError(f"no model file at {p}") from None
    except OSError as e:
        raise ModelFileError(f"cannot read {p} ({e.strerror or e})") from None
    if not head:
        return ModelFile(p, None, "an empty file")
    if head.startswith(ONNX_FIRST_BYTE):
        return ModelFile(p, ONNX)
    return ModelFile(p, None, "neither a torch archive nor an ONNX graph")


def damaged_member(path: Path) -> str | None:
    """The first member of the zip archive ``path`` whose bytes fail their CRC-32, if any.

    torch's archive reader checks no checksums: a flipped bit reaches a tensor (silently)
    or its unpickler, which on some bytes aborts the whole process.

    Raises:
        zipfile.BadZipFile, OSError: no readable zip directory.
    """
    with zipfile.ZipFile(path) as z:
        return z.testzip()


def _identify_zip(p: Path, f: Any) -> ModelFile:
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as z:
            names = z.namelist()
    except Exception:  # a lost or damaged directory fails in many types
        f.seek(0)
        kind = zip_kind(local_names(f.read(SCAN_BYTES)))
        return ModelFile(p, kind, "its zip directory is unreadable" if kind else "a damaged zip")
    kind = zip_kind(names)
    return ModelFile(p, kind, "" if kind else "a zip archive of other files")


# ----------------------------------------------------------------- checkpoints


class NotACheckpoint(CheckpointError):
    """A model file of another kind where a checkpoint or run directory is needed: a
    usage error; ``purpose`` names who needs it (the CLI fills in its command if None)."""

    exit_code = 2

    def __init__(self, found: ModelFile, purpose: str | None = None) -> None:
        self.found, self.purpose = found, purpose
        super().__init__(self._line(purpose or "this command"))

    def _line(self, who: str) -> str:
        title = self.found.kind.title if self.found.kind else "not a model file"
        return f"{self.found.path} is {title}; {who} needs a checkpoint or run directory"

    def in_command(self, command: str) -> str:
        return self._line(self.purpose or command)


def require_checkpoint(found: ModelFile, purpose: str | None = None) -> None:
    """Refuse anything but a checkpoint, by what it is.

    Raises:
        NotACheckpoint: an export (or a run directory where a file was resolved).
        CheckpointError: bytes that are no model file at all (empty, cut, foreign).
    """
    if found.kind is CHECKPOINT:
        return
    if found.kind is not None:
        raise NotACheckpoint(found, purpose)
    raise CheckpointError(
        f"cannot read {found.path}: the file is corrupt or truncated ({found.note})"
    )


# ----------------------------------------------------------------- exports


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence PyTorch's "torch.jit.* is deprecated" FutureWarnings; the CLI says it once."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning
        )
        yield


class OnnxSession(nn.Module):
    """An onnxruntime session called like the eager model: tensors in, a tensor out."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: ort warns about unused initialisers
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.names = [i.name for i in self.session.get_inputs()]

    def forward(self, *inputs: Tensor) -> Tensor:
        feed = {n: x.detach().cpu().numpy() for n, x in zip(self.names, inputs, strict=True)}
        return torch.from_numpy(self.session.run(None, feed)[0])


@dataclass(frozen=True)
class Export:
    """An exported model, callable like the eager one, and its ``odetx.json`` ("" if none)."""

    kind: Kind
    module: Callable[..., Tensor]
    metadata: str


def _intact(path: Path) -> None:
    bad = damaged_member(path)
    if bad is not None:
        raise ValueError(f"{bad} fails its checksum")


def _read_torchscript(path: Path) -> tuple[nn.Module, str]:
    _intact(path)
    extra = {METADATA: ""}
    with quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, extra[METADATA]


@contextlib.contextmanager
def quiet_log(name: str) -> Iterator[None]:
    """Mute logger ``name``: torch.export.load logs a whole traceback before it raises."""
    logger = logging.getLogger(name)
    was, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was


def _read_pt2(path: Path) -> tuple[nn.Module, str]:
    _intact(path)
    extra = {METADATA: ""}
    # An open file, because torch.export.load warns about paths not ending in .pt2.
    with path.open("rb") as f, quiet_log("torch.export"):
        program = torch.export.load(f, extra_files=extra)
    return program.module(), extra[METADATA]


def _read_onnx(path: Path) -> tuple[nn.Module, str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    meta = next((p.value for p in graph.metadata_props if p.key == METADATA), "")
    return OnnxSession(path), meta


def _require_onnx() -> None:
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            "MODEL", f"an ONNX model needs {', '.join(missing)}: pip install 'odetx[onnx]'"
        )


READERS: Registry[Callable[[Path], tuple[nn.Module, str]]] = Registry("export kind")
READERS.register(TORCHSCRIPT.name, _read_torchscript)
READERS.register(PT2.name, _read_pt2)
READERS.register(ONNX.name, _read_onnx)


def read_export(source: str | Path | ModelFile) -> Export:
    """Load an exported model (TorchScript, ``.pt2`` or ONNX, told by its content).

    Raises:
        ModelFileError: the file is no export, or a damaged one (one line naming the
            file, its kind and what failed).
        ConfigError: an ONNX file without the onnx extra installed.
    """
    found = source if isinstance(source, ModelFile) else identify(source)
    if found.kind not in EXPORTS:
        what = found.kind.title if found.kind else f"not a model file ({found.note})"
        raise ModelFileError(f"{found.path} is {what}, not an exported model")
    if found.kind is ONNX:
        _require_onnx()
    try:
        module, metadata = READERS[found.kind.name](found.path)
    except Exception as e:  # torch's and onnx's readers fail in many types: one line for all
        why = found.note or printable(str(e).split(". ")[0]) or type(e).__name__
        raise ModelFileError(
            f"cannot read {found.path}: {found.kind.title}, but corrupt or truncated ({why})"
        ) from None
    return Export(found.kind, module, metadata)
