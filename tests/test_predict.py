"""``odetx predict``: image files and text lines, preprocessed as the run's data was,
give the model's own probabilities on a tensor built here by plain arithmetic; bad
inputs are one line each and the rest are still predicted."""

import json

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, write_png
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data import digits
from odetx.evaluation import load_model
from tests.test_export import make_checkpoint

runner = CliRunner()


def digits_stats():
    """Mean and std of the digits' training split on pixels in [0, 1] (data are 0..16)."""
    pixels, labels = digits.read_raw()
    train = pixels[digits.stratified_split(labels)["train"]].astype(np.float64) / 16.0
    return train.mean(), train.std(ddof=1)


def probabilities(model, x):
    with torch.no_grad():
        return model(x).double().softmax(-1)[0]


def records(output):
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("predict") / "vit.pt", arch="sequential")


def test_png_and_jpeg_give_the_models_probabilities(vit, tmp_path):
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8, generator=gen)
    write_png(pixels, str(tmp_path / "a.png"))
    jpeg = encode_jpeg(pixels.expand(3, 8, 8).contiguous(), quality=95)  # RGB into grey
    (tmp_path / "b.jpg").write_bytes(jpeg.numpy().tobytes())
    (tmp_path / "c.txt").write_text("not an image\n")
    args = ["predict", str(vit), str(tmp_path / "a.png"), str(tmp_path / "c.txt")]
    result = runner.invoke(app, [*args, str(tmp_path / "b.jpg"), "--json", "--top-k", "3"])
    assert result.exit_code == 1
    assert "c.txt: not an image that decodes" in result.output
    got = records(result.output)
    assert [r["input"][-5:] for r in got] == ["a.png", "b.jpg"]

    model = load_model(vit).model
    mean, std = digits_stats()
    x = (pixels.double() / 255.0 - mean) / std
    want = probabilities(model, x.float()[None])
    top = want.topk(3)
    assert [c["class"] for c in got[0]["top"]] == top.indices.tolist()
    assert [c["prob"] for c in got[0]["top"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    # The JPEG's grey is read back by the test's own luma of its decoded RGB.
    from torchvision.io import decode_jpeg

    rgb = decode_jpeg(jpeg).double()
    grey = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).round()[None]
    want_jpeg = probabilities(model, ((grey / 255.0 - mean) / std).float()[None])
    probs = {c["class"]: c["prob"] for c in got[1]["top"]}
    for c, p in probs.items():
        assert p == pytest.approx(float(want_jpeg[c]), abs=2e-2)


def test_parity_lines_from_stdin_and_bad_lines(tmp_path):
    ckpt = make_checkpoint(tmp_path / "enc.pt", encoder=True, arch="strang")
    result = runner.invoke(
        app, ["predict", str(ckpt), "-", "--json", "--top-k", "9"], input="0110\n01x1\n1\n"
    )
    assert result.exit_code == 1
    assert "-:2:" in result.output and "0s and 1s" in result.output
    got = records(result.output)
    assert [r["input"] for r in got] == ["-:1", "-:3"]
    model = load_model(ckpt).model
    for record, bits in zip(got, ["0110", "1"], strict=True):
        tokens = torch.tensor([[1 + int(b) for b in bits]])  # bit 0 -> 1, bit 1 -> 2
        want = probabilities(lambda t: model(t, t != 0), tokens)
        assert len(record["top"]) == 2  # capped at the class count
        assert record["top"][0]["class"] == int(want.argmax())
        assert record["top"][0]["prob"] == pytest.approx(float(want.max()), abs=1e-6)


@pytest.mark.slow
def test_checkpoint_and_every_export_give_the_same_top_k(vit, tmp_path):
    pytest.importorskip("onnxruntime")
    gen = torch.Generator().manual_seed(1)
    image = tmp_path / "x.png"
    write_png(torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8, generator=gen), str(image))
    outputs = {}
    for suffix in ("", ".ts", ".pt2", ".onnx"):
        source = vit
        if suffix:
            source = tmp_path / f"m{suffix}"
            made = runner.invoke(app, ["export", str(vit), "--out", str(source)])
            assert made.exit_code == 0, made.output
        result = runner.invoke(app, ["predict", str(source), str(image), "--json"])
        assert result.exit_code == 0, result.output
        outputs[suffix] = records(result.output)[0]["top"]
    ref = outputs[""]
    for suffix, top in outputs.items():
        assert [c["class"] for c in top] == [c["class"] for c in ref], suffix
        assert [c["prob"] for c in top] == pytest.approx([c["prob"] for c in ref], abs=1e-4)
