"""The one image decoder (``odetx.data.decode``) behind image folders and ``odetx predict``.

Expected values are computed here from the pixel values written, not by the decoder:
PNGs are written byte by byte (W3C PNG spec) so every colour type and bit depth is
exactly what the test says it is; GIF, WebP and BMP files come from Pillow.
"""

import io
import json
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.data.decode import LUMA, decode, read_image
from odetx.errors import DataError
from odetx.evaluation import load_model
from tests.test_export import make_checkpoint
from tests.test_predict import digits_stats, probabilities, records

runner = CliRunner()
GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6  # PNG colour types


def png(pixels: np.ndarray, colour_type: int, bit_depth: int = 8, palette=None) -> bytes:
    """A PNG by hand: IHDR, PLTE for palettes, one IDAT of unfiltered rows, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).astype(">u2" if bit_depth == 16 else "u1")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    )
    if palette is not None:
        out += chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).tobytes())
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def by_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 grey of ``(H, W, 3)`` values, as float64."""
    return rgb.astype(np.float64) @ np.array(LUMA)


def as_chw(x: np.ndarray) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` as a ``(C, H, W)`` float64 tensor."""
    x = x[..., None] if x.ndim == 2 else x
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).double()


def pillow(image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


RNG = np.random.default_rng(0)
V16 = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
V16_RGB = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)


def test_16_bit_png_is_its_8_bit_copy_to_rounding():
    v8 = np.round(V16 / 257).astype(np.uint8)  # the 8-bit copy of the same picture
    x16 = decode(png(V16, GREY, 16), 1).double()
    x8 = decode(png(v8, GREY, 8), 1).double()
    assert x16.shape == (1, 5, 7) and x16.dtype == torch.float64
    assert torch.allclose(x16, as_chw(V16 / 65535.0), atol=1e-6)  # not 257 times too bright
    assert torch.allclose(x8, as_chw(v8 / 255.0), atol=1e-6)
    assert (x16 - x8).abs().max() <= 0.5 / 255 + 1e-6
    assert x16.max() <= 1.0


def test_16_bit_colour_png_in_rgb_and_grey():
    x = decode(png(V16_RGB, RGB, 16), 3).double()
    assert torch.allclose(x, as_chw(V16_RGB / 65535.0), atol=1e-6)
    grey = decode(png(V16_RGB, RGB, 16), 1).double()
    assert torch.allclose(grey, as_chw(by_luma(V16_RGB) / 65535.0), atol=2e-4)


def test_palette_png_is_read_as_its_colours():
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    index = np.array([[2, 0, 3, 1], [1, 1, 0, 3]], dtype=np.uint8)
    data = png(index, PALETTE, palette=colours)
    rgb = colours[index]  # (2, 4, 3): what the picture shows
    assert torch.allclose(decode(data, 3).double(), as_chw(rgb / 255.0), atol=1e-6)
    grey = decode(data, 1).double()
    assert torch.allclose(grey, as_chw(by_luma(rgb) / 255.0), atol=1 / 255)


def test_alpha_is_dropped_and_colour_converted():
    grey = RNG.integers(0, 256, (3, 4), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (3, 4), dtype=np.uint8)
    ga = png(np.stack([grey, alpha], -1), GREY_ALPHA)
    assert torch.allclose(decode(ga, 1).double(), as_chw(grey / 255.0), atol=1e-6)
    assert torch.allclose(
        decode(ga, 3).double(), as_chw(np.stack([grey] * 3, -1) / 255.0), atol=1e-6
    )
    rgba = RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    data = png(rgba, RGBA)
    assert torch.allclose(decode(data, 3).double(), as_chw(rgba[..., :3] / 255.0), atol=1e-6)
    assert torch.allclose(
        decode(data, 1).double(), as_chw(by_luma(rgba[..., :3]) / 255.0), atol=1 / 255
    )


def test_gif_webp_and_animated_gif():
    Image = pytest.importorskip("PIL.Image")
    rgb = np.array([[[200, 10, 10], [10, 200, 10]], [[10, 10, 200], [90, 90, 90]]], dtype=np.uint8)
    gif = pillow(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4), "GIF")
    assert torch.allclose(decode(gif, 3).double(), as_chw(rgb / 255.0), atol=1e-6)
    # torchvision decodes GIFs in colour whatever mode is asked: grey is made here.
    assert torch.allclose(decode(gif, 1).double(), as_chw(by_luma(rgb) / 255.0), atol=1e-5)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 128, np.uint8)], -1)
    webp = pillow(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True)
    assert torch.allclose(decode(webp, 3).double(), as_chw(rgb / 255.0), atol=1e-6)
    assert torch.allclose(decode(webp, 1).double(), as_chw(by_luma(rgb) / 255.0), atol=1e-5)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    animated = pillow(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode(animated, 3).shape == (3, 2, 2)  # the first frame
    assert torch.allclose(decode(animated, 3).double(), as_chw(rgb / 255.0), atol=1e-6)


def test_grey_jpeg_read_as_colour_repeats_it():
    grey = torch.full((1, 8, 8), 77, dtype=torch.uint8)
    x = decode(encode_jpeg(grey, quality=100).numpy().tobytes(), 3)
    assert x.shape == (3, 8, 8) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert x.mean().item() == pytest.approx(77 / 255, abs=1 / 255)


@pytest.mark.parametrize(
    "blob, needle",
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, not an image\n", "not an image that decodes"),
        (png(np.zeros((4, 4), np.uint8), GREY)[:40], "not an image that decodes"),  # truncated
    ],
    ids=["empty", "text", "truncated-png"],
)
def test_what_does_not_decode_is_one_short_data_error(blob, needle):
    with pytest.raises(DataError, match=re.escape(needle)) as info:
        decode(blob, 1)
    assert "\n" not in str(info.value)


def test_bmp_is_not_decoded():
    Image = pytest.importorskip("PIL.Image")
    bmp = pillow(Image.fromarray(np.zeros((4, 4, 3), np.uint8)), "BMP")
    with pytest.raises(DataError, match="not an image that decodes"):
        decode(bmp, 3)


def test_read_image_resizes_and_names_an_unreadable_path(tmp_path):
    (tmp_path / "wide.png").write_bytes(png(np.full((6, 10), 255, np.uint8), GREY))
    x = read_image(tmp_path / "wide.png", 1, 8)
    assert x.shape == (1, 8, 8) and torch.allclose(x, torch.ones(1, 8, 8), atol=1e-6)
    with pytest.raises(DataError, match="cannot read it"):
        read_image(tmp_path / "missing.png", 1, 8)


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("decode") / "vit.pt", arch="sequential")


def test_predict_reads_16_bit_png_like_its_8_bit_copy_and_reports_bad_inputs(vit, tmp_path):
    v16 = np.random.default_rng(1).integers(0, 65536, (8, 8), dtype=np.uint16)
    v8 = np.round(v16 / 257).astype(np.uint8)
    (tmp_path / "a16.png").write_bytes(png(v16, GREY, 16))
    (tmp_path / "a8.png").write_bytes(png(v8, GREY, 8))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"junk")
    names = ["empty.png", "a16.png", "junk.png", "a8.png"]
    result = runner.invoke(
        app, ["predict", str(vit), *(str(tmp_path / n) for n in names), "--json", "--top-k", "10"]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 2 and "Traceback" not in result.output
    assert "empty.png: empty file (0 bytes)" in lines[0] and "junk.png: not an image" in lines[1]
    got = {
        r["input"].rsplit("/", 1)[-1]: {c["class"]: c["prob"] for c in r["top"]}
        for r in records(result.output)
    }
    assert set(got) == {"a16.png", "a8.png"}
    mean, std = digits_stats()
    x = torch.from_numpy(((v16 / 65535.0 - mean) / std).astype(np.float32))[None, None]
    want = probabilities(load_model(vit).model, x)
    for c, p in got["a16.png"].items():
        assert p == pytest.approx(float(want[c]), abs=1e-5)
        assert p == pytest.approx(got["a8.png"][c], abs=2e-3)
    json.dumps(got)  # plain data
