"""Every reader of a user's file, fed hostile input.

For each format a small valid file is written here, then many corrupted variants of it
(seeded random truncations and bit flips, plus named cases: wrong types, wrong shapes,
wrong encodings). Each variant must either load or raise the reader's own
:class:`~odetx.errors.OdetxError` subclass, in one line that names the file; any other
exception fails the test with the variant that caused it.
"""

import dataclasses
import gzip
import io
import json
import pickle
import random
import re
import struct
import zipfile

import numpy as np
import pytest
import torch
import yaml

from odetx.artefacts.checkpoint import load_checkpoint, save_checkpoint
from odetx.compare.runs import read_run, runs_table, table_of_runs
from odetx.config import DataConfig
from odetx.data import DATASETS, listops
from odetx.data.image_files import read_cifar_batches
from odetx.data.text import from_files
from odetx.errors import CheckpointError, DataError, OdetxError
from odetx.resolve import build_config

SEED = 1234


def mutants(good: bytes, seed: int, cuts: int = 40, flips: int = 60) -> list[tuple[str, bytes]]:
    """Seeded corruptions of ``good``: the empty file, truncations, and 1-4 bit flips."""
    rng = random.Random(seed)
    out = [("empty", b""), ("one byte", good[:1]), ("all but one byte", good[:-1])]
    for cut in sorted(rng.sample(range(1, len(good)), min(cuts, len(good) - 1))):
        out.append((f"cut at {cut}", good[:cut]))
    for i in range(flips):
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        out.append((f"flips #{i}", bytes(b)))
    return out


def flip_in_member(good: bytes, wanted) -> tuple[str, bytes]:
    """``good`` (a zip archive) with one bit flipped in the stored bytes of the first
    member whose name ``wanted(name)`` accepts, and that member's name. The offset
    comes from the member's local header (torch pads its extra field for alignment)."""
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        info = next(i for i in z.infolist() if wanted(i.filename) and i.compress_size > 8)
    names, extra = struct.unpack("<HH", good[info.header_offset + 26 : info.header_offset + 30])
    at = info.header_offset + 30 + names + extra + info.compress_size // 2
    blob = bytearray(good)
    blob[at] ^= 0x40
    return info.filename, bytes(blob)


def named_cases(rows):
    """Parametrize ``name, blob, needle`` with each case's name as its test id."""
    return pytest.mark.parametrize("name, blob, needle", [pytest.param(*r, id=r[0]) for r in rows])


def outcome(label: str, call, error: type[OdetxError], names: tuple[str, ...]) -> str:
    """``"ok"`` if ``call()`` returns, ``"error"`` if it raises ``error`` in one line naming
    one of ``names``; anything else fails the test, naming ``label``."""
    try:
        call()
    except error as e:
        message = str(e)
        assert message.strip(), f"{label}: an empty message"
        assert "\n" not in message and "\r" not in message, f"{label}: {message!r}"
        assert any(n in message for n in names), f"{label}: {message!r} names none of {names}"
        return "error"
    except Exception as e:  # the point of the test: nothing but the reader's own error
        pytest.fail(f"{label}: {type(e).__name__}: {e}")
    return "ok"


# ---------------------------------------------------------------- ListOps TSV


LISTOPS = DataConfig(
    name="listops",
    seq_len_min=3,
    seq_len_max=30,
    max_depth=3,
    max_args=4,
    train_size=30,
    val_size=10,
    test_size=10,
    seed=7,
)


@pytest.fixture(scope="module")
def listops_tsv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listops")
    listops.write_splits(listops.generate(LISTOPS), folder)
    return folder


def test_listops_reader_survives_truncations_and_bit_flips(listops_tsv, tmp_path):
    good = (listops_tsv / "basic_val.tsv").read_bytes()
    path = tmp_path / "basic_val.tsv"
    seen = set()
    for label, blob in mutants(good, SEED):
        path.write_bytes(blob)
        seen.add(outcome(label, lambda: listops.read_tsv(path), DataError, (str(path),)))
    assert seen == {"ok", "error"}


TSV = "Source\tTarget\n( ( [MAX 2 ) 9 ] )\t9\n"


@named_cases(
    [
        ("empty file", b"", ":1: expected the header"),
        ("header only", b"Source\tTarget\n", "holds no examples"),
        ("header, blank lines", b"Source\tTarget\n\n\r\n", "holds no examples"),
        ("latin-1", "Source\tTarget\n[MAX 2 é ]\t2\n".encode("latin-1"), ":2: not UTF-8"),
        ("utf-16", TSV.encode("utf-16"), ":1: the file is UTF-16"),
        ("utf-16-be", b"\xfe\xff" + TSV.encode("utf-16-be"), ":1: the file is UTF-16"),
        ("NUL bytes", b"Source\tTarget\n[MAX 2\x00 3 ]\t3\n", ":2: a NUL byte"),
        ("all NUL", b"\x00" * 64, "NUL"),
        ("arabic-indic digit", "Source\tTarget\n[MAX 2 3 ]\t\u0663\n".encode(), ":2: expected"),
        ("superscript digit", "Source\tTarget\n[MAX 2 3 ]\t\u00b3\n".encode(), ":2: expected"),
        ("two-digit label", b"Source\tTarget\n[SM 5 7 ]\t12\n", ":2: expected"),
        ("negative label", b"Source\tTarget\n[SM 5 7 ]\t-2\n", ":2: expected"),
        ("no label", b"Source\tTarget\n[SM 5 7 ]\n", ":2: expected"),
        ("three columns", b"Source\tTarget\n[SM 5 7 ]\t2\t2\n", ":2: expected"),
        ("one column of two lines", TSV.encode() + b"7\n", ":3: expected"),
        ("unknown token", b"Source\tTarget\n[MAX 2 X ]\t2\n", ":2: unknown token 'X'"),
        ("non-ascii digit token", "Source\tTarget\n[MAX 2 \u0663 ]\t3\n".encode(), ":2: unknown"),
        ("empty expression", b"Source\tTarget\n( )\t3\n", ":2: an empty expression"),
        ("wrong header", b"Src\tTgt\n7\t7\n", ":1: expected the header"),
        ("binary", bytes(range(256)) * 4, ":2: not UTF-8"),
        ("unterminated quote", b'Source\tTarget\n"7\t7\n', "basic_val.tsv"),
    ],
)
def test_listops_named_bad_files_are_one_line(tmp_path, name, blob, needle):
    path = tmp_path / "basic_val.tsv"
    path.write_bytes(blob)
    assert outcome(name, lambda: listops.read_tsv(path), DataError, (str(path),)) == "error"
    with pytest.raises(DataError, match=re.escape(needle)):
        listops.read_tsv(path)


def test_listops_huge_field_is_not_a_csv_error(tmp_path):
    # csv's default field limit is 128 KiB; a long expression is the model's problem, not
    # the reader's, and a long garbage field is an unknown token on its line.
    path = tmp_path / "basic_val.tsv"
    long = " ".join(["[MAX"] * 40_000 + ["1"] * 40_000 + ["]"] * 40_000)
    path.write_text(f"Source\tTarget\n7\t7\n{long}\t1\n")
    ids, labels = listops.read_tsv(path)
    assert len(ids[1]) == 120_000 and labels == [7, 1]
    path.write_text("Source\tTarget\n7\t7\n" + "x" * 300_000 + "\t1\n")
    with pytest.raises(DataError, match=r"basic_val.tsv:3: unknown token 'xxx"):
        listops.read_tsv(path)
    assert len(str(pytest.raises(DataError, listops.read_tsv, path).value)) < 300


def test_listops_load_names_the_bad_split(listops_tsv, tmp_path):
    for name in listops.SPLIT_FILES.values():
        (tmp_path / name).write_bytes((listops_tsv / name).read_bytes())
    (tmp_path / "basic_test.tsv").write_text("Source\tTarget\n")
    cfg = dataclasses.replace(LISTOPS, root=str(tmp_path))
    with pytest.raises(DataError, match="basic_test.tsv holds no examples"):
        listops.load(cfg)
    (tmp_path / "basic_test.tsv").write_bytes((listops_tsv / "basic_test.tsv").read_bytes())
    assert len(listops.load(cfg).test) == LISTOPS.test_size


# ---------------------------------------------------------------- IDX (MNIST)


def idx_blob(array: np.ndarray) -> bytes:
    magic = {3: 2051, 1: 2049}[array.ndim]
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes()


@pytest.fixture(scope="module")
def mnist_files():
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", 20), ("t10k", 10)):
        files[f"{prefix}-images-idx3-ubyte"] = idx_blob(
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        files[f"{prefix}-labels-idx1-ubyte"] = idx_blob((np.arange(n) % 10).astype(np.uint8))
    return files


def write_mnist(root, files, gz=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (raw / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(blob) if gz else blob)
    return raw


def mnist_data(root):
    # No augmentation: it would import torchvision, which this test does not need.
    overrides = {"data.name": "mnist", "data.root": str(root), "data.augment": False}
    return build_config(overrides=overrides).data


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("target", ["t10k-images-idx3-ubyte", "train-labels-idx1-ubyte"])
def test_idx_reader_survives_truncations_and_bit_flips(tmp_path, mnist_files, gz, target):
    raw = write_mnist(tmp_path, mnist_files, gz)
    data = mnist_data(tmp_path)
    path = raw / (target + (".gz" if gz else ""))
    good = path.read_bytes()
    seen = set()
    variants = mutants(good, SEED, cuts=25, flips=35)
    if gz:  # also damage what is inside, recompressed whole
        variants += [(f"inner {k}", gzip.compress(b)) for k, b in mutants(mnist_files[target], 7)]
    for label, blob in variants:
        path.write_bytes(blob)
        load = lambda: DATASETS["mnist"].load(data)  # noqa: E731
        seen.add(outcome(label, load, DataError, (target,)))
    assert "error" in seen


def _header(magic: int, *dims: int) -> bytes:
    return struct.pack(">i", magic) + b"".join(struct.pack(">I", d) for d in dims)


@named_cases(
    [
        ("dims overflow int64", _header(2051, 2**32 - 1, 2**32 - 1, 2**32 - 1), "truncated or"),
        ("dims product wraps", _header(2051, 2**31, 2**31, 4) + b"\0" * 16, "truncated or"),
        ("size disagrees", _header(2051, 10, 28, 28) + b"\0" * 100, "header says"),
        ("one byte too many", _header(2051, 1, 2, 2) + b"\0" * 5, "header says"),
        ("zero dims", _header(0x0800), "0 dimensions"),
        ("many dims", _header(0x0840, *[1] * 64) + b"\0", "64 dimensions"),
        ("float elements", _header(0x0D03, 1, 28, 28) + b"\0" * 3136, "element type 0x0d"),
        ("signed elements", _header(0x0903, 1, 28, 28) + b"\0" * 784, "element type 0x09"),
        ("bad magic", b"\x01\x02\x08\x03" + b"\0" * 12, "bad magic number"),
        ("three bytes", b"\0\0\x08", "bad magic number"),
        ("header cut", _header(2051, 10)[:-2], "header itself is cut short"),
        ("images as labels", _header(2049, 10) + bytes(10), "do not pair up"),
        ("wrong image size", _header(2051, 10, 8, 8) + bytes(640), "expected (1, 28, 28)"),
        ("no images", _header(2051, 0, 28, 28), "do not pair up"),
    ],
)
def test_idx_named_bad_headers_are_one_line(tmp_path, mnist_files, name, blob, needle):
    raw = write_mnist(tmp_path, mnist_files)
    (raw / "t10k-images-idx3-ubyte").write_bytes(blob)
    load = lambda: DATASETS["mnist"].load(mnist_data(tmp_path))  # noqa: E731
    assert outcome(name, load, DataError, ("t10k-images-idx3-ubyte",)) == "error"
    with pytest.raises(DataError) as err:
        load()
    assert needle in str(err.value)


@named_cases(
    [
        ("not gzip", b"plain bytes, not gzip", "not a readable gzip file"),
        ("gzip cut short", None, "not a readable gzip file"),
        ("bad deflate data", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 40, "gzip"),
        ("bad crc", None, "not a readable gzip file"),
    ],
)
def test_corrupt_gzip_is_one_line(tmp_path, mnist_files, name, blob, needle):
    raw = write_mnist(tmp_path, mnist_files, gz=True)
    path = raw / "t10k-labels-idx1-ubyte.gz"
    good = path.read_bytes()
    if name == "gzip cut short":
        blob = good[: len(good) // 2]
    elif name == "bad crc":
        blob = good[:-8] + bytes(b ^ 0xFF for b in good[-8:-4]) + good[-4:]
    path.write_bytes(blob)
    with pytest.raises(DataError, match=needle) as err:
        DATASETS["mnist"].load(mnist_data(tmp_path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- CIFAR batches


def cifar_batch(n=6, seed=0, **change):
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img%d.png" % i for i in range(n)],
    }
    for key, value in change.items():
        if value is ...:
            del batch[key.encode()]
        else:
            batch[key.encode()] = value
    return batch


CIFAR_NAMES = ("data_batch_1", "test_batch")


def write_cifar(folder, **change):
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR_NAMES:
        (folder / name).write_bytes(pickle.dumps(cifar_batch(**change), protocol=2))


def read_cifar(folder):
    return read_cifar_batches(folder, CIFAR_NAMES, "labels", num_classes=10)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_reader_survives_truncations_and_bit_flips(tmp_path, protocol):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    good = pickle.dumps(cifar_batch(n=3), protocol=protocol)
    seen = set()
    for label, blob in mutants(good, SEED + protocol, cuts=40, flips=80):
        path.write_bytes(blob)
        seen.add(outcome(label, lambda: read_cifar(tmp_path), DataError, (str(path),)))
    assert seen == {"ok", "error"}


def test_gzipped_cifar_batch_survives_damage(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").unlink()
    path = tmp_path / "test_batch.gz"
    good = gzip.compress(pickle.dumps(cifar_batch(n=3), protocol=2))
    path.write_bytes(good)
    assert outcome("good", lambda: read_cifar(tmp_path), DataError, (str(path),)) == "ok"
    for label, blob in mutants(good, SEED, cuts=20, flips=30):
        path.write_bytes(blob)
        outcome(label, lambda: read_cifar(tmp_path), DataError, (str(path),))


class _Obj:
    pass


CIFAR_CASES = [
    ("labels missing", {"labels": ...}, "lacks the 'data' or 'labels'"),
    ("data missing", {"data": ...}, "lacks the 'data'"),
    ("data a list", {"data": [[0] * 3072] * 6}, "'data' is a list"),
    ("data floats", {"data": np.zeros((6, 3072), np.float32)}, "'data' is a float32 array"),
    ("data bools", {"data": np.zeros((6, 3072), bool)}, "'data' is a bool array"),
    ("data 1-D", {"data": np.zeros(3072, np.uint8)}, "has shape (3072,)"),
    ("data 3-D", {"data": np.zeros((6, 3, 1024), np.uint8)}, "has shape (6, 3, 1024)"),
    ("data narrow", {"data": np.zeros((6, 3071), np.uint8)}, "has shape (6, 3071)"),
    ("data int16 overflow", {"data": np.full((6, 3072), 300, np.int16)}, "outside 0..255"),
    ("data object array", {"data": np.array([[0] * 3072] * 6, dtype=object)}, "Python objects"),
    ("data bytes", {"data": b"\0" * 3072 * 6}, "'data' is a bytes"),
    ("labels a string", {"labels": "0123456789"}, "'labels' is a str"),
    ("labels floats", {"labels": [1.0] * 6}, "'labels' is a list"),
    ("labels bools", {"labels": [True] * 6}, "'labels' is a list"),
    ("labels too high", {"labels": [0, 1, 2, 3, 4, 10]}, "outside 0..9"),
    ("labels negative", {"labels": [0, 1, 2, 3, 4, -1]}, "outside 0..9"),
    ("labels huge", {"labels": [0, 1, 2, 3, 4, 2**70]}, "outside 0..9"),
    ("labels 2-D", {"labels": np.zeros((6, 1), np.int64)}, "'labels' is a int64 array"),
    ("labels float array", {"labels": np.zeros(6, np.float64)}, "'labels' is a float64 array"),
    ("labels object array", {"labels": np.array([1] * 6, dtype=object)}, "Python objects"),
    ("labels too few", {"labels": [1, 2]}, "6 images but 2 labels"),
    ("labels a dict", {"labels": {1: 2}}, "'labels' is a dict"),
    ("labels None", {"labels": None}, "'labels' is a NoneType"),
]


@pytest.mark.parametrize("name, change, needle", CIFAR_CASES, ids=[c[0] for c in CIFAR_CASES])
def test_cifar_batches_of_the_wrong_structure_are_one_line(tmp_path, name, change, needle):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(cifar_batch(**change), protocol=2))
    assert outcome(name, lambda: read_cifar(tmp_path), DataError, (str(path),)) == "error"
    with pytest.raises(DataError) as err:
        read_cifar(tmp_path)
    assert needle in str(err.value)


@named_cases(
    [
        ("a list", pickle.dumps([1, 2, 3]), "holds a list, not a CIFAR batch"),
        ("an array", pickle.dumps(np.zeros((2, 3072), np.uint8)), "holds a uint8 array"),
        ("a class", pickle.dumps({b"data": _Obj()}), "refusing to load"),
        ("truncated", pickle.dumps(cifar_batch())[:100], "not a readable CIFAR batch"),
        ("not a pickle", b"\x89PNG\r\n\x1a\n" + bytes(64), "not a readable CIFAR batch"),
        ("empty", b"", "not a readable CIFAR batch"),
        ("nested deep", b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".", "holds a list"),
        ("non-ascii keys", pickle.dumps({b"\xff": 1}, protocol=2), "lacks the 'data'"),
    ],
)
def test_cifar_files_that_are_no_batch_are_one_line(tmp_path, name, blob, needle):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=needle) as err:
        read_cifar(tmp_path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_cifar_through_the_registry_names_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(cifar_batch(n=2), protocol=2))
    bad = folder / "data_batch_3"
    bad.write_bytes(pickle.dumps(cifar_batch(n=2, labels=[3, 11]), protocol=2))
    data = build_config(overrides={"data.name": "cifar10", "data.root": str(tmp_path)}).data
    with pytest.raises(DataError, match=r"data_batch_3: 'labels' holds labels outside 0\.\.9"):
        DATASETS["cifar10"].load(data)


# ---------------------------------------------------------------- checkpoints


def tiny_payload():
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {
        "config": {"model": {"dim": 4}, "train": {"seed": 0}},
        "data_info": {"kind": "image", "num_classes": 2, "image_size": 8, "in_chans": 1},
        "model": layer.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "ranks": [torch.get_rng_state()]},
        "scaler": {},
        "epoch": 3,
        "step": 12,
        "best_val_acc": 0.5,
        "best_epoch": 2,
        "best_val_loss": float("inf"),
        "wall_time_s": 1.5,
        "params": 8,
    }


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "c.pt"
    save_checkpoint(path, tiny_payload())
    return path.read_bytes()


def test_checkpoint_truncations_at_many_offsets(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    good = checkpoint_bytes
    offsets = sorted(set(range(0, len(good), max(1, len(good) // 150))) | {len(good) - 1})
    for cut in offsets:
        path.write_bytes(good[:cut])
        got = outcome(f"cut at {cut}", lambda: load_checkpoint(path), CheckpointError, (str(path),))
        assert got == "error", f"a checkpoint cut at {cut} of {len(good)} bytes loaded"


def test_checkpoint_bit_flips_load_or_are_refused(tmp_path, checkpoint_bytes):
    path = tmp_path / "last.pt"
    seen = set()
    for label, blob in mutants(checkpoint_bytes, SEED, cuts=0, flips=300):
        path.write_bytes(blob)
        seen.add(outcome(label, lambda: load_checkpoint(path), CheckpointError, (str(path),)))
    assert seen == {"ok", "error"}


def raw_checkpoint(path, **change):
    """A torch.save of the odetx layout with ``change`` applied (``...`` deletes a key)."""
    ckpt = {"format": "odetx-checkpoint", "version": 1, **tiny_payload()}
    for key, value in change.items():
        if value is ...:
            del ckpt[key]
        else:
            ckpt[key] = value
    torch.save(ckpt, path)
    return path


CHECKPOINT_CASES = [
    ("config", 5),
    ("config", "model: {dim: 4}"),
    ("config", [("model", {})]),
    ("config", {1: "x"}),
    ("config", None),
    ("data_info", "image"),
    ("data_info", {"kind": 3}),
    ("data_info", {"kind": "image", "num_classes": "10"}),
    ("data_info", {"kind": "image", "num_classes": True}),
    ("data_info", {"kind": "image", "num_classes": 2.0}),
    ("data_info", {"kind": "image", "chars": ["a"]}),
    ("model", [torch.ones(2)]),
    ("model", {"w": 1.0}),
    ("model", {"w": [1.0, 2.0]}),
    ("model", {3: torch.ones(1)}),
    ("model", torch.ones(2)),
    ("epoch", "3"),
    ("epoch", 3.0),
    ("epoch", True),
    ("step", None),
    ("best_val_acc", "0.5"),
    ("wall_time_s", [1.5]),
    ("optimizer", [1, 2]),
    ("rng", torch.ones(3)),
    ("rng", {"torch": [1, 2]}),
    ("rng", {"torch": torch.ones(1), "ranks": torch.ones(1)}),
    ("version", "1"),
    ("version", 1.0),
    ("version", True),
    ("version", 0),
    ("version", None),
]


@pytest.mark.parametrize(
    "field, value", CHECKPOINT_CASES, ids=[f"{f}={v!r:.20}" for f, v in CHECKPOINT_CASES]
)
def test_checkpoints_of_odd_structure_name_file_and_field(tmp_path, field, value):
    path = raw_checkpoint(tmp_path / "odd.pt", **{field: value})
    assert outcome(field, lambda: load_checkpoint(path), CheckpointError, (str(path),)) == "error"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert field in str(err.value)


@pytest.mark.parametrize(
    "obj, needle",
    [
        ([1, 2], "not an odetx checkpoint"),
        (torch.ones(3), "not an odetx checkpoint"),
        ({"format": "odetx-checkpoint"}, "lacks version, config, data_info, model"),
        (
            {
                "format": "odetx-checkpoint",
                "version": 2,
                "config": {},
                "data_info": {},
                "model": {},
            },
            "newer odetx",
        ),
    ],
)
def test_checkpoints_that_are_no_odetx_checkpoint(tmp_path, obj, needle):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=needle) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


class _Payload:
    ran = False

    def __reduce__(self):
        return (_Payload.mark, ())

    @staticmethod
    def mark():
        _Payload.ran = True


def test_checkpoints_still_refuse_pickled_objects(tmp_path):
    path = raw_checkpoint(tmp_path / "evil.pt", config=_Payload())
    with pytest.raises(CheckpointError, match="weights_only=True") as err:
        load_checkpoint(path)
    assert not _Payload.ran and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_real_checkpoint_still_loads(tmp_path, checkpoint_bytes):
    path = tmp_path / "best.pt"
    path.write_bytes(checkpoint_bytes)
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["model"]["weight"].shape == (2, 3)


# ---------------------------------------------------------------- odetx compare RUN…


def summary(seed, acc, **change):
    out = {
        "dataset": "digits",
        "preset": "vit-micro",
        "arch": "parallel",
        "solver": "euler",
        "steps": 1,
        "depth": 2,
        "groups": 2,
        "seed": seed,
        "params": 5018,
        "best_val_acc": acc,
        "test": {"loss": 2.0, "acc": acc, "nfe": 2.0},
        "test_last": {"loss": 2.0, "acc": acc, "nfe": 2.0},
        "nfe_forward": 2.0,
        "wall_time_s": 0.25,
    }
    out.update(change)
    return out


CONFIG = {
    "model": {"preset": "vit-micro", "arch": "parallel", "depth": 2, "groups": 2},
    "solver": {"method": "euler", "steps": 1},
    "data": {"name": "digits"},
}


def make_run(folder, seed=0, acc=0.5, summary_text=None, config_text=None):
    folder.mkdir(parents=True)
    config = {**CONFIG, "train": {"seed": seed}}
    (folder / "config.yaml").write_text(config_text or yaml.safe_dump(config))
    (folder / "summary.json").write_text(summary_text or json.dumps(summary(seed, acc)))
    return folder


# Ten levels of ten aliases each: a few hundred bytes that stand for 10**10 values.
ALIAS_BOMB = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)
BAD_RUNS = [
    ("summary not JSON", '{"test": ', None, "summary.json is not valid JSON"),
    ("summary a list", "[1, 2]", None, "summary.json holds an array, not an object"),
    ("summary a number", "5", None, "summary.json holds a number, not an object"),
    ("test a number", json.dumps(summary(9, 0.5, test=5)), None, "test is 5"),
    ("test.acc a string", json.dumps(summary(9, 0.5, test={"acc": "x"})), None, "test.acc"),
    ("params a string", json.dumps(summary(9, 0.5, params="x")), None, "params is 'x'"),
    ("params a bool", json.dumps(summary(9, 0.5, params=True)), None, "params is True"),
    ("params huge", json.dumps(summary(9, 0.5, params=10**400)), None, "params is"),
    ("nfe a list", json.dumps(summary(9, 0.5, nfe_forward=[2])), None, "nfe_forward"),
    ("dataset a list", json.dumps(summary(9, 0.5, dataset=[1])), "", "data.name"),
    ("summary not UTF-8", '{"params": "\udcff"}', None, "not UTF-8"),
    ("config bad YAML", None, "model: [unclosed\n  x: {", "config.yaml is not valid YAML"),
    ("config a list", None, "- 1\n- 2\n", "config.yaml holds a list, not a mapping"),
    ("config a number", None, "5\n", "config.yaml holds a number, not a mapping"),
    ("config tabs", None, "model:\n\tpreset: x\n", "config.yaml is not valid YAML"),
    ("config a python tag", None, "!!python/object:os.system {}\n", "not valid YAML"),
    ("config an alias bomb", None, ALIAS_BOMB, "config.yaml expands to more than"),
    ("config too large", None, "x: " + "1" * (1 << 21) + "\n", "config.yaml is larger than"),
    ("config seed a list", None, "train: {seed: [1, 2]}\n", "train.seed is [1, 2]"),
]


def write_bad_run(folder, summary_text, config_text):
    folder.mkdir(parents=True)
    if summary_text is not None and "\udcff" in summary_text:
        (folder / "summary.json").write_bytes(b'{"params": "\xff"}')
    else:
        (folder / "summary.json").write_text(summary_text or json.dumps(summary(9, 0.5)))
    if config_text is not None:
        (folder / "config.yaml").write_text(config_text)
    return folder


@pytest.mark.parametrize(
    "name, summary_text, config_text, needle", BAD_RUNS, ids=[b[0] for b in BAD_RUNS]
)
def test_compare_skips_a_bad_run_with_a_note(tmp_path, name, summary_text, config_text, needle):
    good = [make_run(tmp_path / f"seed{s}", s, 0.5 + 0.1 * s) for s in (0, 1)]
    bad = write_bad_run(tmp_path / "bad", summary_text, config_text)
    table = runs_table([str(tmp_path)])
    assert [r["seeds"] for r in table.rows] == [2]
    assert sorted(table.rows[0]["runs"]) == sorted(map(str, good))
    notes = [n for n in table.notes if n.startswith("skipped")]
    assert len(notes) == 1 and notes[0].startswith(f"skipped {bad}: "), table.notes
    assert needle in notes[0] and "\n" not in notes[0]
    with pytest.raises(OdetxError, match="cannot read the run in") as err:
        read_run(bad)  # one run alone still says why, as an error
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    table.to_records()  # the table still renders to files


def test_compare_with_no_usable_run_is_one_error(tmp_path):
    bad = [write_bad_run(tmp_path / f"bad{i}", text, None) for i, text in enumerate(["[", "5"])]
    with pytest.raises(OdetxError, match="none of the 2 runs is usable") as err:
        table_of_runs(bad)
    assert all(str(b) in str(err.value) for b in bad) and "\n" not in str(err.value)
    with pytest.raises(OdetxError, match=f"no usable run: skipped {bad[0]}"):
        table_of_runs(bad[:1])


def test_compare_cli_tabulates_the_usable_runs(tmp_path):
    from typer.testing import CliRunner

    from odetx.cli.app import app

    make_run(tmp_path / "seed0", 0, 0.5)
    bad = write_bad_run(tmp_path / "bad", '{"test": 5}', None)
    result = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"skipped {bad}: summary.json: test is 5, not an object" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["compare", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("target", ["summary.json", "config.yaml"])
def test_compare_survives_damaged_run_files(tmp_path, target):
    make_run(tmp_path / "seed0", 0, 0.5)
    run = make_run(tmp_path / "seed1", 1, 0.6)
    good = (run / target).read_bytes()
    for label, blob in mutants(good, SEED, cuts=30, flips=50):
        (run / target).write_bytes(blob)
        try:
            table = runs_table([str(tmp_path)])
            table.to_records()
        except Exception as e:
            pytest.fail(f"{label}: {type(e).__name__}: {e}")
        skipped = [n for n in table.notes if n.startswith("skipped")]
        assert all(n.startswith(f"skipped {run}: ") and "\n" not in n for n in skipped)
        assert sum(r["seeds"] for r in table.rows) + len(skipped) == 2, label


# ---------------------------------------------------------------- text


def read_files(root):
    from odetx.config import DataConfig

    return from_files(DataConfig(name="text", root=root))


TEXT = "The quick brown fox jumps over the lazy dog.\nÆsop's fables, naïve café — ok.\n" * 20


def test_text_reader_survives_truncations_and_bit_flips(tmp_path):
    path = tmp_path / "input.txt"
    seen = set()
    for label, blob in mutants(TEXT.encode(), SEED, cuts=40, flips=80):
        path.write_bytes(blob)
        seen.add(outcome(label, lambda: read_files(str(tmp_path)), DataError, (str(path),)))
    assert seen == {"ok", "error"}


@named_cases(
    [
        ("empty", b"", "is empty"),
        ("NUL bytes", b"\0" * 100, "NUL byte"),
        ("a NUL inside", b"text and\0more text", "NUL byte (byte 8)"),
        ("utf-16 le", TEXT.encode("utf-16"), "UTF-16"),
        ("utf-16 be", b"\xfe\xff" + TEXT.encode("utf-16-be"), "UTF-16"),
        ("invalid UTF-8 mid-file", TEXT.encode() + b"\xc3\x28" + TEXT.encode(), "not UTF-8"),
        ("cut inside a character", "café".encode()[:-1], "not UTF-8"),
        ("latin-1", "naïve".encode("latin-1"), "not UTF-8"),
    ],
)
@pytest.mark.parametrize("layout", ["input.txt", "val.txt"])
def test_text_named_bad_files_are_one_line(tmp_path, name, blob, needle, layout):
    if layout == "val.txt":
        for split in ("train", "test"):
            (tmp_path / f"{split}.txt").write_text(TEXT, encoding="utf-8")
    path = tmp_path / layout
    path.write_bytes(blob)
    assert outcome(name, lambda: read_files(str(tmp_path)), DataError, (str(path),)) == "error"
    with pytest.raises(DataError, match=re.escape(needle)):
        read_files(str(tmp_path))
