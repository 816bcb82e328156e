"""Text for language models read from raw UTF-8: byte or character tokens.

Two datasets read text this way:

- ``text``: a user's files, ``--data-dir DIR`` holding ``train.txt``, ``val.txt`` and
  ``test.txt``, or a single ``input.txt`` split 90 / 5 / 5 by position (nanoGPT's
  convention; see :mod:`odetx.data.corpus`);
- ``pydoc-topics``: the English reference text CPython ships as ``pydoc_data.topics``
  (Python Software Foundation, PSF License Version 2), keys sorted and joined by blank
  lines, split 90 / 5 / 5 by character position; present wherever Python is, so no
  download.

Byte tokens (``data.vocab: byte``) are the file's bytes, read through a memory map:
nothing of the text is held in memory, whatever its size (the files are checked to
be UTF-8 once, in bounded chunks). A character vocabulary (``char``) is fitted to the
training text, which is then held as one compact id array; for corpora of gigabytes
prepare it once with ``odetx data text`` (:mod:`odetx.data.prepare`). Windows are cut
as :mod:`odetx.data.windows` says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from odetx.data.base import SPLITS, DataInfo, Splits
from odetx.data.corpus import check_text, decoded, find_splits
from odetx.data.tokenizer import ByteTokenizer, CharTokenizer, Tokenizer
from odetx.data.tokenizer_sources import Fit, check_vocab_size, train_bpe
from odetx.data.windows import ContiguousWindows, RandomWindows, TokenFile, check_length
from odetx.errors import ConfigError, DataError
from odetx.registry import Registry

SPLIT_FRACTIONS = (0.9, 0.05)  # train, val; test takes the rest
BPE_SIZE = 4096  # data.vocab bpe: ids learned unless data.vocab_size says

# ``data.vocab`` -> the tokenizer it fits to the training text, given the data config.
VOCABS: Registry[Callable[[str, Any], Tokenizer]] = Registry("vocabulary")
VOCABS.register("byte", lambda train_text, cfg: ByteTokenizer())
VOCABS.register("char", lambda train_text, cfg: CharTokenizer.fit(iter([train_text])))
VOCABS.register(
    "bpe",
    lambda train_text, cfg: train_bpe(Fit(lambda: iter([train_text]), cfg.vocab_size or BPE_SIZE)),
)


def check_options(cfg) -> None:
    """Refuse impossible text settings, naming the key."""
    VOCABS.lookup(cfg.vocab, "data.vocab")
    if cfg.context <= 0:
        raise ConfigError("data.context", f"must be a positive number of tokens, got {cfg.context}")
    if cfg.train_windows <= 0:
        raise ConfigError("data.train_windows", f"must be positive, got {cfg.train_windows}")
    if cfg.eval_windows < 0:
        raise ConfigError("data.eval_windows", f"must be >= 0 (0: all), got {cfg.eval_windows}")
    if cfg.vocab == "bpe" and cfg.vocab_size:
        check_vocab_size(cfg.vocab_size, "data.vocab_size")


def split_by_position(text: str) -> dict[str, str]:
    """90 / 5 / 5 of ``text`` by position (train, val, test)."""
    a = math.floor(len(text) * SPLIT_FRACTIONS[0])
    b = a + math.floor(len(text) * SPLIT_FRACTIONS[1])
    return {"train": text[:a], "val": text[a:b], "test": text[b:]}


def pydoc_topics() -> str:
    """CPython's ``pydoc_data.topics`` reference text, keys sorted, blank-line separated."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("this Python has no pydoc_data module (a minimal build?)") from None
    return "\n\n".join(topics[k] for k in sorted(topics))


_fitted: dict[tuple, Tokenizer] = {}


def from_texts(cfg, texts: dict[str, str], source: str) -> tuple[Tokenizer, dict[str, TokenFile]]:
    """Tokenise texts held in memory into compact id arrays."""
    key = (cfg.vocab, cfg.vocab_size, hashlib.sha256(texts["train"].encode()).hexdigest())
    if key not in _fitted:  # info and load of one run fit once
        _fitted.clear()
        _fitted[key] = VOCABS[cfg.vocab](texts["train"], cfg)
    tokenizer = _fitted[key]
    dtype = np.uint8 if tokenizer.size <= 256 else np.uint32
    files = {}
    for split in SPLITS:
        ids = tokenizer.encode_array([texts[split]], dtype, f"{source} {split}")
        files[split] = TokenFile.in_memory(ids, len(texts[split].encode()), tokenizer.size)
    return tokenizer, files


def from_files(cfg) -> tuple[Tokenizer, dict[str, TokenFile]]:
    """The corpus in ``cfg.root``: bytes through a memory map, or a vocabulary fitted to
    it (the text then held in memory)."""
    splits = find_splits(cfg.root)
    if cfg.vocab != "byte":
        texts = {s: "".join(t for t, _ in decoded(splits[s])) for s in SPLITS}
        return from_texts(cfg, texts, "text")
    files = {}
    for name, split in splits.items():
        check_text(split)
        files[name] = TokenFile(
            split.path, np.dtype(np.uint8), split.start, split.size, split.size, 256
        )
    return ByteTokenizer(), files


def build(
    cfg, tokenizer: Tokenizer, files: dict[str, TokenFile], source: str
) -> tuple[DataInfo, Splits]:
    """Windows of the three splits, and the shapes a model needs."""
    check_options(cfg)
    for split in SPLITS:
        check_length(files[split], cfg.context, f"{source} {split}")
    info = DataInfo(kind="text", max_len=cfg.context, **tokenizer.info_fields())
    if cfg.vocab_size and cfg.vocab != "bpe":  # a model with more ids than its tokenizer
        if cfg.vocab_size < tokenizer.size:
            raise ConfigError(
                "data.vocab_size",
                f"{cfg.vocab_size} is fewer than the tokenizer's {tokenizer.size} ids",
            )
        info = dataclasses.replace(info, vocab_size=cfg.vocab_size, num_classes=cfg.vocab_size)
    splits = Splits(
        RandomWindows(files["train"], cfg.context, cfg.train_windows, cfg.seed),
        ContiguousWindows(files["val"], cfg.context, cfg.eval_windows),
        ContiguousWindows(files["test"], cfg.context, cfg.eval_windows),
    )
    return info, splits


def _info_without_data(cfg) -> DataInfo:
    check_options(cfg)
    return DataInfo(kind="text", max_len=cfg.context, **ByteTokenizer().info_fields())


def files_info(cfg) -> DataInfo:
    """The char vocabulary depends on the training text, so it is read here too."""
    if cfg.vocab == "byte":
        return _info_without_data(cfg)
    check_options(cfg)
    return build(cfg, *from_files(cfg), "text")[0]


def files_load(cfg) -> Splits:
    check_options(cfg)
    return build(cfg, *from_files(cfg), "text")[1]


def _pydoc(cfg) -> tuple[DataInfo, Splits]:
    check_options(cfg)
    return build(
        cfg,
        *from_texts(cfg, split_by_position(pydoc_topics()), "pydoc-topics"),
        "pydoc-topics",
    )


def pydoc_info(cfg) -> DataInfo:
    if cfg.vocab == "byte":
        return _info_without_data(cfg)
    return _pydoc(cfg)[0]


def pydoc_load(cfg) -> Splits:
    return _pydoc(cfg)[1]
