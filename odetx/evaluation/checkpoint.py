"""Evaluate a checkpoint on a split: the one path ``eval``, ``compare`` and ``predict`` share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from odetx.data import DATASETS, check_split
from odetx.data.base import DataInfo
from odetx.errors import ConfigError, DataInputError
from odetx.evaluation.load import LoadedModel, load_model
from odetx.evaluation.loop import EvalResult, evaluate
from odetx.runtime.loaders import make_loader


def load_split(loaded: LoadedModel, split: str, data_root: str | None = None) -> Dataset:
    """The ``split`` of the dataset ``loaded`` was trained on (read from ``data_root`` if given)."""
    check_split(split)
    data = loaded.config.data
    if data_root:
        data = dataclasses.replace(data, root=data_root)
    entry = DATASETS[data.name]
    if loaded.info.kind == "text":
        check_same_tokens(loaded, entry.info(data), data.root)
    return entry.load(data)[split]


def check_same_tokens(loaded: LoadedModel, info: DataInfo, root: str | None) -> None:
    """Refuse text tokenised otherwise than the model was trained on: its ids would be
    read as other tokens, and every score would be wrong without an error."""
    mine, theirs = loaded.info, info
    same = (mine.vocab_size, mine.chars, mine.tokenizer) == (
        theirs.vocab_size,
        theirs.chars,
        theirs.tokenizer,
    )
    if not same:
        raise DataInputError(
            f"{root or loaded.config.data.name} holds text tokenised by another tokenizer "
            f"({theirs.unit or 'byte'}, {theirs.vocab_size} ids) than {loaded.path} was "
            f"trained with ({mine.unit or 'byte'}, {mine.vocab_size} ids); prepare it with "
            "the run's tokenizer (odetx data text SRC --out DIR --tokenizer its tokenizer.json)"
        )


def eval_loader(loaded: LoadedModel, dataset: Dataset, batch_size: int | None = None) -> DataLoader:
    """Batches of ``dataset`` in order; twice the training batch size unless given."""
    if batch_size is not None and batch_size <= 0:
        raise ConfigError("--batch-size", f"must be positive, got {batch_size}")
    return make_loader(dataset, batch_size or 2 * loaded.config.train.batch_size, False)


@dataclass(frozen=True)
class CheckpointEval:
    """One checkpoint's metrics on one split, and how it was integrated."""

    loaded: LoadedModel
    split: str
    result: EvalResult

    def to_dict(self) -> dict[str, Any]:
        cfg = self.loaded.config
        return {
            "checkpoint": str(self.loaded.path),
            "dataset": cfg.data.name,
            "split": self.split,
            "arch": cfg.model.arch,
            "trained_arch": self.loaded.trained_arch,
            "solver": dataclasses.asdict(self.loaded.solver),
            "trained_solver": dataclasses.asdict(self.loaded.trained_solver),
            "solver_overridden": self.loaded.overridden,
            "weights": self.loaded.weights,
            **self.result.to_dict(),
            # Image folders: the class names, in label order.
            **({"classes": list(self.loaded.info.classes)} if self.loaded.info.classes else {}),
        }


def evaluate_checkpoint(
    checkpoint: str | Path,
    split: str = "test",
    solver_overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    ema: bool = True,
    arch: str | None = None,
) -> CheckpointEval:
    """Loss, accuracy, NFE and throughput of ``checkpoint`` (a file or a run directory,
    then its ``best.pt``) on ``split``, integrated by its solver or ``solver_overrides``;
    with its weight average when it has one, unless ``ema`` is False.

    Raises:
        ConfigError: a bad split, batch size, device or solver override.
        CheckpointError: a missing, corrupt or untrusted checkpoint.
        DataError: the dataset's files are missing.
    """
    check_split(split)
    loaded = load_model(checkpoint, solver_overrides, device, ema, arch)
    loader = eval_loader(loaded, load_split(loaded, split, data_root), batch_size)
    return CheckpointEval(loaded, split, evaluate(loaded.model, loader, loaded.device))
