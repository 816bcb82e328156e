"""Text data for language models: splits, files, vocabularies, windows, pydoc-topics."""

import socket

import numpy as np
import pytest
import torch

from odetx.config import DataConfig
from odetx.data import DATASETS
from odetx.data.base import IGNORE_INDEX, SPLITS
from odetx.data.text import build as build_windows
from odetx.data.text import from_files, from_texts, split_by_position
from odetx.data.tokenizer import ByteTokenizer, CharTokenizer
from odetx.data.windows import ContiguousWindows, RandomWindows, TokenFile
from odetx.errors import DataError


def text_cfg(**kw):
    return DataConfig(**{"name": "text", "context": 8, "train_windows": 16, **kw})


def read_files(root):
    """Each split as the memory-mapped byte path reads it, decoded back to text."""
    _, files = from_files(DataConfig(name="text", root=root))
    return {s: bytes(files[s].ids()).decode("utf-8") for s in SPLITS}


def build(cfg, texts, source):
    return build_windows(cfg, *from_texts(cfg, texts, source), source)


def token_file(tokens):
    ids = np.asarray(tokens, dtype=np.int64)
    return TokenFile.in_memory(ids, len(ids), int(ids.max()) + 1)


# ------------------------------------------------------------ splitting and reading files


@pytest.mark.parametrize(
    "n,sizes",
    [
        (1000, (900, 50, 50)),
        (2001, (1800, 100, 101)),  # floor(1800.9), floor(100.05), the rest
        (101, (90, 5, 6)),
        (19, (17, 0, 2)),
    ],
)
def test_split_by_position_is_90_5_5_of_the_characters(n, sizes):
    text = ("ab€\n" * n)[:n]  # non-ASCII: positions count characters
    assert len(text) == n
    parts = split_by_position(text)
    assert list(parts) == ["train", "val", "test"]
    assert tuple(len(parts[s]) for s in parts) == sizes
    assert parts["train"] + parts["val"] + parts["test"] == text
    assert parts["train"] == text[: sizes[0]]  # by position: a prefix, not a sample


def test_read_files_takes_train_val_test_as_they_are(tmp_path):
    contents = {"train": "  Zeile eins\r\n\nzwei \n", "val": "\tval\r\n", "test": "tëst\n\n\n"}
    for split, body in contents.items():
        (tmp_path / f"{split}.txt").write_bytes(body.encode("utf-8"))
    assert read_files(str(tmp_path)) == contents  # no stripping, no newline translation


def test_read_files_splits_a_single_input_txt(tmp_path):
    text = "".join(chr(0x3B1 + i % 20) + "x" for i in range(100))  # 200 characters
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")
    assert read_files(str(tmp_path)) == {
        "train": text[:180],
        "val": text[180:190],
        "test": text[190:],
    }


@pytest.mark.parametrize("present", [(), ("train.txt", "val.txt"), ("other.txt",)])
def test_read_files_without_split_files_or_input_txt_says_what_it_expects(tmp_path, present):
    for name in present:
        (tmp_path / name).write_text("some text\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_files(str(tmp_path))
    message = str(err.value)
    for name in ("train.txt", "val.txt", "test.txt", "input.txt"):
        assert name in message
    assert str(tmp_path) in message


def test_read_files_without_a_folder_asks_for_one():
    with pytest.raises(DataError, match="--data-dir"):
        read_files(None)


@pytest.mark.parametrize("name", ["input.txt", "val.txt"])
def test_non_utf8_text_is_one_clear_line(tmp_path, name):
    for split in ("train", "val", "test"):
        if name != "input.txt":
            (tmp_path / f"{split}.txt").write_text("fine\n", encoding="utf-8")
    (tmp_path / name).write_bytes(b"caf\xe9 in latin-1\n")  # byte 3 is not UTF-8
    with pytest.raises(DataError) as err:
        read_files(str(tmp_path))
    message = str(err.value)
    assert "\n" not in message
    assert name in message and "UTF-8" in message
    assert "byte 3" in message


# ------------------------------------------------------------ vocabularies


def test_byte_vocab_is_utf8_and_round_trips_non_ascii_text():
    vocab = ByteTokenizer()
    assert vocab.size == 256 and vocab.kind == "byte"
    text = "naïve café — 日本語 ∑ 🐍\n\ttab"
    ids = vocab.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert len(ids) > len(text)  # multi-byte characters are several tokens
    assert ids[:4] == [ord("n"), ord("a"), 0xC3, 0xAF]  # ï is C3 AF in UTF-8
    assert vocab.decode(ids) == text


def test_char_vocab_comes_from_the_training_text_only_sorted():
    texts = {"train": "hello world\nhello", "val": "lower hold", "test": "drew"}
    info, splits = build(text_cfg(vocab="char", context=3), texts, "text")
    assert info.chars == "\n dehlorw"  # sorted by code point: newline < space < d
    assert info.vocab_size == info.num_classes == 9 and info.unit == "char"
    table = "\n dehlorw"
    assert splits.train.tokens.ids().tolist() == [table.index(c) for c in texts["train"]]
    assert splits.val.tokens.ids().tolist() == [table.index(c) for c in texts["val"]]
    vocab = CharTokenizer(info.chars)
    assert vocab.decode(vocab.encode("world hold")) == "world hold"


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_character_missing_from_the_training_text_is_named(split):
    texts = {"train": "hello world", "val": "hello", "test": "world"}
    texts[split] = "held low!"  # "!" at position 8 never occurs in train
    with pytest.raises(DataError) as err:
        build(text_cfg(vocab="char", context=3), texts, "text")
    message = str(err.value)
    assert "'!'" in message and "position 8" in message
    assert f"text {split}" in message
    assert "8 characters" in message  # the vocabulary of "hello world": " dehlorw"


# ------------------------------------------------------------ windows


@pytest.mark.parametrize(
    "n,context",
    [(33, 8), (30, 8), (9, 8), (10, 8), (100, 1), (57, 7)],
    ids=["multiple", "tail", "one-window", "tail-of-one", "context-1", "tail-57-7"],
)
def test_contiguous_windows_score_every_token_after_the_first_exactly_once(n, context):
    tokens = torch.randperm(1000, generator=torch.Generator().manual_seed(n))[:n]
    windows = ContiguousWindows(token_file(tokens), context)
    assert len(windows) == -(-(n - 1) // context)  # ceil((n - 1) / T)
    scored = []
    for i in range(len(windows)):
        x, y = windows[i]
        assert x.shape == y.shape == (context,)
        keep = y != IGNORE_INDEX
        # Ignored targets only ever form a prefix (the overlap of the last window).
        assert keep.long().diff().ge(0).all() and keep[-1]
        scored.extend(y[keep].tolist())
        # The window sits somewhere in the text, its targets one token ahead of its inputs.
        o = int((tokens == x[0]).nonzero())
        assert torch.equal(x, tokens[o : o + context])
        assert torch.equal(y[keep], tokens[o + 1 : o + context + 1][keep])
        assert torch.equal(x[1:][keep[:-1]], y[:-1][keep[:-1]])
    assert scored == tokens[1:].tolist()


def test_random_windows_are_a_function_of_seed_and_epoch():
    tokens = torch.arange(50)
    a = RandomWindows(token_file(tokens), 8, 64, seed=3)
    b = RandomWindows(token_file(tokens), 8, 64, seed=3)

    def draw(ds):
        return [ds[i][0][0].item() for i in range(len(ds))]  # the window starts

    assert draw(a) == draw(b)
    first = draw(a)
    for epoch in (1, 2, 3):
        a.set_epoch(epoch)
    b.set_epoch(3)  # straight to epoch 3, as a resumed run does
    assert draw(a) == draw(b)
    assert draw(a) != first
    b.set_epoch(1)
    assert draw(b) not in (first, draw(a))
    b.set_epoch(0)
    assert draw(b) == first
    assert draw(RandomWindows(token_file(tokens), 8, 64, seed=4)) != first


def test_random_windows_lie_inside_the_text_and_reach_both_ends():
    n, context = 12, 4
    tokens = torch.arange(100, 100 + n)
    ds = RandomWindows(token_file(tokens), context, 400, seed=0)
    assert len(ds) == 400
    starts = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == y.shape == (context,)
            o = int(x[0]) - 100
            assert 0 <= o and o + context + 1 <= n
            assert torch.equal(x, tokens[o : o + context])
            assert torch.equal(y, tokens[o + 1 : o + context + 1])  # inputs shifted by one
            starts.add(o)
    # Every one of the n - context possible windows is drawn, the first and the last included.
    assert starts == set(range(n - context))


# ------------------------------------------------------------ sizes


def test_a_split_shorter_than_one_window_names_the_split_and_the_sizes():
    texts = {"train": "a" * 100, "val": "é" * 4, "test": "c" * 50}  # val: 4 chars, 8 bytes
    with pytest.raises(DataError) as err:
        build(text_cfg(context=8), texts, "text")
    message = str(err.value)
    assert "text val" in message and "8 tokens" in message and "9" in message
    texts["val"] = "é" * 4 + "!"  # 9 bytes: exactly one window fits
    info, splits = build(text_cfg(context=8), texts, "text")
    assert len(splits.val) == 1 and info.max_len == 8


def test_a_short_split_of_input_txt_is_refused_through_the_registry(tmp_path):
    (tmp_path / "input.txt").write_text("x" * 200, encoding="utf-8")  # val, test: 10 bytes
    cfg = text_cfg(context=16, root=str(tmp_path))
    with pytest.raises(DataError, match=r"text val has 10 tokens.*= 17"):
        DATASETS["text"].load(cfg)
    cfg = text_cfg(context=9, root=str(tmp_path))
    splits = DATASETS["text"].load(cfg)
    assert [len(splits[s].tokens) for s in ("train", "val", "test")] == [180, 10, 10]
    assert isinstance(splits.train.tokens.ids(), np.memmap)  # read in place, not copied


# ------------------------------------------------------------ pydoc-topics


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pydoc-topics must build offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_pydoc_topics_builds_offline_from_the_shipped_text(no_network):
    from pydoc_data.topics import topics

    joined = "\n\n".join(topics[key] for key in sorted(topics))
    data = joined.encode("utf-8")
    cfg = DataConfig(name="pydoc-topics", context=16, train_windows=4)
    info = DATASETS["pydoc-topics"].info(cfg)
    assert (info.kind, info.vocab_size, info.unit, info.max_len) == ("text", 256, "byte", 16)
    splits = DATASETS["pydoc-topics"].load(cfg)
    train, val, test = (splits[s].tokens.ids() for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == len(data)
    # The split is by character position (the text is not pure ASCII: a few characters
    # such as "—" are several bytes), so the train bytes are those of the first 90% of
    # the characters; that is 90% of the bytes to within a few per hundred thousand.
    n = len(joined)
    assert train.tolist() == list(joined[: n * 9 // 10].encode("utf-8"))
    assert val.tolist() == list(joined[n * 9 // 10 : n * 9 // 10 + n // 20].encode("utf-8"))
    assert abs(len(train) - 0.9 * len(data)) < 1e-4 * len(data)
    assert len(splits.train) == 4
    x, y = splits.train[0]
    assert x.shape == y.shape == (16,) and torch.equal(x[1:], y[:-1])


def test_eval_windows_take_an_evenly_spaced_subset_of_the_windows():
    tokens = torch.arange(1000)
    full = ContiguousWindows(token_file(tokens), 10)  # 100 windows: 99 whole + a tail
    some = ContiguousWindows(token_file(tokens), 10, limit=5)
    assert len(full) == 100 and len(some) == 5
    every = [full[i][0].tolist() for i in range(len(full))]
    picked = [some[i][0].tolist() for i in range(len(some))]
    assert all(p in every for p in picked)
    assert picked[0] == every[0] and picked[-1] == every[-1]  # both ends
    starts = [p[0] for p in picked]
    assert starts == sorted(starts) and len(set(starts)) == 5
    assert len(ContiguousWindows(token_file(tokens), 10, limit=500)) == 100  # all there are
