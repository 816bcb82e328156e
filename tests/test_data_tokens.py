"""Prepared corpora: odetx data text, --dataset tokens, tokenizers in runs, bits per byte."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.config import DataConfig
from odetx.data import DATASETS
from odetx.data.corpus import TextSplit, pieces
from odetx.data.prepare import prepare_text
from odetx.data.tokenizer import HFTokenizer
from odetx.data.tokenizer_sources import Fit, convert_tiktoken, train_bpe
from odetx.errors import DataError
from odetx.resolve import build_config
from odetx.training import Trainer
from tests.conftest import TINY_LM

# Whitespace every way byte-level BPE treats specially: runs of spaces before and after
# newlines, blank lines, tabs, non-ASCII letters and digits.
PROSE = (
    "The quick brown fox jumps over the lazy dog.  \n\n  Ærø's naïve café — 42 ok.\n"
    "\tindented line\nnext\n\n\nthree blank lines before this one 3.14159\n"
    "x  \ny\n日本語のテキスト、そして English again.\n"
)


def corpus(folder: Path, repeats: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{i}: {PROSE}" for i in range(repeats))
    (folder / "input.txt").write_text(text, encoding="utf-8")
    return folder


def hf_reference(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def decode_split(folder: Path, split: str) -> str:
    meta = json.loads((folder / "meta.json").read_text())
    dtype = np.uint16 if meta["dtype"] == "uint16" else np.uint32
    ids = np.fromfile(folder / f"{split}.bin", dtype=dtype).tolist()
    if meta["tokenizer"]["kind"] == "byte":
        return bytes(ids).decode("utf-8")
    if meta["tokenizer"]["kind"] == "char":
        return "".join(meta["tokenizer"]["chars"][i] for i in ids)
    return hf_reference((folder / "tokenizer.json").read_text()).decode(ids)


# ---------------------------------------------------------------- preparing


@pytest.mark.parametrize("spec", ["byte", "char", "bpe"])
def test_prepared_splits_decode_to_the_source_text_exactly(tmp_path, spec):
    src = corpus(tmp_path / "src")
    prepared = prepare_text(src, tmp_path / "out", spec, vocab_size=300)
    raw = (src / "input.txt").read_bytes()
    joined = "".join(decode_split(tmp_path / "out", s) for s in ("train", "val", "test"))
    assert joined.encode("utf-8") == raw
    meta = prepared.meta
    assert sum(meta["splits"][s]["bytes"] for s in meta["splits"]) == len(raw)
    assert meta["dtype"] == "uint16"
    assert meta["source"]["files"]["input.txt"]["size"] == len(raw)


def test_cut_pieces_encode_as_the_whole_text_does(tmp_path):
    """Pieces are cut only where byte-level BPE cuts anyway: encoding them one by one
    gives the ids of encoding the whole text in one call (tokenizers' own encoder)."""
    src = corpus(tmp_path / "src", repeats=30)
    text = (src / "input.txt").read_text("utf-8")
    bpe = train_bpe(Fit(lambda: iter([text]), 400))
    split = TextSplit(src / "input.txt", 0, len(text.encode()))
    cut = [p for batch, _ in pieces(split, piece_chars=50) for p in batch]
    assert len(cut) > 20 and "".join(cut) == text
    whole = hf_reference(bpe.json).encode(text, add_special_tokens=False).ids
    assert [i for p in cut for i in bpe.encode(p)] == whole


def test_tiktoken_encodings_convert_exactly():
    """A tiktoken Encoding built here (its ranks from a BPE trained in the test) and the
    tokenizers model converted from it give the same ids on unseen text."""
    tiktoken = pytest.importorskip("tiktoken")
    from tokenizers.pre_tokenizers import ByteLevel

    text = "".join(f"{i}: {PROSE}" for i in range(40))
    bpe = train_bpe(Fit(lambda: iter([text]), 500))
    alphabet = ByteLevel.alphabet()
    assert len(alphabet) == 256
    # Undo GPT-2's byte-to-character table independently: printable bytes map to themselves.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable}
    char_to_byte.update({chr(256 + i): b for i, b in enumerate(others)})
    ranks = {bytes(char_to_byte[c] for c in tok): i for tok, i in bpe.hf.get_vocab().items()}
    pat = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    enc = tiktoken.Encoding("test", pat_str=pat, mergeable_ranks=ranks, special_tokens={})
    converted = convert_tiktoken(enc)
    unseen = "Zebras quietly jumped: 1234567 ÆØÅ\n\n  spaced    out\t\ttabs 🐍 done."
    assert converted.encode(unseen) == enc.encode_ordinary(unseen)
    assert converted.encode(PROSE) == enc.encode_ordinary(PROSE)
    assert converted.decode(converted.encode(unseen)) == unseen


def test_an_interrupted_prepare_never_looks_complete(tmp_path, monkeypatch):
    src = corpus(tmp_path / "src")
    out = tmp_path / "out"
    prepare_text(src, out, "byte")
    assert (out / "meta.json").is_file()
    import odetx.data.prepare as prep

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep, "_encode_split", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_text(src, out, "byte", force=True)
    assert not (out / "meta.json").exists()  # the old folder is no longer complete
    with pytest.raises(DataError, match="did not finish"):
        DATASETS["tokens"].load(DataConfig(name="tokens", root=str(out), context=8))


# ---------------------------------------------------------------- training on a folder


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe")
    src = corpus(root / "src")
    prepare_text(src, root / "tokens", "bpe", vocab_size=320)
    cfg = build_config(
        overrides={**TINY_LM, "data.name": "tokens", "data.root": str(root / "tokens")}
    )
    Trainer(cfg, root / "run").fit()
    return root


def test_bits_per_byte_are_the_splits_nats_over_its_bytes(bpe_run):
    from odetx.evaluation import evaluate_checkpoint

    result = evaluate_checkpoint(bpe_run / "run", "val").result
    text = decode_split(bpe_run / "tokens", "val")
    ids = np.fromfile(bpe_run / "tokens/val.bin", dtype=np.uint16)
    tokens = len(ids)
    nats = result.loss * result.samples  # mean nats per scored token x scored tokens
    assert result.samples == tokens - 1
    expected = nats / math.log(2) / len(text.encode("utf-8")) * tokens / (tokens - 1)
    assert result.bpb == pytest.approx(expected, rel=1e-9)
    assert result.bpb < result.loss / math.log(2)  # a BPE token is more than one byte


def test_the_run_carries_its_tokenizer(bpe_run, tmp_path):
    """eval, generate and export need nothing but the run: the prepared folder may go."""
    from odetx.evaluation import load_model

    moved = tmp_path / "run"
    import shutil

    shutil.copytree(bpe_run / "run", moved)
    loaded = load_model(moved)
    tok = HFTokenizer(loaded.info.tokenizer)
    assert tok.json == (bpe_run / "tokens/tokenizer.json").read_text()
    result = CliRunner().invoke(
        app, ["generate", str(moved), "--prompt", "The quick", "--max-new-tokens", "5"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("The quick")
    out = tmp_path / "lm.ts"
    result = CliRunner().invoke(app, ["export", str(moved), "--out", str(out)])
    assert result.exit_code == 0, result.output
    import torch

    files = {"odetx.json": ""}
    torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["odetx.json"])["data_info"]["tokenizer"] == tok.json


# ---------------------------------------------------------------- bad input


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result.exit_code, lines


def train_on(folder: Path, out: Path):
    return invoke(
        "train", "--model", "gpt-tiny", "--dataset", "tokens", "--data-dir", str(folder),
        "--epochs", "1", "--set", "data.train_windows=8", "--set", "model.context=16",
        "--set", "model.dim=16", "--set", "model.depth=1", "--set", "model.heads=2",
        "--threads", "1", "--out", str(out),
    )  # fmt: skip


def damage_truncate(folder):
    with (folder / "val.bin").open("r+b") as f:
        f.truncate(f.seek(0, 2) - 1)


def damage_meta_count(folder):
    meta = json.loads((folder / "meta.json").read_text())
    meta["splits"]["test"]["tokens"] += 5
    (folder / "meta.json").write_text(json.dumps(meta))


def damage_meta_type(folder):
    meta = json.loads((folder / "meta.json").read_text())
    meta["splits"]["train"]["tokens"] = "many"
    (folder / "meta.json").write_text(json.dumps(meta))


def damage_meta_json(folder):
    (folder / "meta.json").write_bytes((folder / "meta.json").read_bytes()[:50])


def damage_tokenizer_missing(folder):
    (folder / "tokenizer.json").unlink()


def damage_tokenizer_bytes(folder):
    raw = bytearray((folder / "tokenizer.json").read_bytes())
    raw[len(raw) // 2] ^= 0x55
    (folder / "tokenizer.json").write_bytes(bytes(raw))


def damage_ids_val(folder):
    ids = np.fromfile(folder / "val.bin", dtype=np.uint16)
    ids[3] = 60000  # outside the 320 ids
    ids.tofile(folder / "val.bin")


def damage_ids_train(folder):
    ids = np.fromfile(folder / "train.bin", dtype=np.uint16)
    ids[::7] = 65535
    ids.tofile(folder / "train.bin")


def damage_no_meta(folder):
    (folder / "meta.json").unlink()


@pytest.mark.parametrize(
    "damage, needle",
    [
        (damage_truncate, "truncated"),
        (damage_meta_count, "truncated or not this folder's"),
        (damage_meta_type, "expected int"),
        (damage_meta_json, "damaged"),
        (damage_tokenizer_missing, "tokenizer.json is missing"),
        (damage_tokenizer_bytes, "hash differs"),
        (damage_ids_val, "outside the vocabulary of 320"),
        (damage_ids_train, "outside the vocabulary of 320"),
        (damage_no_meta, "did not finish"),
    ],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_a_damaged_prepared_folder_is_one_line(bpe_run, tmp_path, damage, needle):
    import shutil

    folder = tmp_path / "tokens"
    shutil.copytree(bpe_run / "tokens", folder)
    damage(folder)
    code, lines = train_on(folder, tmp_path / "run")
    assert code == 2, lines
    errors = [line for line in lines if line.startswith("error:")]
    # Training windows are checked as they are read: the run's header may come first.
    assert errors == lines[-1:] and needle in errors[0], lines
    assert "Traceback" not in "".join(lines)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_bad_sources_and_tokenizers_are_one_line(tmp_path, monkeypatch):
    src = corpus(tmp_path / "src")
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin/input.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    (tmp_path / "fake.json").write_text('{"not": "a tokenizer"}')
    cases = [
        ([str(tmp_path / "empty")], "expected train.txt, val.txt and test.txt, or one input.txt"),
        ([str(tmp_path / "latin")], "is not UTF-8 text (byte 3"),
        ([str(src), "--tokenizer", str(tmp_path / "fake.json")], "is not a tokenizers"),
        ([str(src), "--tokenizer", str(tmp_path / "absent.json")], "no tokenizer at"),
        ([str(src), "--tokenizer", "bpe", "--vocab-size", "100"], "--vocab-size: must lie in"),
    ]
    for args, needle in cases:
        code, lines = invoke("data", "text", *args, "--out", str(tmp_path / "out"))
        assert code == 2 and len(lines) == 1 and needle in lines[0], (args, lines)
        assert not (tmp_path / "out" / "meta.json").exists()
    tiktoken = pytest.importorskip("tiktoken")

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    code, lines = invoke("data", "text", str(src), "--tokenizer", "tiktoken:gpt2",
                         "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and len(lines) == 1 and "not available offline" in lines[0], lines
    code, lines = invoke("data", "text", str(src), "--tokenizer", "tiktoken:nope",
                         "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and "unknown tiktoken encoding 'nope'" in lines[0], lines


def test_a_prepared_folder_is_not_overwritten_without_force(tmp_path):
    src = corpus(tmp_path / "src")
    prepare_text(src, tmp_path / "out", "byte")
    before = (tmp_path / "out/train.bin").read_bytes()
    code, lines = invoke("data", "text", str(src), "--out", str(tmp_path / "out"),
                         "--tokenizer", "char")  # fmt: skip
    assert code == 2 and "--force" in lines[0]
    assert (tmp_path / "out/train.bin").read_bytes() == before


def test_eval_refuses_text_tokenised_by_another_tokenizer(bpe_run, tmp_path):
    """The run's ids would be read as other tokens: a silent wrong score, refused."""
    other = prepare_text(bpe_run / "src", tmp_path / "other", "bpe", vocab_size=300).folder
    code, lines = invoke("eval", str(bpe_run / "run"), "--data-dir", str(other))
    assert code == 2 and len(lines) == 1 and "another tokenizer" in lines[0], lines
    same = prepare_text(
        bpe_run / "src", tmp_path / "same", str(bpe_run / "tokens/tokenizer.json")
    ).folder
    code, lines = invoke("eval", str(bpe_run / "run"), "--data-dir", str(same), "--json")
    assert code == 0, lines
    assert json.loads(lines[-1])["samples"] > 0


def test_a_killed_prepare_is_prepared_again_without_force(tmp_path):
    """SIGKILL mid-encoding leaves temporary files and no metadata: the folder reads as
    unfinished, and the next run cleans up and completes it."""
    import signal
    import subprocess
    import sys

    src = corpus(tmp_path / "src", repeats=3000)  # ~0.6 MB: several blocks to encode
    out = tmp_path / "out"
    code = (
        "import os, signal, odetx.data.prepare as p\n"
        "real = p._encode_split\n"
        "def killed(*a, **k):\n"
        "    a[2].write(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "p._encode_split = killed\n"
        f"p.prepare_text({str(src)!r}, {str(out)!r}, 'byte')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "meta.json").exists() and list(out.glob(".*.tmp"))
    with pytest.raises(DataError, match="did not finish|no meta.json"):
        DATASETS["tokens"].load(DataConfig(name="tokens", root=str(out), context=8))
    prepare_text(src, out, "byte")  # no --force needed: nothing complete is replaced
    assert not list(out.glob(".*.tmp"))
    assert (
        decode_split(out, "train").encode()
        == (src / "input.txt").read_bytes()[
            : json.loads((out / "meta.json").read_text())["splits"]["train"]["bytes"]
        ]
    )


def test_undecodable_prompt_bytes_are_refused_by_a_bpe_run(bpe_run):
    """A shell passes bytes that are not UTF-8 as surrogate escapes: a BPE model cannot
    read them and says so; a byte model takes them as the bytes typed."""
    code, lines = invoke("generate", str(bpe_run / "run"), "--prompt", "ab\udcff\udcfe")
    assert code == 2 and len(lines) == 1, lines
    assert "not valid UTF-8 (byte 0xff at byte 2)" in lines[0]

    byte_run = bpe_run / "byte-run"
    folder = prepare_text(bpe_run / "src", bpe_run / "byte-tokens", "byte").folder
    code, lines = train_on(folder, byte_run)
    assert code == 0, lines
    result = CliRunner().invoke(app, ["generate", str(byte_run), "--prompt", "ab\udcff\udcfe",
                                      "--max-new-tokens", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ab\ufffd\ufffd")
