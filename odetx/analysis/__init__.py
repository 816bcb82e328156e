"""Analyses of trained models read as ODEs: trajectories, field norms, flow sensitivity."""

from odetx.analysis.inspect import Inspection, inspect_checkpoint, inspect_stack

__all__ = ["Inspection", "inspect_checkpoint", "inspect_stack"]
