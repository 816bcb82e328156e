"""Tokenizers of text: bytes, characters, or a Hugging Face ``tokenizers`` model.

A run's tokenizer is part of the run: :meth:`Tokenizer.info_fields` puts what
rebuilds it into :class:`~odetx.data.base.DataInfo` (a character table, or the
tokenizer's own ``tokenizer.json`` text), which checkpoints and exports carry, and
:func:`from_info` rebuilds it there. Learned tokenizers (byte-level BPE trained on a
corpus, any ``tokenizer.json``, tiktoken's encodings converted to one) all run through
``tokenizers``, whose Rust core encodes batches on every core.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

import numpy as np

from odetx.data.base import DataInfo
from odetx.errors import DataInputError

MAX_VOCAB = 2**32 - 1  # token files hold uint32 at most


def invalid_utf8(text: str, where: str) -> DataInputError:
    """The error for ``text`` holding lone surrogates (undecodable bytes from argv)."""
    raw = text.encode("utf-8", errors="surrogateescape")
    try:
        raw.decode("utf-8")
        at = next(i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff")
        detail = f"a lone surrogate at character {at}"
    except UnicodeDecodeError as e:
        detail = f"byte 0x{raw[e.start]:02x} at byte {e.start}"
    return DataInputError(f"{where} is not valid UTF-8 ({detail})")


class Tokenizer:
    """Text to ids and back. ``kind`` names what one token is: byte, char or token."""

    kind = "token"

    @property
    def size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str, where: str = "the text") -> list[int]:
        return self.encode_batch([text], where)[0]

    def encode_batch(self, texts: list[str], where: str = "the text") -> list[list[int]]:
        raise NotImplementedError

    def encode_array(self, texts: list[str], dtype: Any, where: str = "the text") -> np.ndarray:
        """The ids of ``texts`` one after another, as a flat array of ``dtype``."""
        parts = [np.asarray(ids, dtype=dtype) for ids in self.encode_batch(texts, where)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def stream(self, ids: Iterator[int]) -> Iterator[str]:
        """Text as ``ids`` come, each piece yielded once it is whole."""
        done: list[int] = []
        shown = ""
        for token in ids:
            done.append(token)
            text = self.decode(done)
            if text.endswith("\ufffd"):  # an unfinished character: wait for more bytes
                continue
            if text.startswith(shown):
                yield text[len(shown) :]
            shown = text
        final = self.decode(done)
        if final.startswith(shown) and len(final) > len(shown):
            yield final[len(shown) :]

    def info_fields(self) -> dict[str, Any]:
        """The :class:`DataInfo` fields that rebuild this tokenizer."""
        return {"unit": self.kind, "vocab_size": self.size, "num_classes": self.size}

    def describe(self) -> str:
        return f"{self.kind} ({self.size:,} ids)"


class ByteTokenizer(Tokenizer):
    """The UTF-8 bytes of the text, 256 ids; any file works with nothing to fit."""

    kind = "byte"

    @property
    def size(self) -> int:
        return 256

    def encode_batch(self, texts: list[str], where: str = "the text") -> list[list[int]]:
        # Undecodable bytes of a command line (surrogate escapes) are the bytes typed.
        return [list(t.encode("utf-8", errors="surrogateescape")) for t in texts]

    def encode_array(self, texts: list[str], dtype: Any, where: str = "the text") -> np.ndarray:
        raw = b"".join(t.encode("utf-8", errors="surrogateescape") for t in texts)
        return np.frombuffer(raw, dtype=np.uint8).astype(dtype)

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def stream(self, ids: Iterator[int]) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for token in ids:
            text = decoder.decode(bytes([token]))
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail


class CharTokenizer(Tokenizer):
    """A fixed table of characters; a character outside it is refused with its position."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.codes = np.array(sorted(ord(c) for c in chars), dtype=np.uint32)
        # ids follow the table's order, which is sorted when it was fitted to a text
        self.ids = np.array([chars.index(chr(c)) for c in self.codes], dtype=np.int64)

    @classmethod
    def fit(cls, texts: Iterator[str]) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls("".join(sorted(seen)))

    @property
    def size(self) -> int:
        return len(self.chars)

    def _codes(self, text: str, where: str) -> np.ndarray:
        try:
            raw = text.encode("utf-32-le")
        except UnicodeEncodeError:
            raise invalid_utf8(text, where) from None
        return np.frombuffer(raw, dtype=np.uint32)

    def encode_array(self, texts: list[str], dtype: Any, where: str = "the text") -> np.ndarray:
        out = []
        for text in texts:
            codes = self._codes(text, where)
            at = np.searchsorted(self.codes, codes).clip(max=max(len(self.codes) - 1, 0))
            bad = np.flatnonzero(self.codes[at] != codes) if len(self.codes) else codes
            if len(bad):
                pos = int(bad[0])
                raise DataInputError(
                    f"{where} has the character {text[pos]!r} (at position {pos}), which the "
                    f"training text's vocabulary of {len(self.chars)} characters lacks"
                )
            out.append(self.ids[at].astype(dtype))
        return np.concatenate(out) if out else np.zeros(0, dtype=dtype)

    def encode_batch(self, texts: list[str], where: str = "the text") -> list[list[int]]:
        return [self.encode_array([t], np.int64, where).tolist() for t in texts]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def info_fields(self) -> dict[str, Any]:
        return {**super().info_fields(), "chars": self.chars}


class HFTokenizer(Tokenizer):
    """Any ``tokenizers`` model, kept as its ``tokenizer.json`` text.

    Encoding adds no special tokens (no BOS/EOS of a post-processor): a corpus is one
    stream of text, cut into windows.
    """

    def __init__(self, json_text: str, where: str = "the tokenizer") -> None:
        from tokenizers import Tokenizer as _HF

        try:
            self.hf = _HF.from_str(json_text)
        except Exception as e:  # the Rust parser's errors are one opaque class
            detail = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise DataInputError(f"{where} is not a tokenizers tokenizer.json ({detail})") from None
        self.json = json_text
        size = self.hf.get_vocab_size(with_added_tokens=True)
        if not 0 < size <= MAX_VOCAB:
            raise DataInputError(f"{where} has {size} ids; a vocabulary needs 1 to {MAX_VOCAB}")
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def encode_batch(self, texts: list[str], where: str = "the text") -> list[list[int]]:
        try:
            encodings = self.hf.encode_batch_fast(texts, add_special_tokens=False)
        except Exception as e:  # the Rust side's errors are one opaque class
            for text in texts:
                if any("\ud800" <= c <= "\udfff" for c in text):
                    raise invalid_utf8(text, where) from None
            raise DataInputError(f"{where} could not be encoded ({e})") from None
        return [enc.ids for enc in encodings]

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False)

    def info_fields(self) -> dict[str, Any]:
        return {**super().info_fields(), "tokenizer": self.json}


def from_info(info: DataInfo) -> Tokenizer:
    """The tokenizer a run was trained with, from its checkpoint's or export's data info."""
    if info.tokenizer:
        return HFTokenizer(info.tokenizer, "the run's tokenizer")
    if info.chars:
        return CharTokenizer(info.chars)
    return ByteTokenizer()
