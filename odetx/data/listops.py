"""``listops``: nested list operations (Nangia & Bowman 2018), as in the Long Range Arena.

An example is a prefix expression such as ``[MAX 2 9 [MIN 4 7 ] 0 ]``; the label
is its value, a digit. Operators follow LRA (Tay et al. 2021,
``lra_benchmarks/data/listops.py``): ``[MIN``, ``[MAX``, ``[MED`` (median) and
``[SM`` (sum modulo 10), each closed by ``]``.

The splits are read from LRA's ``basic_train.tsv``, ``basic_val.tsv`` and
``basic_test.tsv`` (a ``Source<TAB>Target`` header; tokens separated by spaces)
when ``data.root`` points at them, and otherwise generated offline from
``data.seed`` with LRA's tree distribution. :func:`write_tsv` writes generated
sets in the same layout, parentheses included, so the two are interchangeable.
Generated sets are padded to ``data.seq_len_max`` (or ``data.max_len``); read files
to their longest example (:func:`settle`), at most LRA's 2,000 tokens unless
``data.max_len`` says otherwise.

**Median.** LRA computes ``int(np.median(args))``: for an even count that is the
mean of the two middle values rounded down (``[MED 1 4 ]`` is 2), not the lower
median (1). odetx follows LRA so that generated and downloaded labels agree.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from odetx.data.base import SPLITS, DataInfo, Splits
from odetx.data.sequences import PaddedTokens, check_generator_options, padded_len
from odetx.errors import ConfigError, DataError
from odetx.io import atomic_write

END = "]"
DIGITS = tuple(str(d) for d in range(10))
PARENS = ("(", ")")  # LRA's bracketing of the binary tree it builds; carries no information


def lra_median(values: Sequence[int]) -> int:
    """``int(np.median(values))`` for non-negative ints, without the float round trip."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) // 2


# Operator token -> reduction of its argument values; the order fixes the vocabulary.
OPERATORS: dict[str, Callable[[Sequence[int]], int]] = {
    "[MIN": min,
    "[MAX": max,
    "[MED": lra_median,
    "[SM": lambda values: sum(values) % 10,
}

# One vocabulary for reader and generator: padding, operators, the closing bracket, digits.
VOCAB: tuple[str, ...] = ("<pad>", *OPERATORS, END, *DIGITS)
TOKEN_ID: dict[str, int] = {tok: i for i, tok in enumerate(VOCAB)}

SPLIT_FILES = {"train": "basic_train.tsv", "val": "basic_val.tsv", "test": "basic_test.tsv"}
HEADER = ["Source", "Target"]
VALUE_P = 0.25  # LRA: below the depth limit a node is an operator with this probability
# LRA's ListOps expressions are at most 2,000 tokens long (Tay et al. 2021); a file with
# longer ones is more likely another dataset than a longer ListOps, so it needs max_len.
LRA_MAX_LEN = 2000

# A digit, or an operator token with its arguments.
Tree = int | tuple[str, tuple["Tree", ...]]


def info(cfg) -> DataInfo:
    return DataInfo(kind="tokens", num_classes=10, vocab_size=len(VOCAB), max_len=padded_len(cfg))


# ---------------------------------------------------------------- trees


def draw_tree(rng: random.Random, max_depth: int, max_args: int, depth: int = 1) -> Tree:
    """One random expression, LRA's distribution: the root has depth 1 and a node at
    ``max_depth`` is always a digit; an operator takes 2..``max_args`` arguments."""
    if depth < max_depth and rng.random() < VALUE_P:
        op = rng.choice(tuple(OPERATORS))
        n_args = rng.randint(2, max_args)
        return op, tuple(draw_tree(rng, max_depth, max_args, depth + 1) for _ in range(n_args))
    return rng.randrange(10)


def tokens(tree: Tree) -> list[str]:
    """Prefix tokens without parentheses: what the model reads and what LRA's length counts."""
    if isinstance(tree, int):
        return [DIGITS[tree]]
    op, args = tree
    return [op, *(tok for arg in args for tok in tokens(arg)), END]


def value(tree: Tree) -> int:
    if isinstance(tree, int):
        return tree
    op, args = tree
    return OPERATORS[op]([value(arg) for arg in args])


def source(tree: Tree) -> str:
    """The expression as LRA writes it: the operator folded left over its arguments,
    each fold in parentheses, so ``[MAX 2 9 ]`` is ``( ( ( [MAX 2 ) 9 ) ] )``."""
    if isinstance(tree, int):
        return DIGITS[tree]
    op, args = tree
    parts = ["("] * (len(args) + 1) + [op]
    for arg in args:
        parts += [source(arg), ")"]
    return " ".join(parts + [END, ")"])


def longest(max_depth: int, max_args: int) -> int:
    """The most tokens a tree can have under these limits (a full tree)."""
    n = 1
    for _ in range(max_depth - 1):
        n = 2 + max_args * n
    return n


def check_options(cfg) -> None:
    check_generator_options(cfg)
    if cfg.max_depth < 1:
        raise ConfigError("data.max_depth", f"must be >= 1 (the root counts), got {cfg.max_depth}")
    if cfg.max_args < 2:
        raise ConfigError("data.max_args", f"must be >= 2, got {cfg.max_args}")
    most = longest(cfg.max_depth, cfg.max_args)
    if cfg.seq_len_min > most:
        raise ConfigError(
            "data.seq_len_min",
            f"{cfg.seq_len_min} is unreachable: trees of data.max_depth {cfg.max_depth} and "
            f"data.max_args {cfg.max_args} have at most {most} tokens",
        )


def generate(cfg) -> dict[str, list[Tree]]:
    """Distinct trees whose token count lies in ``[seq_len_min, seq_len_max]``, drawn
    from ``data.seed`` and dealt in order to train, val and test (disjoint, as LRA's set)."""
    check_options(cfg)
    sizes = {"train": cfg.train_size, "val": cfg.val_size, "test": cfg.test_size}
    need = sum(sizes.values())
    rng = random.Random(cfg.seed)
    seen: set[tuple[str, ...]] = set()
    trees: list[Tree] = []
    budget = 1000 * need + 100_000  # rejection sampling; generous, but never endless
    for _ in range(budget):
        tree = draw_tree(rng, cfg.max_depth, cfg.max_args)
        key = tuple(tokens(tree))
        if cfg.seq_len_min <= len(key) <= cfg.seq_len_max and key not in seen:
            seen.add(key)
            trees.append(tree)
            if len(trees) == need:
                break
    else:
        raise DataError(
            f"listops: drew only {len(trees)} of {need} distinct expressions with "
            f"{cfg.seq_len_min}..{cfg.seq_len_max} tokens; widen the length range, raise "
            "data.max_depth or data.max_args, or ask for fewer examples"
        )
    out, start = {}, 0
    for split, n in sizes.items():
        out[split] = trees[start : start + n]
        start += n
    return out


# ---------------------------------------------------------------- files


def write_tsv(path: str | Path, trees: Sequence[Tree]) -> None:
    """Write ``trees`` in LRA's TSV layout (header, parenthesised source, value)."""
    with atomic_write(path, "w") as (f, _):
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows((source(t), value(t)) for t in trees)


def check_overwrite(out: str | Path, force: bool = False) -> None:
    """Refuse, before any generating, a folder that already holds a split (unless ``force``)."""
    folder = Path(out)
    existing = [name for name in SPLIT_FILES.values() if (folder / name).exists()]
    if existing and not force:
        raise ConfigError(
            "--out", f"{folder} already holds {', '.join(existing)}; pass --force to overwrite"
        )


def write_splits(trees: dict[str, list[Tree]], out: str | Path, force: bool = False) -> list[Path]:
    """Write every split as ``OUT/basic_<split>.tsv``; refuses to overwrite unless ``force``."""
    check_overwrite(out, force)
    folder = Path(out)
    paths = [folder / SPLIT_FILES[split] for split in trees]
    folder.mkdir(parents=True, exist_ok=True)
    for split, path in zip(trees, paths, strict=True):
        write_tsv(path, trees[split])
    return paths


def write_generated(cfg, out: str | Path, force: bool = False) -> list[Path]:
    """Generate the set ``cfg`` describes and write it in LRA's layout; a folder already
    holding a split is refused before any generating (unless ``force``)."""
    check_overwrite(out, force)
    return write_splits(generate(cfg), out, force)


def _not_utf8(path: Path) -> DataError:
    """The error for a file that fails to decode, naming the line of the first bad byte."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return DataError(f"{path} cannot be read ({e.strerror or e})")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return DataError(
            f"{path}:1: the file is UTF-16 text (it starts with a byte-order mark); "
            "ListOps files must be UTF-8"
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return DataError(
            f"{path}:{line}: not UTF-8 text (byte {e.start}, 0x{raw[e.start]:02x}); "
            "ListOps files must be UTF-8"
        )
    return DataError(f"{path}: not UTF-8 text; ListOps files must be UTF-8")


def _rows(path: Path, f) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every non-blank row after the header, which is checked here."""
    rows = csv.reader(f, delimiter="\t")

    def checked(row: list[str]) -> list[str]:
        if any("\0" in field for field in row):
            raise DataError(
                f"{path}:{rows.line_num}: a NUL byte; the file is binary or corrupt, not a TSV"
            )
        return row

    try:
        header = next(rows, None)
        if header is not None:
            header = checked(header)
            if header[:1] and header[0].startswith("\ufeff"):
                header[0] = header[0][1:]  # a UTF-8 byte-order mark
        if header != HEADER:
            got = "an empty file" if header is None else repr("\t".join(header))
            raise DataError(f"{path}:1: expected the header {'<TAB>'.join(HEADER)}, got {got:.80}")
        for row in rows:
            if checked(row):  # blank lines are skipped
                yield rows.line_num, row
    except csv.Error as e:
        raise DataError(f"{path}:{rows.line_num + 1}: not a readable TSV row ({e})") from None


def read_tsv(path: str | Path) -> tuple[list[list[int]], list[int]]:
    """Token ids (parentheses dropped) and labels of one LRA ListOps TSV file.

    Anything but the layout :func:`write_tsv` writes (the header, then rows of a source
    of known tokens, a tab and one ASCII digit; UTF-8) is a :class:`DataError` naming
    the file and line. Blank lines are skipped; a file with no example is refused.
    """
    path = Path(path)
    ids, labels = [], []
    # csv refuses fields over 128 KiB by default; an expression may be as long as the file.
    old_limit = csv.field_size_limit()
    try:
        csv.field_size_limit(max(old_limit, min(path.stat().st_size + 1, 2**31 - 1)))
        with path.open(encoding="utf-8", newline="") as f:
            for line, row in _rows(path, f):
                if len(row) != 2 or row[1].strip() not in DIGITS:
                    raise DataError(f"{path}:{line}: expected SOURCE<TAB>DIGIT, got {row!r:.80}")
                try:
                    seq = [TOKEN_ID[t] for t in row[0].split() if t not in PARENS]
                except KeyError as e:
                    raise DataError(f"{path}:{line}: unknown token {e.args[0]!r:.40}") from None
                if not seq:
                    raise DataError(f"{path}:{line}: an empty expression")
                ids.append(seq)
                labels.append(int(row[1]))
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror or e})") from None
    finally:
        csv.field_size_limit(old_limit)
    if not labels:
        raise DataError(f"{path} holds no examples, only the header")
    return ids, labels


def _split_paths(root: str | Path) -> dict[str, Path]:
    folder = Path(root)
    missing = [name for name in SPLIT_FILES.values() if not (folder / name).is_file()]
    if missing:
        expected = ", ".join(SPLIT_FILES.values())
        raise DataError(
            f"listops: {folder} lacks {', '.join(missing)} (expected {expected}, as in LRA's "
            "listops-1000); omit --data-dir to generate a set offline, or write one with "
            "odetx data listops --out DIR"
        )
    return {split: folder / name for split, name in SPLIT_FILES.items()}


def settle(cfg):
    """``cfg`` with ``max_len`` the longest example of the files under ``data.root``.

    The model's positions are sized from the files read, so LRA's own files (up to
    2,000 tokens) load whatever the generator's ``seq_len_max`` says; the resolved
    config, and so every checkpoint, records the length. Generated sets, and an
    explicit ``data.max_len``, are left as they are.
    """
    if cfg.root is None or cfg.max_len > 0:
        return cfg
    length, where = 0, ""
    for path in _split_paths(cfg.root).values():
        ids, _ = read_tsv(path)
        i = max(range(len(ids)), key=lambda k: len(ids[k]))
        if len(ids[i]) > length:
            length, where = len(ids[i]), f"{path} (example {i})"
    if length > LRA_MAX_LEN:
        raise ConfigError(
            "data.max_len",
            f"{where} has {length:,} tokens, more than LRA's {LRA_MAX_LEN:,}; "
            f"set data.max_len={length} to read the files anyway",
        )
    return dataclasses.replace(cfg, max_len=length)


def load(cfg) -> Splits:
    """Read the TSV files under ``data.root``, or generate the set when no root is given."""
    max_len = padded_len(cfg)
    if cfg.root is None:
        trees = generate(cfg)
        parts = {
            split: (
                [[TOKEN_ID[t] for t in tokens(tree)] for tree in ts],
                [value(tree) for tree in ts],
            )
            for split, ts in trees.items()
        }
    else:
        parts = {split: read_tsv(path) for split, path in _split_paths(cfg.root).items()}
    return Splits(*(PaddedTokens(*parts[s], max_len) for s in SPLITS))
