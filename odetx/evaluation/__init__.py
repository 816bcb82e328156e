"""Evaluation and inference of trained models; independent of the training loop."""

from odetx.evaluation.checkpoint import CheckpointEval, eval_loader, evaluate_checkpoint, load_split
from odetx.evaluation.load import LoadedModel, load_model, override_solver
from odetx.evaluation.loop import EvalResult, evaluate

__all__ = [
    "CheckpointEval",
    "EvalResult",
    "LoadedModel",
    "eval_loader",
    "evaluate",
    "evaluate_checkpoint",
    "load_model",
    "load_split",
    "override_solver",
]
