"""``odetx export --format onnx``: onnxruntime, called here directly, reproduces the eager
model at several batch sizes and sequence lengths; the metadata round-trips; adaptive
solvers are refused with one line and no file."""

import json

import pytest
import torch
from typer.testing import CliRunner

from odetx.artefacts import save_checkpoint
from odetx.cli.app import app
from odetx.data import DATASETS
from odetx.evaluation import load_model
from odetx.models import build_model
from odetx.resolve import build_config
from tests.test_export import make_checkpoint
from tests.test_lm import TINY_LM, write_corpus

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

runner = CliRunner()
TOL = 1e-4
BATCHES = (1, 3, 17)


def lm_checkpoint(path, folder):
    write_corpus(folder)
    cfg = build_config(overrides={**TINY_LM, "data.root": str(folder)})
    info = DATASETS[cfg.data.name].info(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.solver, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    payload = {"config": cfg.to_dict(), "data_info": info.__dict__, "model": model.state_dict()}
    save_checkpoint(path, payload)
    return path


def inputs_for(info, batch, length, gen):
    """What a data loader yields: images, token ids, or padded ids with their mask."""
    if info.kind == "image":
        return (torch.randn(batch, info.in_chans, info.image_size, info.image_size, generator=gen),)
    if info.kind == "text":
        return (torch.randint(0, info.vocab_size, (batch, length), generator=gen),)
    mask = torch.arange(length)[None, :] < torch.randint(1, length + 1, (batch, 1), generator=gen)
    tokens = torch.randint(1, info.vocab_size, (batch, length), generator=gen)
    return tokens.masked_fill(~mask, 0), mask


CASES = {
    "vit-sequential": dict(arch="sequential"),
    "vit-parallel": dict(arch="parallel"),
    "vit-strang": dict(arch="strang"),
    "vit-shared-rk4": {"arch": "sequential", "model.groups": 1, "solver.method": "rk4"},
    "encoder": dict(encoder=True, arch="strang"),
    "vit-conv-stem": {"model.stem": "conv", "model.stem_layers": 2},
    "gpt": None,
}
FAST = {"vit-sequential"}


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in CASES]
)
def test_onnxruntime_matches_the_eager_model(name, tmp_path):
    ckpt = tmp_path / "model.pt"
    if CASES[name] is None:
        lm_checkpoint(ckpt, tmp_path)
    else:
        make_checkpoint(ckpt, **CASES[name])
    out = tmp_path / "model.onnx"
    result = runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output

    loaded = load_model(ckpt)
    info = loaded.info
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    lengths = [None] if info.kind == "image" else [info.max_len, max(1, info.max_len - 5)]
    gen = torch.Generator().manual_seed(7)
    for batch in BATCHES:
        for length in lengths:
            x = inputs_for(info, batch, length, gen)
            with torch.no_grad():
                want = loaded.model(*x)
            got = session.run(None, {n: t.numpy() for n, t in zip(names, x, strict=True)})[0]
            assert got.shape == tuple(want.shape)
            assert (torch.from_numpy(got) - want).abs().max() < TOL, (batch, length)

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    meta = json.loads(props["odetx.json"])
    assert meta["format"] == "onnx"
    assert meta["config"]["model"] == loaded.config.to_dict()["model"]
    assert meta["data_info"]["kind"] == info.kind


def test_an_adaptive_solver_is_refused_in_one_line_and_writes_nothing(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        app, ["export", str(ckpt), "--format", "onnx", "--solver", "dopri5", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "dopri5 is an adaptive solver" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
