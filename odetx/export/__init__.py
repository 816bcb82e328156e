"""Export a trained model to TorchScript, a ``torch.export`` program or ONNX, parity-checked."""

import odetx.export.onnx  # noqa: F401  (registers the onnx format)
from odetx.export.core import ExportError, ExportReport, export_checkpoint
from odetx.export.formats import FORMATS, METADATA, ExportFormat
from odetx.export.inputs import INPUTS, input_spec

__all__ = [
    "FORMATS",
    "INPUTS",
    "METADATA",
    "ExportError",
    "ExportFormat",
    "ExportReport",
    "export_checkpoint",
    "input_spec",
]
