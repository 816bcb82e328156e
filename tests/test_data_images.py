"""Image datasets from tiny files written in the real formats (IDX, CIFAR python batches)."""

import gzip
import json
import pickle
import struct

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data import DATASETS, images
from odetx.errors import DataError
from odetx.resolve import build_config
from odetx.training import Trainer

runner = CliRunner()
N_TRAIN, N_TEST = 64, 32
TINY_VIT = {
    "model.dim": 16,
    "model.depth": 2,
    "model.heads": 2,
    "train.epochs": 1,
    "train.batch_size": 32,
    "train.device": "cpu",
}


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """IDX as LeCun specifies it: magic 0x0000 08 ndim, big-endian dims, then the bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    blob = (
        struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()
    )
    path.write_bytes(gzip.compress(blob) if gz else blob)


def make_mnist(root, folder="MNIST", gz=False, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n) % 10
        suffix = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", x, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz)
        arrays[prefix] = (x, y)
    return arrays


def make_cifar(root, classes=10, seed=0):
    """Batches as pickled dicts with bytes keys, like the release (labels a list)."""
    rng = np.random.default_rng(seed)
    spec = images.IMAGE_DATASETS["cifar10" if classes == 10 else "cifar100"]
    folder = root / spec.folder
    folder.mkdir(parents=True)
    key = b"labels" if classes == 10 else b"fine_labels"
    arrays = {}
    for names, n in ((spec.train_files, N_TRAIN), (spec.test_files, N_TEST)):
        per = n // len(names)
        for name in names:
            x = rng.integers(0, 256, (per, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, classes, per)]
            batch = {
                b"batch_label": name.encode(),
                b"data": x,
                key: y,
                b"filenames": [b"img%d.png" % i for i in range(per)],
            }
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
            arrays[name] = (x, y)
    return arrays


def cfg_for(name, root, **extra):
    return build_config(overrides={"data.name": name, "data.root": str(root), **extra})


def test_idx_reader_agrees_with_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    arrays = make_mnist(tmp_path)
    splits = DATASETS["mnist"].load(cfg_for("mnist", tmp_path).data)
    raw = tmp_path / "MNIST" / "raw"
    reference = read_image_file(str(raw / "t10k-images-idx3-ubyte"))
    assert torch.equal(reference, torch.from_numpy(arrays["t10k"][0]))
    assert torch.equal(read_label_file(str(raw / "t10k-labels-idx1-ubyte")), splits.test.labels)
    for i in (0, 17, N_TEST - 1):
        x, y = splits.test[i]
        # MNIST's published statistics: mean 0.1307, std 0.3081.
        expected = (reference[i].float() / 255 - 0.1307) / 0.3081
        torch.testing.assert_close(x[0], expected)
        assert y.item() == arrays["t10k"][1][i]


def test_gzipped_idx_files_are_accepted(tmp_path):
    arrays = make_mnist(tmp_path, folder="FashionMNIST", gz=True)
    splits = DATASETS["fashion-mnist"].load(cfg_for("fashion-mnist", tmp_path).data)
    x, _ = splits.test[3]
    torch.testing.assert_close(
        x[0], (torch.from_numpy(arrays["t10k"][0][3]).float() / 255 - 0.2860) / 0.3530
    )


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_batches_decode_channel_planes(tmp_path, classes):
    arrays = make_cifar(tmp_path, classes)
    name = "cifar10" if classes == 10 else "cifar100"
    splits = DATASETS[name].load(cfg_for(name, tmp_path).data)
    x, y = splits.test[5]
    flat, labels = arrays["test_batch" if classes == 10 else "test"]
    mean = torch.tensor(images.IMAGE_DATASETS[name].mean)
    std = torch.tensor(images.IMAGE_DATASETS[name].std)
    pixel = flat[5].reshape(3, 1024)[:, 32 * 7 + 11]  # row 7, column 11 of each colour plane
    torch.testing.assert_close(x[:, 7, 11], (torch.tensor(pixel).float() / 255 - mean) / std)
    assert y.item() == labels[5]
    info = DATASETS[name].info(None)
    assert (info.num_classes, info.in_chans, info.image_size) == (classes, 3, 32)


def normalised(pixels, name):
    """Written uint8 pixels (an MNIST image, or a flat CIFAR row of channel planes) as the
    model should see them: scaled to [0, 1], less the channel mean, over the channel std."""
    spec = images.IMAGE_DATASETS[name]
    x = torch.as_tensor(pixels).reshape(spec.in_chans, spec.image_size, spec.image_size)
    mean, std = torch.tensor(spec.mean)[:, None, None], torch.tensor(spec.std)[:, None, None]
    return (x.float() / 255 - mean) / std


def test_validation_split_is_fixed_disjoint_and_unaugmented(tmp_path):
    arrays = make_mnist(tmp_path)
    a = DATASETS["mnist"].load(cfg_for("mnist", tmp_path, **{"train.seed": 1}).data)
    b = DATASETS["mnist"].load(cfg_for("mnist", tmp_path, **{"train.seed": 2}).data)
    assert torch.equal(a.val.index, b.val.index) and len(a.val) == round(0.1 * N_TRAIN)
    assert set(a.val.index.tolist()).isdisjoint(a.train.index.tolist())
    assert sorted(a.val.index.tolist() + a.train.index.tolist()) == list(range(N_TRAIN))
    assert len(a.test) == N_TEST
    # No randomness outside training: every read is the written image, normalised, uncropped.
    torch.manual_seed(0)
    for _ in range(2):
        for i in range(5):
            raw = arrays["train"][0][int(a.val.index[i])]
            torch.testing.assert_close(a.val[i][0], normalised(raw, "mnist"))
            torch.testing.assert_close(a.test[i][0], normalised(arrays["t10k"][0][i], "mnist"))


def _shifts(img: torch.Tensor, pad: int):
    """Every translation of ``img`` by up to ``pad`` pixels, exposed border black."""
    padded = torch.nn.functional.pad(img, (pad,) * 4)
    size = img.shape[-1]
    return [
        padded[..., i : i + size, j : j + size]
        for i in range(2 * pad + 1)
        for j in range(2 * pad + 1)
    ]


@pytest.mark.parametrize("name, flips", [("mnist", False), ("cifar10", True)])
def test_training_augmentation_crops_and_flips_only_cifar(tmp_path, name, flips):
    arrays = make_mnist(tmp_path) if name == "mnist" else make_cifar(tmp_path)
    spec = images.IMAGE_DATASETS[name]
    train = DATASETS[name].load(cfg_for(name, tmp_path).data).train
    raw = train.images[train.index[0]]
    shifted = _shifts(raw, spec.crop_padding)
    mirrored = _shifts(raw.flip(-1), spec.crop_padding)
    torch.manual_seed(0)
    kinds = set()
    for _ in range(60):
        x = train[0][0] * train.std + train.mean
        pixels = torch.round(x * 255).to(torch.uint8)
        if any(torch.equal(pixels, s) for s in shifted):
            kinds.add("shift")
        elif any(torch.equal(pixels, s) for s in mirrored):
            kinds.add("mirror")
        else:
            kinds.add("other")
    assert kinds == ({"shift", "mirror"} if flips else {"shift"})
    # data.augment=false: every read of a training image is the written image, normalised.
    off = DATASETS[name].load(cfg_for(name, tmp_path, **{"data.augment": False}).data).train
    if name == "mnist":
        written = arrays["train"][0]
    else:
        written = np.concatenate([arrays[f][0] for f in spec.train_files])
    for _ in range(2):
        for i in range(5):
            torch.testing.assert_close(off[i][0], normalised(written[int(off.index[i])], name))


@pytest.mark.parametrize("name, patch", [("mnist", 7), ("cifar10", 8), ("cifar100", 8)])
def test_train_one_epoch_then_eval_from_the_cli(tmp_path, name, patch):
    make_mnist(tmp_path / "data") if name == "mnist" else make_cifar(
        tmp_path / "data", 10 if name == "cifar10" else 100
    )
    cfg = cfg_for(name, tmp_path / "data", **TINY_VIT, **{"model.patch_size": patch})
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["test"]["samples"] == N_TEST
    result = runner.invoke(app, ["eval", str(tmp_path / "run" / "best.pt"), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["dataset"] == name and record["samples"] == N_TEST
    assert record["acc"] == pytest.approx(summary["test"]["acc"])


# A ViT small enough to train one epoch of the tiny MNIST files in a second.
TINY_MNIST_MODEL = [
    *("--set", "model.dim=16", "--set", "model.depth=2", "--set", "model.heads=2"),
    *("--set", "model.patch_size=7", "--device", "cpu"),
]


def test_odetx_train_on_a_folder_of_mnist_files(tmp_path):
    make_mnist(tmp_path / "data")
    result = runner.invoke(
        app,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "data"),
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--out",
            str(tmp_path / "run"),
            *TINY_MNIST_MODEL,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"]["samples"] == N_TEST


def test_missing_files_are_one_line_naming_folder_and_download(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        app,
        ["train", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(tmp_path / "run")],
    )
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    line = result.output.strip()
    assert str(empty / "MNIST" / "raw") in line and "--download" in line
    assert "train-images-idx3-ubyte" in line and "mnist" in line


def test_download_flag_reaches_the_fetcher(tmp_path, monkeypatch):
    fetched = []

    def fake_fetch(spec, root):  # stands in for torchvision's download: writes the files
        fetched.append((spec.name, root))
        make_mnist(root)

    monkeypatch.setattr(images, "fetch", fake_fetch)
    root = tmp_path / "data"
    args = [
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(root),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        *TINY_MNIST_MODEL,
    ]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "no")]).exit_code != 0
    assert fetched == []  # never without --download
    result = runner.invoke(app, [*args, "--download", "--out", str(tmp_path / "yes")])
    assert result.exit_code == 0, result.output
    assert fetched == [("mnist", root)]


def test_corrupt_files_are_data_errors(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is truncated"):
        DATASETS["mnist"].load(cfg_for("mnist", tmp_path).data)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickles_cannot_run_code(tmp_path, capsys):
    make_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps({b"data": _Exploit()})
    )
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        DATASETS["cifar10"].load(cfg_for("cifar10", tmp_path).data)
    assert "pwned" not in capsys.readouterr().out
