"""ListOps and parity: generated labels against independent oracles, the LRA file format."""

import dataclasses
import functools
import math
import statistics

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from odetx.cli import data as data_cli
from odetx.cli.app import command
from odetx.config import DataConfig
from odetx.data import DATASETS, listops, parity
from odetx.errors import ConfigError, DataError

SMALL = DataConfig(
    name="listops",
    seq_len_min=5,
    seq_len_max=40,
    max_depth=4,
    max_args=5,
    train_size=300,
    val_size=50,
    test_size=50,
    seed=3,
)


# ---------------------------------------------------------------- oracle


def oracle(words: list[str]) -> int:
    """Value of a ListOps expression, by a left-to-right stack machine over its words.

    Written apart from odetx: parentheses are skipped here, operators are read by
    name, and the median uses ``statistics.median`` rounded down, which is what
    LRA's ``int(np.median(...))`` gives for non-negative digits.
    """
    rules = {
        "MIN": lambda a: sorted(a)[0],
        "MAX": lambda a: sorted(a)[-1],
        "MED": lambda a: math.floor(statistics.median(a)),
        "SM": lambda a: functools.reduce(lambda s, v: (s + v) % 10, a, 0),
    }
    frames: list[tuple[str, list[int]]] = [("", [])]
    for w in words:
        if w in "()":
            continue
        if w.startswith("["):
            frames.append((w[1:], []))
        elif w == "]":
            name, args = frames.pop()
            frames[-1][1].append(rules[name](args))
        else:
            frames[-1][1].append(int(w))
    ((_, [result]),) = frames
    return result


def test_oracle_on_hand_computed_expressions():
    # Values worked out by hand from the LRA operator definitions.
    assert oracle("[MAX 2 9 [MIN 4 7 ] 0 ]".split()) == 9
    assert oracle("[SM 8 7 [MED 1 4 ] ]".split()) == 7  # MED 1 4 = int(2.5) = 2; 8+7+2 = 17
    assert oracle("( ( ( [MAX 2 ) 9 ) ] )".split()) == 9


def test_median_follows_lra_not_the_lower_median():
    assert listops.value(("[MED", (1, 4))) == 2  # int(np.median([1, 4])) == 2, lower median 1
    rng = np.random.default_rng(0)
    for n in range(2, 12):
        for _ in range(20):
            vals = rng.integers(0, 10, n).tolist()
            assert listops.lra_median(vals) == int(np.median(vals))


def test_generated_labels_match_the_oracle_and_respect_the_limits():
    trees = listops.generate(SMALL)
    assert {k: len(v) for k, v in trees.items()} == {"train": 300, "val": 50, "test": 50}
    seen = set()
    for tree in (t for split in trees.values() for t in split):
        words = listops.tokens(tree)
        assert oracle(words) == listops.value(tree)
        assert oracle(listops.source(tree).split()) == listops.value(tree)
        assert SMALL.seq_len_min <= len(words) <= SMALL.seq_len_max
        depth = max_open = 0
        for w in words:  # nesting of operators; the digits inside sit one level deeper
            depth += w.startswith("[") - (w == "]")
            max_open = max(max_open, depth)
        assert max_open + 1 <= SMALL.max_depth
        seen.add(tuple(words))
    assert len(seen) == 400  # distinct, so the splits are disjoint


def test_generation_is_seeded():
    a = listops.generate(SMALL)
    assert a == listops.generate(SMALL)
    assert a != listops.generate(dataclasses.replace(SMALL, seed=4))


def test_labels_are_not_trivial():
    labels = [listops.value(t) for t in listops.generate(SMALL)["train"]]
    assert len(set(labels)) == 10
    assert max(labels.count(v) for v in range(10)) < 0.5 * len(labels)


def test_generate_write_read_round_trip(tmp_path):
    trees = listops.generate(SMALL)
    listops.write_splits(trees, tmp_path)
    generated = listops.load(SMALL)
    read = listops.load(dataclasses.replace(SMALL, root=str(tmp_path)))
    for split in ("train", "val", "test"):
        assert (read[split].tokens == generated[split].tokens).all()
        assert (read[split].labels == generated[split].labels).all()
        ids, labels = listops.read_tsv(tmp_path / listops.SPLIT_FILES[split])
        assert labels == [oracle(listops.tokens(t)) for t in trees[split]]
        assert [[listops.VOCAB[i] for i in seq] for seq in ids] == [
            listops.tokens(t) for t in trees[split]
        ]
    first = (tmp_path / "basic_train.tsv").read_text().splitlines()[:2]
    assert first[0] == "Source\tTarget"
    src, target = first[1].split("\t")
    assert src.count("(") == src.count(")") > 0 and int(target) == oracle(src.split())


def test_reads_a_hand_written_lra_file(tmp_path):
    rows = ["( ( ( [MAX 2 ) 9 ) ] )\t9", "( ( ( [SM 5 ) ( ( ( [MIN 8 ) 3 ) ] ) ) ] )\t8", "7\t7"]
    for name in listops.SPLIT_FILES.values():
        (tmp_path / name).write_text("Source\tTarget\n" + "\n".join(rows) + "\n")
    splits = listops.load(dataclasses.replace(SMALL, root=str(tmp_path), max_len=8))
    tokens, mask, label = splits.test[1]
    words = [listops.VOCAB[i] for i in tokens[mask].tolist()]
    assert words == ["[SM", "5", "[MIN", "8", "3", "]", "]"]
    assert label.item() == 8 and not mask[7:].any() and (tokens[~mask] == 0).all()


def test_missing_or_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="basic_train.tsv.*odetx data listops"):
        listops.load(dataclasses.replace(SMALL, root=str(tmp_path)))
    for name in listops.SPLIT_FILES.values():
        (tmp_path / name).write_text("Source\tTarget\n[MAX 2 [FIRST 3 ] ]\t3\n")
    with pytest.raises(DataError, match=r"basic_train.tsv:2: unknown token '\[FIRST'"):
        listops.load(dataclasses.replace(SMALL, root=str(tmp_path)))
    for name in listops.SPLIT_FILES.values():
        (tmp_path / name).write_text(
            "Source\tTarget\n" + " ".join(["[MAX"] + ["1"] * 80 + ["]"]) + "\t1\n"
        )
    with pytest.raises(DataError, match="more than data.max_len 40"):
        listops.load(dataclasses.replace(SMALL, root=str(tmp_path)))


@pytest.mark.parametrize(
    "change, key",
    [
        ({"seq_len_max": 4}, "data.seq_len_max"),
        ({"max_args": 1}, "data.max_args"),
        (
            {"max_depth": 2, "max_args": 3, "seq_len_min": 6},
            "data.seq_len_min",
        ),  # at most 2 + 3 = 5
        ({"train_size": 0}, "data.train_size"),
        ({"max_len": 10}, "data.max_len"),
    ],
)
def test_impossible_generator_settings_name_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        listops.generate(dataclasses.replace(SMALL, **change))


def test_token_datasets_shape_and_info():
    cfg = dataclasses.replace(SMALL, max_len=48)
    info = DATASETS["listops"].info(cfg)
    assert (info.kind, info.num_classes, info.vocab_size, info.max_len) == ("tokens", 10, 16, 48)
    tokens, mask, label = DATASETS["listops"].load(cfg).train[0]
    assert tokens.shape == mask.shape == (48,)
    assert (tokens.dtype, mask.dtype) == (torch.long, torch.bool)
    assert mask.sum() >= SMALL.seq_len_min and 0 <= label.item() <= 9


def _data_app() -> typer.Typer:
    # The same wrapping app.py gives every command: errors become one line and an exit code.
    app = typer.Typer()
    app.command("listops")(command("data listops", data_cli.data_listops))
    app.command("unused")(lambda: None)  # two commands keep the subcommand name on the line
    return app


def test_data_listops_command_writes_a_readable_set(tmp_path):
    runner = CliRunner()
    args = [
        "listops",
        "--out",
        str(tmp_path / "lo"),
        "--train-size",
        "30",
        "--val-size",
        "5",
        "--test-size",
        "5",
        "--seq-len-min",
        "5",
        "--seq-len-max",
        "30",
        "--seed",
        "1",
    ]
    result = runner.invoke(_data_app(), args)
    assert result.exit_code == 0, result.output
    cfg = DataConfig(name="listops", root=str(tmp_path / "lo"), seq_len_max=30)
    ids, labels = listops.read_tsv(tmp_path / "lo" / "basic_train.tsv")
    assert len(labels) == 30 and all(5 <= len(s) <= 30 for s in ids)
    assert labels == [oracle([listops.VOCAB[i] for i in s]) for s in ids]
    assert len(listops.load(cfg).test) == 5
    before = (tmp_path / "lo" / "basic_train.tsv").read_bytes()
    again = runner.invoke(_data_app(), [*args[:-1], "2"])  # another seed: different content
    assert again.exit_code == 2 and "--force" in again.output and "Traceback" not in again.output
    assert (tmp_path / "lo" / "basic_train.tsv").read_bytes() == before
    assert runner.invoke(_data_app(), [*args, "--force"]).exit_code == 0


# ---------------------------------------------------------------- parity


PARITY = DataConfig(
    name="parity", seq_len_min=3, seq_len_max=12, train_size=200, val_size=40, test_size=40, seed=5
)


def test_parity_labels_lengths_and_masks():
    splits = parity.load(PARITY)
    strings = set()
    for split in ("train", "val", "test"):
        for tokens, mask, label in splits[split]:
            bits = [t - 1 for t in tokens[mask].tolist()]  # tokens 1/2 are bits 0/1
            assert set(bits) <= {0, 1} and (tokens[~mask] == 0).all()
            assert PARITY.seq_len_min <= len(bits) <= PARITY.seq_len_max
            assert label.item() == functools.reduce(lambda a, b: a ^ b, bits)
            strings.add(tuple(bits))
    assert len(strings) == 280  # no string is shared between splits
    assert parity.info(PARITY).max_len == 12 and parity.info(PARITY).vocab_size == 3


def test_parity_refuses_more_strings_than_exist():
    with pytest.raises(DataError, match="only 14 exist"):
        parity.load(dataclasses.replace(PARITY, seq_len_min=1, seq_len_max=3))
