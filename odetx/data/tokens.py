"""``--dataset tokens``: a corpus prepared by ``odetx data text`` (:mod:`odetx.data.prepare`).

Everything read from the folder is checked before it is used, since it may be
damaged or written by anything: ``meta.json`` is parsed with a size bound and every
field's type checked; each token file must be exactly as long as the metadata says;
the tokenizer must match its recorded hash and load; the ids of val and test are
checked against the vocabulary when they are opened, and each training window as it
is read. Every failure is one :class:`~odetx.errors.DataInputError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from odetx.data.base import SPLITS, DataInfo, Splits
from odetx.data.prepare import FORMAT, META, VERSION
from odetx.data.text import build, check_options
from odetx.data.tokenizer import MAX_VOCAB, ByteTokenizer, CharTokenizer, HFTokenizer, Tokenizer
from odetx.data.windows import TokenFile
from odetx.errors import DataInputError

MAX_META = 64 << 20  # bytes: a char table of every Unicode character is ~4 MB
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


def _folder(root: str | None) -> Path:
    if not root:
        raise DataInputError(
            "the tokens dataset reads a prepared folder: pass --data-dir DIR "
            "(made by odetx data text)"
        )
    folder = Path(root)
    if not (folder / META).is_file():
        hint = (
            "its preparation did not finish (token files without meta.json)"
            if any((folder / f"{s}.bin").exists() for s in SPLITS)
            else "make one with odetx data text SRC --out DIR"
        )
        raise DataInputError(f"{folder} is not a prepared corpus: no {META}; {hint}")
    return folder


def _field(meta: Any, path: str, kind: type, where: Path) -> Any:
    value = meta
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise DataInputError(f"{where}: {META} lacks {path}; the folder is damaged")
        value = value[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataInputError(
            f"{where}: {META} has {path} = {str(value)[:40]!r}, expected {kind.__name__}"
        )
    return value


def read_meta(folder: Path) -> dict:
    p = folder / META
    size = p.stat().st_size
    if size > MAX_META:
        raise DataInputError(f"{p} is {size:,} bytes, more than a corpus's metadata can be")
    try:
        meta = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataInputError(f"{p} is damaged ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataInputError(f"{p} is not the metadata of a prepared corpus")
    version = _field(meta, "version", int, folder)
    if version > VERSION:
        raise DataInputError(f"{p} was written by a newer odetx (format {version})")
    return meta


def _tokenizer(folder: Path, meta: dict) -> Tokenizer:
    size = _field(meta, "vocab_size", int, folder)
    if not 0 < size <= MAX_VOCAB:
        raise DataInputError(f"{folder}: {META} has vocab_size {size}, outside 1..{MAX_VOCAB}")
    kind = _field(meta, "tokenizer.kind", str, folder)
    if kind == "byte":
        tok: Tokenizer = ByteTokenizer()
    elif kind == "char":
        tok = CharTokenizer(_field(meta, "tokenizer.chars", str, folder))
    else:
        name = _field(meta, "tokenizer.file", str, folder)
        p = folder / Path(name).name  # never outside the folder
        if not p.is_file():
            raise DataInputError(f"{folder}: the tokenizer {p.name} is missing")
        raw = p.read_bytes()
        want = _field(meta, "tokenizer.sha256", str, folder)
        if hashlib.sha256(raw).hexdigest() != want:
            raise DataInputError(f"{p} is damaged or was replaced (its hash differs from {META}'s)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataInputError(f"{p} is damaged (not UTF-8)") from None
        tok = HFTokenizer(text, str(p))
    if tok.size != size:
        raise DataInputError(
            f"{folder}: {META} says {size} ids but its tokenizer has {tok.size}; "
            "the folder is damaged"
        )
    return tok


def open_prepared(root: str | None) -> tuple[Tokenizer, dict[str, TokenFile]]:
    """The tokenizer and the three token files of a prepared folder, checked."""
    folder = _folder(root)
    meta = read_meta(folder)
    dtype_name = _field(meta, "dtype", str, folder)
    if dtype_name not in DTYPES:
        raise DataInputError(
            f"{folder}: {META} has dtype {dtype_name[:20]!r}; expected uint16 or uint32"
        )
    dtype = DTYPES[dtype_name]
    tokenizer = _tokenizer(folder, meta)
    if tokenizer.size > 1 << (8 * dtype.itemsize):
        raise DataInputError(f"{folder}: {tokenizer.size} ids do not fit {dtype_name}")
    files = {}
    for split in SPLITS:
        tokens = _field(meta, f"splits.{split}.tokens", int, folder)
        nbytes = _field(meta, f"splits.{split}.bytes", int, folder)
        p = folder / f"{split}.bin"
        if not p.is_file():
            raise DataInputError(f"{folder}: {p.name} is missing")
        size = p.stat().st_size
        if size != tokens * dtype.itemsize or tokens < 0 or nbytes < 0:
            raise DataInputError(
                f"{p} holds {size:,} bytes; {META} says {tokens:,} {dtype_name} tokens "
                f"({tokens * dtype.itemsize:,} bytes): the file is truncated or not this "
                "folder's"
            )
        files[split] = TokenFile(p, dtype, 0, tokens, nbytes, tokenizer.size)
    for split in ("val", "test"):  # small: checked whole; training windows as they are read
        files[split].check_ids()
    return tokenizer, files


_opened: dict[tuple, tuple[Tokenizer, dict[str, TokenFile]]] = {}


def _opened_once(root: str | None) -> tuple[Tokenizer, dict[str, TokenFile]]:
    """:func:`open_prepared`, once per version of the folder: a run reads its info when
    the config is resolved and its splits when training starts, and the val/test id
    check reads those files whole."""
    folder = _folder(root)
    stamp = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    )
    key = (str(folder.resolve()), stamp)
    if key not in _opened:
        _opened.clear()
        _opened[key] = open_prepared(root)
    return _opened[key]


def info(cfg) -> DataInfo:
    check_options(cfg)
    return build(cfg, *_opened_once(cfg.root), f"{cfg.root}")[0]


def load(cfg) -> Splits:
    check_options(cfg)
    return build(cfg, *_opened_once(cfg.root), f"{cfg.root}")[1]
