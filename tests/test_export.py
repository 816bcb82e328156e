"""``odetx export``: artefacts run in plain torch (no odetx) and match the eager model;
TorchScript keeps ``steps`` a runtime attribute; bad input is one line and leaves no file."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from odetx.artefacts import save_checkpoint
from odetx.cli.app import app
from odetx.data import DATASETS
from odetx.evaluation import load_model
from odetx.export import FORMATS
from odetx.models import build_model
from odetx.resolve import build_config
from tests.conftest import TINY

runner = CliRunner()
TOL = 1e-5
BATCHES = (1, 5)

# Run by a fresh interpreter in which importing odetx fails: the artefact must not need it.
PLAIN = """
import importlib.abc, json, sys

class NoOdetx(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "odetx":
            raise ImportError("an exported model must not need odetx")

sys.meta_path.insert(0, NoOdetx())
import torch

for job in json.load(open(sys.argv[1])):
    extra = {"odetx.json": ""}
    if job["format"] == "torchscript":
        m = torch.jit.load(job["artefact"], _extra_files=extra)
    else:
        m = torch.export.load(job["artefact"], extra_files=extra).module()
    inputs = torch.load(job["inputs"])
    out = {"metadata": extra["odetx.json"]}
    with torch.no_grad():
        for x in inputs:  # warm-up: TorchScript optimises its graph over the first calls
            m(*x)
        out["default"] = [m(*x) for x in inputs]
        if job["steps"]:
            for block in m.stack.blocks.children():
                block.steps = job["steps"]
            out["steps"] = [m(*x) for x in inputs]
    torch.save(out, job["out"])
assert "odetx" not in sys.modules
print("ran without odetx")
"""


def invoke(*args):
    return runner.invoke(app, ["export", *(str(a) for a in args)])


def make_checkpoint(path, arch="parallel", encoder=False, **overrides):
    """A checkpoint of a tiny model with weights large enough that solvers differ visibly."""
    overrides = {**TINY, "model.arch": arch, **overrides}
    if encoder:
        overrides.update(
            {"model.preset": "enc-tiny", "data.name": "parity", "data.seq_len_max": 12}
        )
    cfg = build_config(overrides=overrides)
    info = DATASETS[cfg.data.name].info(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.solver, info)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    payload = {
        "config": cfg.to_dict(),
        "data_info": dataclasses.asdict(info),
        "model": model.state_dict(),
    }
    save_checkpoint(path, payload)
    return path


def sample_inputs(info, gen):
    """Inputs as a data loader yields them: images, or padded tokens with their mask."""
    out = []
    for b in BATCHES:
        if info.kind == "image":
            out.append((torch.randn(b, info.in_chans, info.image_size, info.image_size),))
            continue
        n = info.max_len if b == 1 else info.max_len - 3  # shorter than max_len, too
        mask = torch.arange(n)[None, :] < torch.randint(1, n + 1, (b, 1), generator=gen)
        tokens = torch.randint(1, info.vocab_size, (b, n), generator=gen)
        out.append((tokens.masked_fill(~mask, 0), mask))
    return out


def eager_outputs(ckpt, inputs, solver=None, steps=None):
    model = load_model(ckpt, {"method": solver, "steps": steps}).model
    with torch.no_grad():
        return [model(*x) for x in inputs]


# (name, checkpoint kwargs, format, solver flags); the TorchScript step test uses "steps".
CASES = {
    "vit-sequential-ts": (dict(arch="sequential"), "torchscript", []),
    "vit-sequential-pt2": (dict(arch="sequential"), "pt2", []),
    "vit-parallel-ts": (dict(arch="parallel"), "torchscript", ["--solver", "midpoint"]),
    "vit-parallel-pt2": (dict(arch="parallel"), "pt2", ["--solver", "heun", "--steps", 2]),
    "vit-strang-ts": (dict(arch="strang"), "torchscript", []),
    "vit-strang-pt2": (dict(arch="strang"), "pt2", []),
    "enc-cls-ts": (dict(encoder=True, arch="strang"), "torchscript", []),
    "enc-mean-pt2": (dict(encoder=True, **{"model.pool": "mean"}), "pt2", []),
    "vit-conv-stem-ts": ({"model.stem": "conv", "model.stem_layers": 1}, "torchscript", []),
    "vit-conv-stem-pt2": ({"model.stem": "conv"}, "pt2", []),
}
NEW_STEPS = 3


# Users of ``exported`` are slow: ten exports, then a fresh interpreter (~10 s together).
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported through the CLI, then run once in an interpreter without odetx."""
    root = tmp_path_factory.mktemp("export")
    gen = torch.Generator().manual_seed(123)
    jobs, cases = [], {}
    for name, (ckpt_kw, fmt, flags) in CASES.items():
        ckpt = make_checkpoint(root / f"{name}.pt", **ckpt_kw)
        # One case relies on the defaults: format torchscript, the checkpoint's path as .ts.
        suffix = FORMATS[fmt].suffix
        out_args = [] if name == "vit-sequential-ts" else ["--out", root / f"{name}{suffix}"]
        result = invoke(ckpt, *out_args, "--format", fmt, *flags, "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.output)
        loaded = load_model(ckpt)
        inputs = sample_inputs(loaded.info, gen)
        torch.save(inputs, root / f"{name}.inputs.pt")
        steps = NEW_STEPS if fmt == "torchscript" else 0
        jobs.append(
            {
                "artefact": record["path"],
                "format": fmt,
                "inputs": str(root / f"{name}.inputs.pt"),
                "steps": steps,
                "out": str(root / f"{name}.out.pt"),
            }
        )
        cases[name] = {"ckpt": ckpt, "record": record, "inputs": inputs}
    (root / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, str(root / "jobs.json")],
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ran without odetx" in proc.stdout
    for name in CASES:
        cases[name]["plain"] = torch.load(root / f"{name}.out.pt", weights_only=True)
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_artefact_matches_the_eager_model_without_odetx(exported, name):
    case = exported[name]
    flags = dict(zip(CASES[name][2][::2], CASES[name][2][1::2], strict=True))
    expected = eager_outputs(
        case["ckpt"], case["inputs"], flags.get("--solver"), flags.get("--steps")
    )
    for got, want in zip(case["plain"]["default"], expected, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)
    record = case["record"]
    assert record["parity"]["max_abs_diff"] < TOL
    assert list(record["parity"]["per_batch"]) == ["1", "3", "17"]
    latency = record["latency"]
    # Exported time over eager time (below 1: faster), timed on the largest parity batch.
    assert latency["ratio"] == pytest.approx(latency["exported_ms"] / latency["eager_ms"])
    assert latency["batch"] == 17
    metadata = json.loads(case["plain"]["metadata"])
    assert metadata["config"]["solver"] == record["solver"]
    assert metadata["config"]["model"]["arch"] == CASES[name][0].get("arch", "parallel")


@pytest.mark.slow
def test_solver_flags_choose_the_baked_integrator(exported):
    record = exported["vit-parallel-pt2"]["record"]
    assert (record["solver"]["method"], record["solver"]["steps"]) == ("heun", 2)
    assert record["trained_solver"]["method"] == "euler" and record["solver_overridden"]
    # The default destination: the checkpoint's own path with the format's suffix.
    case = exported["vit-sequential-ts"]
    assert case["record"]["path"] == str(case["ckpt"].with_suffix(".ts"))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[1] == "torchscript"])
def test_torchscript_steps_stay_a_runtime_attribute(exported, name):
    case = exported[name]
    before, after = case["plain"]["default"], case["plain"]["steps"]
    assert max(float((a - b).abs().max()) for a, b in zip(after, before, strict=True)) > 1e-3
    flags = dict(zip(CASES[name][2][::2], CASES[name][2][1::2], strict=True))
    expected = eager_outputs(case["ckpt"], case["inputs"], flags.get("--solver"), NEW_STEPS)
    for got, want in zip(after, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=TOL)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def assert_refused(result, code, needle, folder, before):
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(folder.iterdir()) == before  # nothing written, no temporary file left


def test_adaptive_solvers_are_refused_with_a_fixed_step_alternative(ckpt, tmp_path):
    result = invoke(ckpt, "--solver", "dopri5", "--out", tmp_path / "m.ts")
    assert_refused(result, 2, "dopri5 is an adaptive solver", tmp_path, [])
    assert "--solver rk4 --steps 4" in result.output


def test_a_model_trained_adaptively_exports_with_the_suggested_solver(tmp_path):
    adaptive = make_checkpoint(tmp_path / "dopri.pt", **{"solver.method": "dopri5"})
    before = sorted(tmp_path.iterdir())
    result = invoke(adaptive, "--out", tmp_path / "m.ts")
    assert_refused(result, 2, "trained with dopri5, an adaptive solver", tmp_path, before)
    result = invoke(adaptive, "--out", tmp_path / "m.ts", "--solver", "rk4", "--steps", 4)
    assert result.exit_code == 0, result.output
    assert "integrating with rk4 (4 steps)" in result.output
    assert 'torch.jit.load("' in result.output and "max |eager - exported|" in result.output
    assert (tmp_path / "m.ts").is_file()


def test_bad_input_is_one_line_and_leaves_no_file(ckpt, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:1000])
    untrusted = tmp_path / "untrusted.pt"
    torch.save({"format": "odetx-checkpoint", "config": argparse.Namespace()}, untrusted)
    misnamed = tmp_path / "ckpt.ts"  # a checkpoint is read by its content, whatever its name
    misnamed.write_bytes(ckpt.read_bytes())
    before = sorted(tmp_path.iterdir())
    out = tmp_path / "m.ts"
    for args, code, needle in [
        ([tmp_path / "nope.pt", "--out", out], 1, "no checkpoint at"),
        ([corrupt, "--out", out], 1, "corrupt or truncated"),
        ([untrusted, "--out", out], 1, "weights_only=True"),
        ([ckpt, "--out", tmp_path / "missing" / "m.ts"], 2, "does not exist"),
        ([misnamed, "--out", misnamed, "--force"], 2, "is the checkpoint itself"),
        ([ckpt, "--out", tmp_path / "m.pt"], 2, "m.pt names no export format; name the file"),
        ([ckpt, "--out", tmp_path / "m", "--format", "pt2"], 2, "name the pt2 file *.pt2"),
        ([ckpt, "--out", out, "--format", "tflite"], 2, "unknown export format 'tflite'"),
        ([ckpt, "--out", out, "--format", "pt2"], 2, "has the torchscript suffix .ts"),
        ([ckpt, "--out", out, "--steps", 0], 2, "solver.steps: must be a positive integer"),
    ]:
        assert_refused(invoke(*args), code, needle, tmp_path, before)


def test_an_existing_file_is_kept_unless_forced(ckpt, tmp_path):
    out = tmp_path / "m.pt2"
    out.write_bytes(b"keep me")
    assert_refused(invoke(ckpt, "--out", out), 2, "--force", tmp_path, [out])
    assert out.read_bytes() == b"keep me"
    result = invoke(ckpt, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert "torch.export.load" in result.output
    assert sorted(tmp_path.iterdir()) == [out] and out.read_bytes() != b"keep me"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_a_parity_failure_writes_nothing(ckpt, tmp_path, monkeypatch):
    real_load = torch.jit.load

    class Off(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *x):
            return self.inner(*x) + 1e-3

    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: Off(real_load(*a, **k)))
    out = tmp_path / "m.ts"
    out.write_bytes(b"previous")
    result = invoke(ckpt, "--out", out, "--force")
    assert_refused(
        result, 1, "parity check failed: max |eager - exported| = 0.001", tmp_path, [out]
    )
    assert out.read_bytes() == b"previous"
