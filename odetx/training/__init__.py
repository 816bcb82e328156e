"""Training loop, evaluation, checkpoints and the run directory."""

from odetx.training.checkpoint import load_checkpoint, resolve_checkpoint_path, save_checkpoint
from odetx.training.evaluate import EvalResult, evaluate
from odetx.training.loop import Trainer, prepare_resume, resolve_device, resolved
from odetx.training.rundir import RunDir

__all__ = [
    "EvalResult",
    "RunDir",
    "Trainer",
    "evaluate",
    "load_checkpoint",
    "prepare_resume",
    "resolve_checkpoint_path",
    "resolve_device",
    "resolved",
    "save_checkpoint",
]
