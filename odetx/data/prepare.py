"""``odetx data text``: tokenise a corpus once into memory-mapped token files.

A prepared folder holds ``train.bin``, ``val.bin`` and ``test.bin`` (the token ids,
little-endian uint16 when the vocabulary fits, else uint32), the tokenizer
(``tokenizer.json`` for a learned one) and ``meta.json``: the tokenizer, tokens and
UTF-8 bytes per split, and the source files' sizes and hashes. ``meta.json`` is
written last, and removed first when a folder is prepared again, so a folder whose
preparation was interrupted never looks complete (:mod:`odetx.data.tokens` refuses it).

The text streams through in bounded pieces (:func:`odetx.data.corpus.pieces`); each
batch of pieces is encoded by ``tokenizers`` on every core while the next is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odetx.data.base import SPLITS
from odetx.data.corpus import TextSplit, decoded, file_sha256, find_splits, pieces, sample
from odetx.data.tokenizer import HFTokenizer, Tokenizer
from odetx.data.tokenizer_sources import Fit, check_vocab_size, make_tokenizer, needs_text
from odetx.errors import DataInputError
from odetx.io import atomic_write, remove_stale_temps, write_text

FORMAT = "odetx-tokens"
VERSION = 1
META = "meta.json"
TOKENIZER = "tokenizer.json"
FIT_BYTES = 100_000_000  # a tokenizer learns from at most this much of the training text


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


Progress = Callable[[str, int, int], None]  # (what, bytes done, bytes in all)


@dataclass(frozen=True)
class Prepared:
    folder: Path
    meta: dict

    def summary(self) -> str:
        splits = self.meta["splits"]
        parts = ", ".join(
            f"{s} {splits[s]['tokens']:,} tokens ({splits[s]['bytes']:,} bytes)" for s in SPLITS
        )
        return f"{self.meta['tokenizer']['describe']}: {parts}"


def _texts(parts: list[TextSplit], progress: Progress | None, what: str) -> Iterator[str]:
    done, total = 0, sum(p.size for p in parts)
    for part in parts:
        for text, nbytes in decoded(part):
            done += nbytes
            yield text
            if progress:
                progress(what, done, total)


def _encode_split(
    tokenizer: Tokenizer, split: TextSplit, f, dtype: np.dtype, progress: Progress | None, what: str
) -> int:
    """Write the ids of ``split`` to ``f``; returns how many. The next batch of pieces is
    read and decoded while ``tokenizers`` encodes this one (it releases the GIL)."""
    total, done = 0, 0
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for batch, nbytes in pieces(split):
            job = pool.submit(tokenizer.encode_array, batch, dtype, str(split))
            if pending is not None:
                ids, ndone = pending[0].result(), pending[1]
                f.write(ids.tobytes())
                total += len(ids)
                done += ndone
                if progress:
                    progress(what, done, split.size)
            pending = (job, nbytes)
        if pending is not None:
            ids = pending[0].result()
            f.write(ids.tobytes())
            total += len(ids)
    if progress:
        progress(what, split.size, split.size)
    return total


def _check_out(out: Path, force: bool) -> None:
    """Refuse a file, or a complete prepared corpus without ``force``; an incomplete one
    (no metadata: its preparation was stopped) is simply prepared again."""
    if out.exists() and not out.is_dir():
        raise DataInputError(f"--out {out} is a file, not a folder")
    if (out / META).exists() and not force:
        raise DataInputError(
            f"{out} already holds a prepared corpus ({META}); pass --force to replace it"
        )


def prepare_text(
    source: str | Path,
    out: str | Path,
    spec: str = "byte",
    vocab_size: int = 4096,
    force: bool = False,
    progress: Progress | None = None,
    fit_bytes: int = FIT_BYTES,
) -> Prepared:
    """Tokenise the corpus in ``source`` (the ``text`` layout) into ``out``; a tokenizer
    that learns reads at most ``fit_bytes`` of the training split, evenly spaced
    (BPE merges settle long before a corpus of gigabytes is read; its memory too).

    Raises:
        DataInputError: a source in neither layout, text that is not UTF-8, a tokenizer
            that cannot be had, an ``out`` already prepared (without ``force``).
        ConfigError: a bad ``--tokenizer`` or ``--vocab-size``.
    """
    out = Path(out)
    splits = find_splits(source)
    if spec == "bpe":
        check_vocab_size(vocab_size)
    _check_out(out, force)
    # Temporary files of a preparation that was killed (not interrupted: those clean up).
    remove_stale_temps(out, (*(f"{s}.bin" for s in SPLITS), TOKENIZER, META))
    # A character table needs every character; merges settle on a sample.
    parts = [splits["train"]] if spec == "char" else sample(splits["train"], fit_bytes)
    fit = Fit(lambda: _texts(parts, progress, "fitting the tokenizer"), vocab_size)
    # A tokenizer that learns nothing is had (or refused) before the text is read.
    tokenizer = None if needs_text(spec) else make_tokenizer(spec, fit)
    for split in SPLITS:  # every split is checked before anything is learned or written
        for _ in _texts([splits[split]], progress, f"checking {split}"):
            pass
    tokenizer = tokenizer or make_tokenizer(spec, fit)
    dtype = token_dtype(tokenizer.size)
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)  # from here on the folder is incomplete
    counts = {}
    for name in SPLITS:
        with atomic_write(out / f"{name}.bin") as (f, _):
            counts[name] = _encode_split(
                tokenizer, splits[name], f, dtype, progress, f"encoding {name}"
            )
        if counts[name] < 2:
            raise DataInputError(
                f"{splits[name]} gives {counts[name]} token(s); a split needs at least two"
            )
    tok_meta: dict = {"spec": spec, "kind": tokenizer.kind, "describe": tokenizer.describe()}
    if needs_text(spec):
        tok_meta["fitted_on_bytes"] = sum(p.size for p in parts)
    if isinstance(tokenizer, HFTokenizer):
        write_text(out / TOKENIZER, tokenizer.json)
        tok_meta.update(file=TOKENIZER, sha256=file_sha256(out / TOKENIZER))
    fields = tokenizer.info_fields()
    if "chars" in fields:
        tok_meta["chars"] = fields["chars"]
    files = {}
    for split in splits.values():
        files.setdefault(split.path.name, {"size": split.path.stat().st_size})
    for name, entry in files.items():
        entry["sha256"] = file_sha256(Path(source) / name)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": "uint16" if dtype.itemsize == 2 else "uint32",
        "vocab_size": tokenizer.size,
        "tokenizer": tok_meta,
        "splits": {
            name: {"file": f"{name}.bin", "tokens": counts[name], "bytes": splits[name].size}
            for name in SPLITS
        },
        "source": {"folder": str(Path(source).resolve()), "files": files},
    }
    write_text(out / META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return Prepared(out, meta)
