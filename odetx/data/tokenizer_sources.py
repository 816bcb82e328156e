"""Where a corpus's tokenizer comes from: ``odetx data text --tokenizer SPEC``.

``SPEC`` is a registered name (``byte``, ``char``, ``bpe``), ``NAME:ARG`` for a
registered name that takes an argument (``tiktoken:cl100k_base``), or a path to a
``tokenizer.json``. Each source builds a :class:`~odetx.data.tokenizer.Tokenizer`,
fitting it to the training text where it learns (``char``, ``bpe``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from odetx.data.tokenizer import MAX_VOCAB, ByteTokenizer, CharTokenizer, HFTokenizer, Tokenizer
from odetx.errors import ConfigError, DataInputError
from odetx.registry import Registry

MAX_TOKENIZER_JSON = 64 << 20  # bytes: the largest published tokenizer.json are ~20 MB


@dataclass(frozen=True)
class Fit:
    """What a source may learn from: the training text as a stream of strings (each call
    a fresh pass), the vocabulary size asked for, and a progress callback of bytes read."""

    texts: Callable[[], Iterator[str]]
    vocab_size: int


@dataclass(frozen=True)
class TokenizerSource:
    build: Callable[[str, Fit], Tokenizer]  # (argument after "NAME:", fit) -> tokenizer
    description: str
    learns: bool = False  # reads the training text


SOURCES: Registry[TokenizerSource] = Registry("tokenizer")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as a printable character (printable
    Latin-1 bytes stand for themselves, the rest for code points from 256 up)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def train_bpe(fit: Fit) -> HFTokenizer:
    """A byte-level BPE (GPT-2's pre-tokenizer) of ``fit.vocab_size`` ids, learned with
    ``tokenizers``' trainer on the training text."""
    from tokenizers import Tokenizer as _HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = _HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=fit.vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(fit.texts(), trainer)
    return HFTokenizer(tok.to_str(), "the trained BPE")


def from_json_file(path: str) -> HFTokenizer:
    """A ``tokenizer.json`` (or a folder holding one), read with a size bound."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise DataInputError(
            f"no tokenizer at {p}: --tokenizer takes byte, char, bpe, tiktoken:NAME or "
            "a tokenizer.json file"
        )
    size = p.stat().st_size
    if size > MAX_TOKENIZER_JSON:
        raise DataInputError(f"{p} is {size:,} bytes, more than a tokenizer.json can be")
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataInputError(f"{p} is not a tokenizer.json (not UTF-8 text: {e})") from None
    return HFTokenizer(text, str(p))


def _tiktoken_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """BPE merges equivalent to tiktoken's ranks: each token of two or more bytes is the
    merge of two tokens of lower rank, ordered by the rank of the merged token."""
    merges = []
    for token, rank in ranks.items():
        if len(token) < 2:
            continue
        pairs = [
            (ranks[token[:i]], ranks[token[i:]], token[:i], token[i:])
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        merges.extend((rank, a, b, left, right) for a, b, left, right in sorted(pairs))
    merges.sort()
    return [(left, right) for _, _, _, left, right in merges]


def convert_tiktoken(encoding) -> HFTokenizer:
    """A ``tokenizers`` model that encodes as tiktoken's ``encoding.encode_ordinary``
    does (special tokens are left out: a corpus is read as plain text)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as _HF

    ranks: dict[bytes, int] = encoding._mergeable_ranks
    table = _bytes_to_unicode()

    def show(b: bytes) -> str:
        return "".join(table[x] for x in b)

    vocab = {show(token): rank for token, rank in ranks.items()}
    merges = [(show(a), show(b)) for a, b in _tiktoken_merges(ranks)]
    # tiktoken emits a piece that is itself a token without merging (ignore_merges).
    tok = _HF(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(encoding._pat_str), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return HFTokenizer(tok.to_str(), f"tiktoken:{encoding.name}")


def from_tiktoken(name: str) -> HFTokenizer:
    try:
        import tiktoken
    except ImportError:
        raise DataInputError(
            "tiktoken encodings need the tiktoken package: pip install tiktoken"
        ) from None
    names = tiktoken.list_encoding_names()
    if name not in names:
        raise ConfigError(
            "--tokenizer", f"unknown tiktoken encoding {name!r}; choose one of: {', '.join(names)}"
        )
    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as e:  # network or cache errors of any HTTP library
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
        where = cache or "tiktoken's default cache (set TIKTOKEN_CACHE_DIR to choose one)"
        raise DataInputError(
            f"tiktoken encoding {name!r} is not available offline: its file is not in {where} "
            f"and could not be fetched ({type(e).__name__})"
        ) from None
    return convert_tiktoken(encoding)


SOURCES.register(
    "byte",
    TokenizerSource(lambda arg, fit: ByteTokenizer(), "UTF-8 bytes, 256 ids, nothing to fit"),
)
SOURCES.register(
    "char",
    TokenizerSource(
        lambda arg, fit: CharTokenizer.fit(fit.texts()),
        "the characters of the training text",
        learns=True,
    ),
)
SOURCES.register(
    "bpe",
    TokenizerSource(
        lambda arg, fit: train_bpe(fit),
        "byte-level BPE trained on the training text (--vocab-size ids)",
        learns=True,
    ),
)
SOURCES.register(
    "tiktoken",
    TokenizerSource(
        lambda arg, fit: from_tiktoken(arg),
        "tiktoken:NAME, one of tiktoken's encodings (its file cached or fetched)",
    ),
)


def check_vocab_size(vocab_size: int, key: str = "--vocab-size") -> None:
    if not 256 <= vocab_size <= MAX_VOCAB:
        raise ConfigError(
            key,
            f"must lie in [256, {MAX_VOCAB}] (256 byte ids at least), got {vocab_size}",
        )


def parse_spec(spec: str) -> tuple[TokenizerSource, str]:
    """The source ``spec`` names and its argument; anything else is a tokenizer.json path."""
    if spec in SOURCES:
        return SOURCES[spec], ""
    name, sep, arg = spec.partition(":")
    if sep and name in SOURCES and len(name) > 1:  # "C:\\..." is a path, not a source
        return SOURCES[name], arg
    return TokenizerSource(lambda arg, fit: from_json_file(arg), "a tokenizer.json"), spec


def make_tokenizer(spec: str, fit: Fit) -> Tokenizer:
    """The tokenizer ``spec`` names, fitted to ``fit`` where it learns."""
    source, arg = parse_spec(spec)
    return source.build(arg, fit)


def needs_text(spec: str) -> bool:
    return parse_spec(spec)[0].learns
