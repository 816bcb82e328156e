"""``--dataset folder``: image folders written here (PNG via torchvision, hand-made PNGs of
other colour types), listed at start, decoded lazily, refused with one line when unusable."""

import json

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, write_png
from typer.testing import CliRunner

from odetx.artefacts import load_checkpoint
from odetx.cli.app import app
from odetx.data import DATASETS, folder
from odetx.data.images import validation_split
from odetx.errors import ConfigError, DataError, DataInputError
from odetx.resolve import build_config
from odetx.training import Trainer
from tests.test_image_decode import GREY_ALPHA, PALETTE, RGBA, png

runner = CliRunner()
CLASSES = ("ant", "bee", "cow")
TINY = {
    "data.name": "folder",
    "model.dim": 16,
    "model.depth": 2,
    "model.heads": 2,
    "model.patch_size": 4,
    "train.epochs": 1,
    "train.batch_size": 16,
    "train.device": "cpu",
    "train.threads": 1,
}
TINY_FLAGS = [a for k, v in TINY.items() if k != "data.name" for a in ("--set", f"{k}={v}")]


def write_images(folder, n, size=8, seed=0, colour=False):
    """``n`` random PNGs (grey, or colour) in ``folder``; returns their pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = torch.randint(
            0, 256, (3 if colour else 1, size, size), dtype=torch.uint8, generator=gen
        )
        write_png(x, str(folder / f"{i:03d}.png"))
        out.append(x)
    return out


def make_folder(root, splits=(("train", 12), ("test", 4)), classes=CLASSES, **kw):
    for s, (split, n) in enumerate(splits):
        for c, name in enumerate(classes):
            write_images(root / split / name, n, seed=100 * s + c, **kw)
    return root


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def first_record(output):
    return json.loads(next(line for line in output.splitlines() if line.startswith("{")))


def one_line_exit_2(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


# ---------------------------------------------------------------- listing and splits


def test_listing_classes_labels_and_a_carved_validation_split(tmp_path):
    root = make_folder(tmp_path / "d", splits=(("train", 20), ("test", 3)))
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    (root / "train" / "ant" / ".hidden.png").write_bytes(b"x")
    write_images(root / "train" / "bee" / "nested", 2, seed=9)  # below a class: still that class
    cfg = build_config(overrides={**TINY, "data.root": str(root)})
    assert cfg.data.classes == CLASSES
    splits = DATASETS["folder"].load(cfg.data)
    n = 3 * 20 + 2
    train_idx, val_idx = validation_split(n)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (
        len(train_idx),
        len(val_idx),
        9,
    )
    files = splits.train.files
    for j in range(n):
        assert files.path(j).parent.relative_to(root / "train").parts[0] == CLASSES[files.labels[j]]
    assert np.array_equal(splits.val.index, val_idx)
    x, y = splits.test[0]
    assert x.shape == (1, 8, 8) and y == 0


def test_settle_records_size_channels_and_statistics_of_the_training_images(tmp_path):
    root = tmp_path / "d"
    pixels = []
    for c, name in enumerate(CLASSES[:2]):
        # Colour PNGs holding grey pictures: grey is what they show, so channels = 1.
        grey = write_images(root / "train" / name, 6, seed=c)
        for i, x in enumerate(grey):
            write_png(x.expand(3, 8, 8).contiguous(), str(root / "train" / name / f"{i:03d}.png"))
        pixels += grey
        write_images(root / "val" / name, 2, seed=10 + c)
    # A rarer size: the side is the most common one's; these count in the statistics too,
    # each image weighing the same.
    pixels += write_images(root / "train" / "ant" / "big", 2, size=12, seed=7)
    data = build_config(overrides={**TINY, "data.root": str(root)}).data
    assert (data.image_size, data.channels, data.classes) == (8, 1, ("ant", "bee"))
    means = [x.double().mean() / 255 for x in pixels]
    squares = [(x.double() / 255).pow(2).mean() for x in pixels]
    mean = sum(means) / len(pixels)
    std = (sum(squares) / len(pixels) - mean**2).sqrt()
    assert data.mean == pytest.approx((float(mean),), abs=2e-6)
    assert data.std == pytest.approx((float(std),), abs=2e-6)
    # Settled values are kept as given: nothing is measured or decoded again.
    assert folder.settle(data) is data


def test_colour_images_settle_as_rgb_and_mixed_files_all_come_out_one_shape(tmp_path):
    root = make_folder(tmp_path / "d", splits=(("train", 4), ("test", 1)), colour=True)
    rng = np.random.default_rng(0)
    extra = root / "train" / "cow"
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    (extra / "palette.png").write_bytes(
        png(rng.integers(0, 4, (5, 9), dtype=np.uint8), PALETTE, palette=palette)
    )
    (extra / "ga.png").write_bytes(
        png(rng.integers(0, 256, (20, 6, 2), dtype=np.uint8), GREY_ALPHA)
    )
    (extra / "rgba.png").write_bytes(png(rng.integers(0, 256, (7, 7, 4), dtype=np.uint8), RGBA))
    (extra / "photo.JPG").write_bytes(
        encode_jpeg(torch.full((3, 16, 10), 99, dtype=torch.uint8)).numpy().tobytes()
    )
    cfg = build_config(overrides={**TINY, "data.root": str(root), "data.augment": False})
    assert (cfg.data.image_size, cfg.data.channels) == (8, 3)
    train = DATASETS["folder"].load(cfg.data).train
    shapes = {tuple(item[0].shape) for item in (train[i] for i in range(len(train)))}
    assert shapes == {(3, 8, 8)}


def test_nothing_is_decoded_at_start_and_training_items_are_augmented(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d")
    cfg = build_config(overrides={**TINY, "data.root": str(root), "data.randaugment": "rand-m9-n2"})
    calls = []
    real = folder.read_image
    monkeypatch.setattr(folder, "read_image", lambda *a: calls.append(a) or real(*a))
    splits = DATASETS["folder"].load(cfg.data)
    assert calls == []  # listing only
    torch.manual_seed(0)
    assert any(not torch.equal(splits.train[i][0], splits.train[i][0]) for i in range(8))
    assert all(torch.equal(splits.val[i][0], splits.val[i][0]) for i in range(len(splits.val)))
    assert len(calls) > 0


def test_folder_keys_are_refused_on_other_datasets():
    with pytest.raises(ConfigError) as info:
        build_config(overrides={"data.image_size": 32})
    assert info.value.key == "data.image_size" and "folder" in str(info.value)


def test_a_worker_failure_reaches_the_user_as_its_own_line():
    wrapped = (
        "Caught DataInputError in DataLoader worker process 1.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\nodetx.errors.DataInputError: a/b.png: empty\n'
    )
    assert str(DataInputError(wrapped)) == "a/b.png: empty"
    assert str(DataError("plain message")) == "plain message"


# ---------------------------------------------------------------- unusable input: one line, exit 2


def _no_class_images(root):
    make_folder(root)
    for f in (root / "train" / "bee").iterdir():
        f.unlink()
    (root / "train" / "bee" / "readme.txt").write_text("no images here")


def _other_val_classes(root):
    make_folder(root, splits=(("train", 3),))
    make_folder(root, splits=(("val", 2),), classes=("ant", "cow", "dog"))


def _other_test_classes(root):
    make_folder(root, splits=(("train", 3),), classes=("ant", "bee"))
    make_folder(root, splits=(("test", 1),), classes=("ant", "bee", "eel"))


@pytest.mark.parametrize(
    "build, flags, needle",
    [
        (lambda r: None, [], "no such folder"),
        (lambda r: r.mkdir(), [], "has no train/ folder"),
        (lambda r: (r / "train").mkdir(parents=True), [], "holds no class folders"),
        (_no_class_images, [], "bee holds no images"),
        (lambda r: make_folder(r, classes=("ant",)), [], "needs two or more"),
        (_other_val_classes, [], "lacks bee and adds dog"),
        (_other_test_classes, [], "test has other class folders than"),
        (
            lambda r: make_folder(r) and (r / "train" / "ant" / "bad.png").write_bytes(b""),
            ["--set", "data.strict=true"],
            "bad.png: empty file (0 bytes)",
        ),
    ],
    ids=[
        "missing",
        "empty",
        "no-classes",
        "empty-class",
        "one-class",
        "val-classes",
        "test-classes",
        "strict",
    ],
)
def test_unusable_folders_are_one_line_and_exit_2(tmp_path, build, flags, needle):
    root = tmp_path / "d"
    build(root)
    result = invoke(
        "train",
        "--dataset",
        "folder",
        "--data-dir",
        root,
        *TINY_FLAGS,
        *flags,
        "--out",
        tmp_path / "run",
    )
    assert needle in one_line_exit_2(result)


def test_without_data_dir_is_one_line(tmp_path):
    result = invoke("train", "--dataset", "folder", *TINY_FLAGS, "--out", tmp_path / "run")
    assert "--data-dir" in one_line_exit_2(result)


def test_strict_refusal_from_a_loader_worker_is_one_line(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "train" / "bee" / "broken.png").write_bytes(b"\x89PNG broken")
    settled = ["--set", "data.image_size=8", "--set", "data.channels=1", "--set", "data.mean=[0.5]"]
    settled += [
        "--set",
        "data.std=[0.25]",
        "--set",
        "data.num_workers=2",
        "--set",
        "data.strict=true",
    ]
    result = invoke(
        "train",
        "--dataset",
        "folder",
        "--data-dir",
        root,
        *TINY_FLAGS,
        *settled,
        "--out",
        tmp_path / "r",
    )
    # Met in training, after the run's header: the failure itself is one line.
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "broken.png: not an image that decodes" in line


# ---------------------------------------------------------------- runs


def test_an_undecodable_file_is_named_once_left_out_and_counted(tmp_path, capfd):
    root = make_folder(tmp_path / "d")
    (root / "train" / "cow" / "zz-bad.png").write_bytes(b"GIF89a, truncated")
    cfg = build_config(
        overrides={**TINY, "data.root": str(root), "train.epochs": 2, "data.num_workers": 2}
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    err = capfd.readouterr().err
    assert err.count("zz-bad.png") == 1 and "left out" in err
    assert summary["undecodable_files"] == 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["undecodable_files"] == 1


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder")
    root = make_folder(base / "d", colour=True)
    result = invoke(
        "train", "--dataset", "folder", "--data-dir", root, *TINY_FLAGS, "--out", base / "run"
    )
    assert result.exit_code == 0, result.output
    return base / "run", root


def test_class_names_travel_in_the_checkpoint_and_config(folder_run):
    run, _ = folder_run
    ckpt = load_checkpoint(run / "best.pt")
    assert tuple(ckpt["data_info"]["classes"]) == CLASSES
    assert ckpt["data_info"]["in_chans"] == 3 and ckpt["data_info"]["image_size"] == 8
    assert "- ant" in (run / "config.yaml").read_text()


def test_predict_eval_and_compare_name_the_classes(folder_run, tmp_path):
    run, root = folder_run
    image = root / "test" / "bee" / "000.png"
    result = invoke("predict", run, image, "--json", "--top-k", "3")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert {c["class"] for c in record["top"]} <= set(CLASSES) and len(record["top"]) == 3
    table = invoke("predict", run, image)
    assert "ant" in table.output and "bee" in table.output
    result = invoke("eval", run, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["classes"] == list(CLASSES)
    result = invoke("compare", run / "best.pt", "--solver", "euler", "--steps", "1,2")
    assert result.exit_code == 0, result.output
    assert "classes, in label order: ant, bee, cow" in result.output


def test_an_export_predicts_names_with_the_runs_statistics(folder_run, tmp_path):
    run, root = folder_run
    out = tmp_path / "m.ts"
    result = invoke("export", run, "--format", "torchscript", "--out", out)
    assert result.exit_code == 0, result.output
    image = root / "test" / "cow" / "001.png"
    from_ckpt, from_export = (
        first_record(invoke("predict", m, image, "--json").output) for m in (run, out)
    )
    assert from_export["top"][0]["class"] in CLASSES
    assert [c["class"] for c in from_export["top"]] == [c["class"] for c in from_ckpt["top"]]
    for a, b in zip(from_export["top"], from_ckpt["top"], strict=True):
        assert a["prob"] == pytest.approx(b["prob"], abs=1e-5)


def test_eval_on_a_folder_of_other_classes_is_one_line(folder_run, tmp_path):
    run, _ = folder_run
    other = make_folder(tmp_path / "o", classes=("ant", "bee", "dog"))
    result = invoke("eval", run, "--data-dir", other)
    assert "the model's classes are ant, bee, cow" in one_line_exit_2(result)


def test_a_folder_without_test_trains_and_says_there_is_no_test_split(tmp_path):
    root = make_folder(tmp_path / "d", splits=(("train", 10),))
    (root / "train" / "ant" / "zz.png").write_bytes(b"")  # named once, left out, counted
    result = invoke(
        "train", "--dataset", "folder", "--data-dir", root, *TINY_FLAGS, "--out", tmp_path / "run"
    )
    assert result.exit_code == 0, result.output
    assert "no test split" in result.output
    assert result.output.count("zz.png: empty file (0 bytes); left out") == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["undecodable_files"] == 1
    assert summary["test"] is None and summary["test_last"] is None
    assert "has no test/ folder" in summary["no_test_split"] and summary["nfe_forward"] == 2
    assert "no test split" in one_line_exit_2(invoke("eval", tmp_path / "run"))
    result = invoke("eval", tmp_path / "run", "--split", "val", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["samples"] == 3
    table = invoke("compare", tmp_path / "run")
    assert table.exit_code == 0, table.output
