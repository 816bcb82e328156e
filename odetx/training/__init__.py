"""Training: the loop, its state, and what a new or resumed run starts from."""

from odetx.training.loop import Trainer
from odetx.training.start import RESUMABLE, RunPlan, prepare_resume, prepare_run

__all__ = ["RESUMABLE", "RunPlan", "Trainer", "prepare_resume", "prepare_run"]
