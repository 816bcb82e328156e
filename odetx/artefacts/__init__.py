"""What a run leaves on disk: checkpoints and the run directory, read and written safely."""

from odetx.artefacts.checkpoint import load_checkpoint, resolve_checkpoint_path, save_checkpoint
from odetx.artefacts.rundir import RunDir, default_run_dir, run_identity

__all__ = [
    "RunDir",
    "default_run_dir",
    "load_checkpoint",
    "resolve_checkpoint_path",
    "run_identity",
    "save_checkpoint",
]
