"""Model files are told apart by content, and every way of reading one fails in one line.

A checkpoint, a TorchScript export, a ``.pt2`` program and an ONNX graph of one tiny model
are written once; then they are renamed to each other's suffixes (and read as what they
are), cut at many offsets and bit-flipped (each variant loads or raises an
:class:`~odetx.errors.OdetxError` in one line naming the file), and handed to commands
that cannot take them (which say what the file is and what they need).
"""

from __future__ import annotations

import re
import shutil

import pytest
import torch
from torchvision.io import write_png
from typer.testing import CliRunner

from odetx.artefacts.modelfile import CHECKPOINT, ONNX, PT2, RUN, TORCHSCRIPT, identify
from odetx.cli.app import app
from odetx.errors import CheckpointError, ModelFileError
from odetx.evaluation import load_model
from odetx.evaluation.predict import load_predictor
from odetx.export import export_checkpoint
from tests.test_export import make_checkpoint
from tests.test_fuzz_readers import SEED, flip_in_member, mutants, outcome

pytest.importorskip("onnxruntime")
runner = CliRunner()
KINDS = {".pt": CHECKPOINT, ".ts": TORCHSCRIPT, ".pt2": PT2, ".onnx": ONNX}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``suffix -> path`` of the same tiny ViT as a checkpoint and as each export."""
    root = tmp_path_factory.mktemp("modelfile")
    out = {".pt": make_checkpoint(root / "m.pt")}
    for fmt, suffix in (("torchscript", ".ts"), ("pt2", ".pt2"), ("onnx", ".onnx")):
        out[suffix] = export_checkpoint(out[".pt"], root / f"m{suffix}", fmt, batch_sizes=(1,)).path
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "x.png"
    gen = torch.Generator().manual_seed(0)
    write_png(torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8, generator=gen), str(path))
    return path


def one_line(result, code, *needles):
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_each_file_is_known_by_its_content_under_any_name(files, tmp_path):
    assert identify(files[".pt"].parent).kind is RUN
    for suffix, path in files.items():
        for name in ("x.pt", "x.ts", "x.pt2", "x.onnx", "x.bin", "x"):
            renamed = tmp_path / name
            shutil.copyfile(path, renamed)
            assert identify(renamed).kind is KINDS[suffix], (suffix, name)
    # Read as what they are: each renamed file predicts like the checkpoint.
    x = torch.zeros(1, 1, 8, 8)
    want = load_predictor(files[".pt"]).model(x)
    for suffix, name in ((".pt", "c.ts"), (".onnx", "o.pt2"), (".ts", "t.onnx"), (".pt2", "p.ts")):
        shutil.copyfile(files[suffix], tmp_path / name)
        got = load_predictor(tmp_path / name).model(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_other_bytes_are_no_model_file(tmp_path):
    for name, blob, note in (
        ("empty.onnx", b"", "an empty file"),
        ("text.pt2", b"hello", "neither a torch archive nor an ONNX graph"),
        ("zip.ts", b"PK\x03\x04" + b"\0" * 60, "a damaged zip"),
    ):
        (tmp_path / name).write_bytes(blob)
        found = identify(tmp_path / name)
        assert found.kind is None and found.note == note, name
    with pytest.raises(ModelFileError, match="no model file at"):
        identify(tmp_path / "missing.ts")


@pytest.mark.parametrize(
    ("suffix", "cuts", "flips"), [(".ts", 30, 30), (".pt2", 20, 20), (".onnx", 30, 30)]
)
def test_cut_and_flipped_exports_load_or_fail_in_one_line(files, tmp_path, suffix, cuts, flips):
    good = files[suffix].read_bytes()
    path = tmp_path / f"m{suffix}"
    seen = set()
    for label, blob in mutants(good, SEED, cuts=cuts, flips=flips):
        path.write_bytes(blob)
        got = outcome(label, lambda: load_predictor(path), ModelFileError, (str(path),))
        if not label.startswith("flips"):
            assert got == "error", f"{label} of {len(good)} bytes loaded"
        seen.add(got)
    assert "error" in seen


@pytest.mark.parametrize("suffix", [".ts", ".pt2", ".onnx"])
def test_commands_that_need_a_checkpoint_say_what_they_were_given(files, suffix, tmp_path):
    path, title = files[suffix], KINDS[suffix].title
    need = "needs a checkpoint or run directory"
    for args, who in (
        (["eval", path], "eval"),
        (["inspect", path], "inspect"),
        (["export", path, "--out", tmp_path / "again.ts"], "export"),
        (["generate", path, "--prompt", "a"], "generate"),
        (["train", "--init-from", path, "--out", tmp_path / "run"], "--init-from"),
        (["train", "--resume", path], "--resume"),
    ):
        result = runner.invoke(app, [str(a) for a in args])
        one_line(result, 2, f"{path} is {title}; {who} {need}")
    assert sorted(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match=re.escape(f"is {title}; this command {need}")):
        load_model(path)


def test_damaged_model_files_are_one_line_in_predict(files, image, tmp_path):
    cases = {
        "cut.ts": (files[".ts"].read_bytes()[:20000], "a TorchScript export, but corrupt"),
        "cut.pt2": (files[".pt2"].read_bytes()[:50000], "a torch.export program (.pt2), but"),
        "cut.onnx": (files[".onnx"].read_bytes()[:50000], "an ONNX export, but corrupt"),
        "empty.onnx": (b"", "the file is corrupt or truncated (an empty file)"),
    }
    for name, (blob, needle) in cases.items():
        (tmp_path / name).write_bytes(blob)
        result = runner.invoke(app, ["predict", str(tmp_path / name), str(image)])
        line = one_line(result, 1, f"cannot read {tmp_path / name}: ", needle)
        assert "file system" not in line
    # Renamed, a file is read as what it holds.
    for name, source in (("ckpt.ts", ".pt"), ("onnx.pt2", ".onnx")):
        shutil.copyfile(files[source], tmp_path / name)
        result = runner.invoke(app, ["predict", str(tmp_path / name), str(image), "--json"])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("suffix", "part"), [(".ts", ".pkl"), (".pt2", "/weights/")])
def test_an_export_whose_bytes_fail_their_checksum_is_refused_before_torch_reads_it(
    files, tmp_path, suffix, part
):
    # torch's archive readers check no checksums: on some flipped bytes of a TorchScript
    # file the unpickler aborts the process, and a flipped weight loads as another value.
    member, blob = flip_in_member(files[suffix].read_bytes(), lambda n: part in n)
    path = tmp_path / f"m{suffix}"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match=f"{re.escape(member)} fails its checksum"):
        load_predictor(path)
