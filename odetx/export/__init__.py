"""Export a trained model to TorchScript or a ``torch.export`` program, parity-checked."""

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
