"""The example plugin package (``examples/plugin``), installed the way pip installs it — its
package and a ``.dist-info`` with its entry point on ``sys.path`` (no network, no pip) — is
loaded by every command through the entry point; a run with its variants trains, resumes,
evaluates, compares and exports; the exports run with plain torch in a process that never
sees the plugin; and without the package, evaluating the run is one line naming it."""

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from odetx import origins
from odetx.cli.app import app
from odetx.evaluation import load_model

tomllib = pytest.importorskip("tomllib")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin"
RECORD = {"name": "odetx-linattn", "module": "odetx_linattn", "version": "0.1.0"}
TINY_FLAGS = [
    "--set", "model.dim=16", "--set", "model.depth=2", "--set", "model.heads=2",
    "--batch-size", "128", "--threads", "1", "--device", "cpu",
]  # fmt: skip
FORMATS = {"torchscript": ".ts", "pt2": ".pt2"}
if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
    FORMATS["onnx"] = ".onnx"

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``examples/plugin`` installed into a folder on ``sys.path``: its package, and a
    dist-info holding the entry points its pyproject declares."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path_factory.mktemp("site")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    points = project["entry-points"]["odetx.plugins"]
    lines = [f"{name} = {value}" for name, value in points.items()]
    (info / "entry_points.txt").write_text("[odetx.plugins]\n" + "\n".join(lines) + "\n")
    (info / "top_level.txt").write_text("odetx_linattn\n")
    shutil.copytree(EXAMPLE / "odetx_linattn", site / "odetx_linattn")
    origins.unload()
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    yield site
    if str(site) in sys.path:
        sys.path.remove(str(site))
    origins.unload()


@pytest.fixture(autouse=True)
def fresh_process():
    """Each command as a fresh process runs it: no plugin loaded before it starts."""
    origins.unload()
    yield
    origins.unload()


@pytest.fixture(scope="module")
def run(installed, tmp_path_factory):
    """A run of the package's preset (linear attention) and tableau: trained one epoch,
    then resumed for a second."""
    run = tmp_path_factory.mktemp("plugin") / "run"
    result = invoke(
        "train", "--model", "vit-micro-linear", "--solver", "ssprk3", "--epochs", 1,
        "--out", run, *TINY_FLAGS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    origins.unload()
    result = invoke("train", "--resume", run, "--epochs", 2)
    assert result.exit_code == 0, result.output
    origins.unload()
    return run


PLAIN_TORCH = """\
import importlib.util, sys
import torch
assert importlib.util.find_spec("odetx_linattn") is None  # the plugin is nowhere here
x = torch.load(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    if path.endswith(".ts"):
        out[path] = torch.jit.load(path)(x)
    elif path.endswith(".pt2"):
        out[path] = torch.export.load(path).module()(x)
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out[path] = torch.from_numpy(session.run(None, {name: x.numpy()})[0])
assert not any(m == "odetx" or m.startswith(("odetx.", "odetx_")) for m in sys.modules)
torch.save(out, sys.argv[1] + ".out")
"""


def test_the_package_is_loaded_through_its_entry_point(installed):
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for name in ("linear", "ssprk3", "vit-micro-linear"):
        row = next(line for line in result.output.splitlines() if f" {name} " in line)
        assert "odetx-linattn" in row, row


def test_its_run_records_it_resumes_evaluates_and_compares(run, tmp_path):
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["plugins"] == [RECORD] and config["model"]["attn"] == "linear"
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["plugins"] == [RECORD]

    result = invoke("eval", run, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["samples"] > 0

    origins.unload()
    table = tmp_path / "table.json"
    args = ["--solver", "ssprk3", "--solver", "euler", "--steps", "1,2", "--json", table]
    result = invoke("compare", run, *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(table.read_text())["rows"]
    assert {(r["solver"], r["steps"]) for r in rows} == {
        (s, n) for s in ("ssprk3", "euler") for n in (1, 2)
    }


def exported_in_plain_torch(run, tmp_path, formats):
    """Export ``run`` in each format, then run the files in a process with plain torch that
    never sees the plugin: each gives the eager model's logits."""
    exports = []
    for fmt in formats:
        origins.unload()
        out = tmp_path / f"model{FORMATS[fmt]}"
        result = invoke("export", run, "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
        exports.append(out)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    inputs = tmp_path / "x.pt"
    torch.save(x, inputs)
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(PLAIN_TORCH))
    done = subprocess.run(
        [sys.executable, script, inputs, *exports],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        eager = load_model(run).model(x)
    for path, logits in torch.load(str(inputs) + ".out", weights_only=True).items():
        assert torch.allclose(logits, eager, atol=1e-4), path
    return exports


def test_its_torchscript_export_runs_without_it(run, tmp_path):
    (export,) = exported_in_plain_torch(run, tmp_path, ["torchscript"])
    extra = {"odetx.json": ""}
    torch.jit.load(export, _extra_files=extra)
    meta = json.loads(extra["odetx.json"])
    assert meta["plugins"] == [RECORD] and meta["config"]["model"]["attn"] == "linear"


@pytest.mark.slow  # torch.export and ONNX capture take seconds each
def test_its_pt2_and_onnx_exports_run_without_it(run, tmp_path):
    exported_in_plain_torch(run, tmp_path, [f for f in FORMATS if f != "torchscript"])


def test_without_the_package_its_run_is_one_line_naming_it(run, installed):
    sys.path.remove(str(installed))
    try:
        result = invoke("eval", run)
    finally:
        sys.path.insert(0, str(installed))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "needs plugin 'odetx-linattn' 0.1.0 (module odetx_linattn)" in lines[0]
    assert "not an installed odetx plugin here" in lines[0] and str(run) in lines[0]
