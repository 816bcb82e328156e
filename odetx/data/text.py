"""Text for language models: byte or character tokens, random training windows,
contiguous evaluation windows.

Two datasets read text this way:

- ``text``: a user's files, ``--data-dir DIR`` holding ``train.txt``, ``val.txt`` and
  ``test.txt``, or a single ``input.txt`` split 90 / 5 / 5 by position (nanoGPT's
  convention);
- ``pydoc-topics``: the English reference text CPython ships as ``pydoc_data.topics``
  (Python Software Foundation, PSF License Version 2), keys sorted and joined by blank
  lines, split 90 / 5 / 5 by position; present wherever Python is, so no download.

Tokens are bytes (``data.vocab: byte``, 256 ids, any file) or the characters of the
training text (``char``; the vocabulary is saved with the run, and a character the
training text lacks is refused with its position). A training epoch is
``data.train_windows`` windows of ``data.context + 1`` tokens at random offsets,
drawn afresh each epoch from ``(data.seed, epoch)``; evaluation reads val/test as
consecutive windows that score every token after the first exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from odetx.data.base import IGNORE_INDEX, SPLITS, DataInfo, Splits
from odetx.errors import ConfigError, DataError
from odetx.registry import Registry

SPLIT_FRACTIONS = (0.9, 0.05)  # train, val; test takes the rest


class Vocab:
    """Bytes of UTF-8 (``chars`` empty) or a fixed character table."""

    def __init__(self, chars: str = "") -> None:
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @property
    def size(self) -> int:
        return len(self.chars) if self.chars else 256

    @property
    def unit(self) -> str:
        return "char" if self.chars else "byte"

    @classmethod
    def from_info(cls, info: DataInfo) -> Vocab:
        return cls(info.chars)

    def encode(self, text: str, where: str = "the text") -> list[int]:
        """Token ids of ``text``; a character outside a char vocabulary is a DataError."""
        if not self.chars:
            return list(text.encode("utf-8"))
        try:
            return [self.index[c] for c in text]
        except KeyError as e:
            at = text.index(e.args[0])
            raise DataError(
                f"{where} has the character {e.args[0]!r} (at position {at}), which the "
                f"training text's vocabulary of {len(self.chars)} characters lacks"
            ) from None

    def decode(self, ids: list[int]) -> str:
        if not self.chars:
            return bytes(ids).decode("utf-8", errors="replace")
        return "".join(self.chars[i] for i in ids)


class RandomWindows(Dataset):
    """``count`` windows at offsets drawn from ``(seed, epoch)``; :meth:`set_epoch`
    redraws them, so an epoch's windows depend on nothing a resume could lose."""

    def __init__(self, tokens: Tensor, context: int, count: int, seed: int) -> None:
        self.tokens, self.context, self.count, self.seed = tokens, context, count, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        high = len(self.tokens) - self.context  # windows of context + 1 tokens
        self.offsets = torch.randint(0, high, (self.count,), generator=gen)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        o = int(self.offsets[i])
        w = self.tokens[o : o + self.context + 1]
        return w[:-1], w[1:]  # inputs (T,), next-token targets (T,)


class ContiguousWindows(Dataset):
    """Windows at offsets 0, T, 2T, …; the last one ends at the last token and scores
    only what the others did not, so every token but the first is scored once."""

    def __init__(self, tokens: Tensor, context: int) -> None:
        self.tokens, self.context = tokens, context
        n = len(tokens) - 1  # tokens that have a predecessor: the ones scored
        self.starts = [i * context for i in range(n // context)]
        self.tail = n % context
        if self.tail:
            self.starts.append(n - context)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        o = self.starts[i]
        w = self.tokens[o : o + self.context + 1]
        x, y = w[:-1], w[1:].clone()
        if self.tail and i == len(self.starts) - 1:
            y[: self.context - self.tail] = IGNORE_INDEX  # scored by the window before
        return x, y


# ``data.vocab`` -> the vocabulary it fits to the training text.
VOCABS: Registry[Callable[[str], Vocab]] = Registry("vocabulary")
VOCABS.register("byte", lambda train_text: Vocab())
VOCABS.register("char", lambda train_text: Vocab("".join(sorted(set(train_text)))))


def check_options(cfg) -> None:
    """Refuse impossible text settings, naming the key."""
    VOCABS.lookup(cfg.vocab, "data.vocab")
    if cfg.context <= 0:
        raise ConfigError("data.context", f"must be a positive number of tokens, got {cfg.context}")
    if cfg.train_windows <= 0:
        raise ConfigError("data.train_windows", f"must be positive, got {cfg.train_windows}")


def split_by_position(text: str) -> dict[str, str]:
    """90 / 5 / 5 of ``text`` by position (train, val, test)."""
    a = math.floor(len(text) * SPLIT_FRACTIONS[0])
    b = a + math.floor(len(text) * SPLIT_FRACTIONS[1])
    return {"train": text[:a], "val": text[a:b], "test": text[b:]}


def _read(path: Path) -> str:
    """The UTF-8 text of ``path``; an empty, binary (NUL bytes), UTF-16 or otherwise
    undecodable file is a :class:`DataError` naming it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e})") from None
    if not raw:
        raise DataError(f"{path} is empty (0 bytes): there is no text to read")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"{path} is UTF-16 text (it starts with a byte-order mark); text data must be "
            "UTF-8 (convert it, e.g. iconv -f UTF-16 -t UTF-8)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path} is not UTF-8 text (byte {e.start}, 0x{raw[e.start]:02x}, on line {line}); "
            "text data must be UTF-8"
        ) from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise DataError(f"{path} holds a NUL byte (byte {nul}): a binary or corrupt file, not text")
    return text


def read_files(root: str | None) -> dict[str, str]:
    """``train/val/test.txt`` or ``input.txt`` (split 90/5/5) from ``root``."""
    if not root:
        raise DataError("the text dataset reads your files: pass --data-dir DIR")
    folder = Path(root)
    named = [folder / f"{s}.txt" for s in SPLITS]
    if all(p.is_file() for p in named):
        return {s: _read(p) for s, p in zip(SPLITS, named, strict=True)}
    if (folder / "input.txt").is_file():
        return split_by_position(_read(folder / "input.txt"))
    raise DataError(
        f"no text in {folder}: expected train.txt, val.txt and test.txt, or one input.txt "
        "(split 90/5/5 by position)"
    )


def pydoc_topics() -> str:
    """CPython's ``pydoc_data.topics`` reference text, keys sorted, blank-line separated."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("this Python has no pydoc_data module (a minimal build?)") from None
    return "\n\n".join(topics[k] for k in sorted(topics))


def build(cfg, texts: dict[str, str], source: str) -> tuple[DataInfo, Splits]:
    """Tokenise the three texts and cut them into windows."""
    check_options(cfg)
    vocab = VOCABS[cfg.vocab](texts["train"])
    ids = {}
    for split in SPLITS:
        ids[split] = torch.tensor(vocab.encode(texts[split], f"{source} {split}"), dtype=torch.long)
        if len(ids[split]) < cfg.context + 1:
            raise DataError(
                f"{source} {split} has {len(ids[split])} tokens, fewer than one window of "
                f"data.context + 1 = {cfg.context + 1}; give more text or a shorter context"
            )
    info = DataInfo(
        kind="text",
        num_classes=vocab.size,
        vocab_size=vocab.size,
        max_len=cfg.context,
        unit=vocab.unit,
        chars=vocab.chars,
    )
    splits = Splits(
        RandomWindows(ids["train"], cfg.context, cfg.train_windows, cfg.seed),
        ContiguousWindows(ids["val"], cfg.context),
        ContiguousWindows(ids["test"], cfg.context),
    )
    return info, splits


def _info_without_data(cfg) -> DataInfo:
    check_options(cfg)
    size = 256 if cfg.vocab == "byte" else 0
    return DataInfo(
        kind="text", num_classes=size, vocab_size=size, max_len=cfg.context, unit=cfg.vocab
    )


def files_info(cfg) -> DataInfo:
    """The char vocabulary depends on the training text, so it is read here too."""
    if cfg.vocab == "byte":
        return _info_without_data(cfg)
    return build(cfg, read_files(cfg.root), "text")[0]


def files_load(cfg) -> Splits:
    return build(cfg, read_files(cfg.root), "text")[1]


def pydoc_info(cfg) -> DataInfo:
    if cfg.vocab == "byte":
        return _info_without_data(cfg)
    return build(cfg, split_by_position(pydoc_topics()), "pydoc-topics")[0]


def pydoc_load(cfg) -> Splits:
    return build(cfg, split_by_position(pydoc_topics()), "pydoc-topics")[1]
