"""Optional TensorBoard logging of each epoch's metrics row, under ``RUN/tensorboard``.

``torch.utils.tensorboard.SummaryWriter`` writes the event files; it needs the
``tensorboard`` package (``pip install "odetx[tensorboard]"``), which odetx does not
require otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odetx.errors import ConfigError

FOLDER = "tensorboard"


def require_tensorboard() -> None:
    """Refuse ``train.tensorboard`` with one line when the package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(
            "train.tensorboard",
            'needs the tensorboard package: pip install "odetx[tensorboard]" '
            "(or set train.tensorboard=false)",
        ) from None


class Board:
    """Scalars of each metrics row, stepped by epoch, in ``run_dir/tensorboard``.

    A resumed run appends to the same folder; ``resumed_after`` (the epoch it continues
    from) makes TensorBoard drop what an earlier process logged past that epoch, so a row
    logged before a crash and trained again shows once.
    """

    def __init__(self, run_dir: str | Path, resumed_after: int | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        purge = resumed_after + 1 if resumed_after is not None else None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER), purge_step=purge)

    def log(self, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
