"""``odetx export --per-sample``: per-sample adaptive steps as TorchScript, tolerances
runtime attributes, each sample's NFE readable; torch.export and ONNX refuse in one line."""

import subprocess
import sys

import pytest
import torch

from odetx.evaluation import load_model
from odetx.export import export_checkpoint
from tests.test_export import assert_refused, invoke, make_checkpoint

PER_SAMPLE = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "per_sample": True}

PLAIN = """
import importlib.abc, json, sys

class NoOdetx(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "odetx":
            raise ImportError("an exported model must not need odetx")

sys.meta_path.insert(0, NoOdetx())
import torch

m = torch.jit.load(sys.argv[1])
inputs = torch.load(sys.argv[2])
out = {}
with torch.no_grad():
    out["logits"] = m(*inputs)
    out["nfe"] = sum(b.sample_nfe for b in m.stack.blocks.children())
    for b in m.stack.blocks.children():
        b.rtol, b.atol = 1e-6, 1e-6
    out["tight"] = m(*inputs)
    out["tight_nfe"] = sum(b.sample_nfe for b in m.stack.blocks.children())
torch.save(out, sys.argv[3])
"""


@pytest.mark.parametrize("encoder", [False, True])
def test_torchscript_runs_per_sample_without_odetx_and_keeps_tolerances_at_runtime(
    tmp_path, encoder
):
    ckpt = make_checkpoint(tmp_path / "m.pt", encoder=encoder, **{"model.groups": 1})
    report = export_checkpoint(ckpt, tmp_path / "m.ts", solver_overrides=PER_SAMPLE)
    assert report.parity.ok and report.solver.per_sample
    assert "per sample" in report.to_dict()["steps"]
    loaded = load_model(ckpt, PER_SAMPLE)
    g = torch.Generator().manual_seed(3)
    if encoder:
        tokens = torch.randint(1, loaded.info.vocab_size, (4, 12), generator=g)
        mask = torch.arange(12)[None, :] < torch.tensor([12, 5, 2, 9])[:, None]
        inputs = (tokens.masked_fill(~mask, 0), mask)
    else:
        inputs = (torch.randn(4, 1, 8, 8, generator=g),)
    torch.save(inputs, tmp_path / "in.pt")
    script = tmp_path / "plain.py"
    script.write_text(PLAIN)
    subprocess.run(
        [sys.executable, script, tmp_path / "m.ts", tmp_path / "in.pt", tmp_path / "out.pt"],
        check=True,
    )
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        eager = loaded.model(*inputs)
    eager_nfe = loaded.model.stack.blocks[0].sample_nfe
    torch.testing.assert_close(out["logits"], eager, rtol=1e-5, atol=1e-5)
    assert torch.equal(out["nfe"], eager_nfe)
    assert (out["tight_nfe"] > out["nfe"]).all()


def test_torch_export_and_onnx_refuse_per_sample_steps_in_one_line(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt")
    before = sorted(tmp_path.iterdir())
    for out in ("m.pt2", "m.onnx"):
        result = invoke(ckpt, "--solver", "dopri5", "--per-sample", "--out", tmp_path / out)
        assert_refused(result, 2, "data-dependent loop", tmp_path, before)


def test_batch_shared_adaptive_export_points_to_per_sample(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt")
    result = invoke(ckpt, "--solver", "dopri5", "--out", tmp_path / "m.ts")
    assert_refused(result, 2, "--per-sample", tmp_path, [tmp_path / "m.pt"])
