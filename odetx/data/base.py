"""What every dataset provides: static shape information and three splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from odetx.errors import ConfigError, DataInputError

SPLITS = ("train", "val", "test")
# A target with this id is not scored (torch's cross_entropy skips it by default).
IGNORE_INDEX = -100


def check_split(name: str, key: str = "--split") -> str:
    """``name`` if it is a split, else a :class:`ConfigError` on setting ``key``."""
    if name not in SPLITS:
        raise ConfigError(key, f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
    return name


@dataclass(frozen=True)
class DataInfo:
    """Shapes a model needs, known without loading the data."""

    kind: str  # "image", "tokens" (a sequence, one label) or "text" (next-token prediction)
    num_classes: int  # classes, or the vocabulary size for text
    image_size: int = 0
    in_chans: int = 0
    vocab_size: int = 0
    max_len: int = 0  # tokens: padded length; text: the context (window) length
    unit: str = ""  # text: what one token is, "byte" or "char"
    chars: str = ""  # text with a character vocabulary: the characters in id order
    tokenizer: str = ""  # text with a learned tokenizer: its Hugging Face tokenizer.json
    classes: tuple[str, ...] = ()  # classifiers that know them: class names in label order


@dataclass(frozen=True)
class Splits:
    """The three splits; ``test`` is ``None`` where the data has none (an image folder
    without ``test/``), and ``missing`` then says so in the user's terms."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    missing: str = ""

    def __getitem__(self, name: str) -> Dataset:
        split = getattr(self, check_split(name))
        if split is None:
            raise DataInputError(self.missing or f"the dataset has no {name} split")
        return split


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Args:
        kind: ``DataInfo.kind`` of its examples, known before reading anything, so a
            config pairing it with a model for another kind is refused first.
        info: static shapes (may depend on the data config).
        load: reads or generates the three splits.
        settle: fills the data keys that depend on the files read (ListOps' padded
            length), once, when the config is resolved, so the run's config and
            checkpoints record them; ``None`` where nothing does.
        description, source, download: one line each for ``odetx list`` and the README.
    """

    name: str
    kind: str
    info: Callable[..., DataInfo]
    load: Callable[..., Splits]
    description: str
    source: str
    download: bool = False
    settle: Callable[[Any], Any] | None = None
