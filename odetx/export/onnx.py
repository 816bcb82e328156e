"""The ONNX format: a graph run by onnxruntime, with ``odetx.json`` in its metadata.

    import onnx, onnxruntime
    meta = {p.key: p.value for p in onnx.load("model.onnx").metadata_props}["odetx.json"]
    logits = onnxruntime.InferenceSession("model.onnx").run(None, {"images": x})[0]

Capture tries torch's ``torch.export``-based exporter first (batch and sequence length
declared dynamic), then the TorchScript-based one (the same dimensions as dynamic axes).
onnx, onnxruntime and onnxscript are the optional ``onnx`` extra, imported only here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from odetx.errors import ConfigError
from odetx.export.formats import FORMATS, METADATA, ExportFormat, load_artefact

OPSET = 18
# onnxruntime fuses and reorders float32 kernels, so it cannot match eager to the bit.
TOLERANCE = 1e-4
EXTRA = ("onnx", "onnxruntime", "onnxscript")


def require_extra() -> None:
    """Refuse ``--format onnx`` up front when the optional packages are missing."""
    missing = [m for m in EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            "--format",
            f"onnx needs {', '.join(missing)}; install the extra: pip install 'odetx[onnx]'",
        )


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """The exporters narrate (progress lines, deprecation and tracer warnings): the report
    is odetx's to give."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def input_names(example: tuple) -> list[str]:
    """The graph's input names, as the eager ``forward`` calls them."""
    return ["images"] if example[0].is_floating_point() else ["tokens", "mask"][: len(example)]


def axes(names: list[str], dynamic: tuple) -> dict[str, dict[int, str]]:
    """``torch.export.Dim`` shapes as the TorchScript exporter's ``dynamic_axes``."""
    out = {
        name: {d: dim.__name__ for d, dim in dims.items()}
        for name, dims in zip(names, dynamic, strict=True)
    }
    # A language model's logits keep the token dimension; a classifier's do not.
    out["logits"] = dict(out[names[0]]) if names == ["tokens"] else {0: "batch"}
    return out


def _build(model: nn.Module, example: tuple, dynamic: tuple) -> Any:
    names = input_names(example)
    try:
        with quiet_export():
            program = torch.onnx.export(
                model,
                example,
                dynamo=True,
                dynamic_shapes=dynamic,
                input_names=names,
                output_names=["logits"],
                opset_version=OPSET,
                optimize=True,
                verbose=False,
            )
        return program.model_proto
    except Exception:  # the dynamo exporter's failures are many types; try the other one
        pass
    import onnx

    buffer = io.BytesIO()
    with quiet_export():
        torch.onnx.export(
            model,
            example,
            buffer,
            dynamo=False,
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes(names, dynamic),
            opset_version=OPSET,
        )
    return onnx.load_from_string(buffer.getvalue())


def _save(artefact: Any, f: IO[bytes], metadata: str) -> None:
    del artefact.metadata_props[:]
    entry = artefact.metadata_props.add()
    entry.key, entry.value = METADATA, metadata
    f.write(artefact.SerializeToString())


def read_metadata(path: Path) -> str:
    """The ``odetx.json`` an ONNX artefact carries ("" if none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == METADATA), "")


FORMATS.register(
    "onnx",
    ExportFormat(
        "onnx",
        ".onnx",
        "ONNX graph",
        _build,
        _save,
        load_artefact,
        'm = onnxruntime.InferenceSession("{path}")',
        "unrolled into the graph; export again with --steps to change it",
        tolerance=TOLERANCE,
        requires=require_extra,
    ),
)
