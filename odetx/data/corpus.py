"""A text corpus on disk, read without loading it: its splits as byte ranges of files,
checked and decoded in bounded chunks.

The layout is nanoGPT's: ``DIR/train.txt``, ``val.txt`` and ``test.txt``, or one
``DIR/input.txt`` split 90 / 5 / 5 by position (here by byte position, moved forward to
the next character boundary, so every split is valid UTF-8 on its own).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from odetx.data.base import SPLITS
from odetx.errors import DataInputError

SPLIT_FRACTIONS = (0.9, 0.05)  # train, val; test takes the rest
READ_BYTES = 4 << 20  # bytes read at a time: memory stays bounded whatever the file's size
# A piece of text may end after a newline that sits between two non-space characters:
# no pre-tokenizer rule of byte-level BPE (GPT-2's, tiktoken's) joins across it.
_CUT = re.compile(r"(?<=\S)\n(?=\S)")


@dataclass(frozen=True)
class TextSplit:
    """Bytes ``start`` to ``end`` of ``path``."""

    path: Path
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        whole = self.start == 0 and self.end == _size(self.path)
        return str(self.path) if whole else f"{self.path} (bytes {self.start:,}-{self.end:,})"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as e:
        raise DataInputError(f"{path} cannot be read ({e.strerror or e})") from None


def _char_boundary(f, at: int, end: int) -> int:
    """``at``, moved forward past UTF-8 continuation bytes (0b10xxxxxx)."""
    f.seek(at)
    tail = f.read(4)
    for i, b in enumerate(tail):
        if b & 0xC0 != 0x80:
            return min(at + i, end)
    return min(at + len(tail), end)


def find_splits(root: str | Path | None) -> dict[str, TextSplit]:
    """The three splits of the corpus in ``root``; neither layout is a DataInputError."""
    if not root:
        raise DataInputError("the text dataset reads your files: pass --data-dir DIR")
    folder = Path(root)
    named = [folder / f"{s}.txt" for s in SPLITS]
    if all(p.is_file() for p in named):
        return {s: TextSplit(p, 0, _size(p)) for s, p in zip(SPLITS, named, strict=True)}
    single = folder / "input.txt"
    if single.is_file():
        n = _size(single)
        check_text(TextSplit(single, 0, n))  # the whole file, before it is cut
        with single.open("rb") as f:
            a = _char_boundary(f, int(n * SPLIT_FRACTIONS[0]), n)
            b = _char_boundary(f, a + int(n * SPLIT_FRACTIONS[1]), n)
        return {
            "train": TextSplit(single, 0, a),
            "val": TextSplit(single, a, b),
            "test": TextSplit(single, b, n),
        }
    if not folder.is_dir():
        raise DataInputError(f"no folder {folder}: --data-dir must name a folder of text files")
    raise DataInputError(
        f"no text in {folder}: expected train.txt, val.txt and test.txt, or one input.txt "
        "(split 90/5/5 by position)"
    )


def sample(split: TextSplit, budget: int, block: int = 1 << 20) -> list[TextSplit]:
    """At most ``budget`` bytes of ``split`` as evenly spaced blocks, each cut at
    character boundaries (a corpus ordered by topic is sampled across its length)."""
    if split.size <= budget:
        return [split]
    count = max(1, budget // block)
    stride = split.size // count
    out = []
    with split.path.open("rb") as f:
        for i in range(count):
            a = _char_boundary(f, split.start + i * stride, split.end)
            b = _char_boundary(f, min(a + block, split.end), split.end)
            if b > a:
                out.append(TextSplit(split.path, a, b))
    return out


def read_bytes(split: TextSplit) -> Iterator[bytes]:
    """The split's bytes, ``READ_BYTES`` at a time."""
    try:
        with split.path.open("rb") as f:
            f.seek(split.start)
            left = split.size
            while left > 0:
                block = f.read(min(READ_BYTES, left))
                if not block:
                    raise DataInputError(f"{split.path} shrank while it was read")
                left -= len(block)
                yield block
    except OSError as e:
        raise DataInputError(f"{split.path} cannot be read ({e.strerror or e})") from None


def _not_text(split: TextSplit, block: bytes, offset: int, first: bool) -> DataInputError | None:
    """Why ``block`` (at byte ``offset`` of the split) is not text, or None."""
    if first and block.startswith((b"\xff\xfe", b"\xfe\xff")):
        return DataInputError(
            f"{split} is UTF-16 text (it starts with a byte-order mark); text data must be "
            "UTF-8 (convert it, e.g. iconv -f UTF-16 -t UTF-8)"
        )
    nul = block.find(b"\0")
    if nul >= 0:
        return DataInputError(
            f"{split} holds a NUL byte (byte {split.start + offset + nul}): a binary or "
            "corrupt file, not text"
        )
    return None


def _line_of(split: TextSplit, offset: int) -> int:
    """The line of byte ``offset`` of the split (counted only when an error is reported)."""
    line, done = 1, 0
    for block in read_bytes(TextSplit(split.path, split.start, split.start + offset)):
        line += block.count(b"\n")
        done += len(block)
    return line


def decoded(split: TextSplit, keep_text: bool = True) -> Iterator[tuple[str, int]]:
    """The split as text, in chunks of about ``READ_BYTES``, with the bytes each took.

    ``keep_text`` False only checks: ASCII blocks (most of most corpora) are not decoded
    and the chunks yielded are empty.

    Raises DataInputError, naming the file, byte and line, on an empty split, a NUL
    byte, a UTF-16 byte-order mark or bytes that are not UTF-8.
    """
    if split.size == 0:
        if _size(split.path) == 0:
            raise DataInputError(f"{split.path} is empty (0 bytes): there is no text to read")
        return  # an empty part of a file: too short, as the caller will say
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    for block in read_bytes(split):
        problem = _not_text(split, block, offset, offset == 0)
        if problem:
            raise problem
        pending = len(decoder.getstate()[0])  # bytes of a character the last block began
        text = ""
        if keep_text or pending or not block.isascii():
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as e:
                at = max(e.start - pending, 0)
                raise DataInputError(
                    f"{split.path} is not UTF-8 text (byte {split.start + offset + at}, "
                    f"0x{block[at]:02x}, on line {_line_of(split, offset + at)}); text data "
                    "must be UTF-8"
                ) from None
        offset += len(block)
        yield (text if keep_text else ""), len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataInputError(
            f"{split.path} is not UTF-8 text (it ends inside a character, byte "
            f"{split.end}); text data must be UTF-8"
        ) from None


_checked: dict[tuple, None] = {}


def check_text(split: TextSplit) -> None:
    """:func:`decoded`'s checks, without keeping the text; once per file version."""
    st = split.path.stat()
    whole = (str(split.path), 0, st.st_size, st.st_size, st.st_mtime_ns)
    key = (str(split.path), split.start, split.end, st.st_size, st.st_mtime_ns)
    if whole in _checked or key in _checked:
        return
    for _ in decoded(split, keep_text=False):
        pass
    _checked[key] = None


def pieces(split: TextSplit, piece_chars: int = 1 << 16) -> Iterator[tuple[list[str], int]]:
    """The split's text as lists of pieces of about ``piece_chars`` characters, cut only
    where byte-level BPE cuts anyway (see ``_CUT``), with the bytes each list covers
    (counted as read: the last list takes the remainder)."""
    carry = ""
    for text, nbytes in decoded(split):
        text = carry + text
        out, start = [], 0
        while len(text) - start > piece_chars:
            m = _CUT.search(text, start + piece_chars)
            if m is None:
                break
            out.append(text[start : m.end()])
            start = m.end()
        carry = text[start:]
        if len(carry) > 8 * READ_BYTES:  # no cut for megabytes: cut at a space or anywhere
            space = carry.rfind(" ", 0, len(carry) - piece_chars)
            cut = space if space > 0 else len(carry) - piece_chars
            out.append(carry[:cut])
            carry = carry[cut:]
        yield out, nbytes
    if carry:
        yield [carry], 0


def file_sha256(path: Path, start: int = 0, end: int | None = None) -> str:
    """The SHA-256 of bytes ``start`` to ``end`` of ``path``, read in bounded blocks."""
    h = hashlib.sha256()
    end = _size(path) if end is None else end
    for block in read_bytes(TextSplit(path, start, end)):
        h.update(block)
    return h.hexdigest()
