"""``odetx.plugins``: variants from outside the package, checked like built-in ones, recorded
by the runs that use them, and refused in one line when a run's plugin is missing."""

import json
import shutil
import textwrap

import pytest
import torch
import yaml
from typer.testing import CliRunner

from odetx import origins
from odetx.cli.app import app
from odetx.config import PluginRef
from odetx.data import DATASETS
from odetx.export.formats import FORMATS
from odetx.models import ARCHS, PRESETS
from odetx.origins import PluginError
from odetx.registry import BUILT_IN
from odetx.resolve import build_config
from odetx.solvers import SOLVERS, TABLEAUS

runner = CliRunner()

TINY = {
    "model.dim": 16, "model.depth": 2, "model.heads": 2, "train.epochs": 1,
    "train.batch_size": 128, "train.threads": 1, "train.device": "cpu",
}  # fmt: skip
TINY_FLAGS = [
    "--set", "model.dim=16", "--set", "model.depth=2", "--set", "model.heads=2",
    "--batch-size", "128", "--threads", "1", "--device", "cpu",
]  # fmt: skip

SSPRK3 = """\
from odetx.plugins import arch, tableau

# Shu & Osher (1988): the strong-stability-preserving third-order method.
tableau("ssprk3", order=3, c=[0, 1, 0.5], a=[[], [1], [0.25, 0.25]], b=[1/6, 1/6, 2/3])
arch("reverse", substeps=[("mlp", 1.0), ("attn", 1.0)], order=1, description="M, then A")
"""


@pytest.fixture(autouse=True)
def no_plugins_after():
    """Each test starts and ends with odetx's own entries only."""
    origins.unload()
    yield
    origins.unload()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_a_file_plugin_adds_entries_that_name_it(tmp_path):
    plugin = write(tmp_path / "my_variants.py", SSPRK3)
    ref = origins.load(str(plugin))
    assert ref.name == "my_variants.py" and ref.path == str(plugin.resolve())
    assert len(ref.sha256) == 64
    assert TABLEAUS["ssprk3"].stages == 3 and SOLVERS["ssprk3"].order == 3
    assert ARCHS["reverse"].substeps == ((1, 1.0), (0, 1.0))
    assert SOLVERS.source("ssprk3") == "my_variants.py" and SOLVERS.source("rk4") == BUILT_IN
    assert origins.load(str(plugin)) is ref  # loading again is a no-op
    cfg = build_config(overrides={"solver.method": "ssprk3", "model.arch": "reverse"})
    assert cfg.plugins == (ref,)
    assert build_config().plugins == ()  # a run of built-ins records none
    origins.unload()
    assert "ssprk3" not in SOLVERS and "reverse" not in ARCHS


GOOD = 'tableau("ok3", 3, [0, 1, 0.5], [[], [1], [0.25, 0.25]], [1/6, 1/6, 2/3])\n'
PREAMBLE = """\
import torch
from odetx.plugins import *

class Half(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, d // 2)

    def forward(self, x, mask=None, t: float = 0.0):
        return self.lin(x)

"""


@pytest.mark.parametrize(
    "entry, needle",
    [
        (
            'tableau("bad", 2, [0, 0.5], [[], [0.4]], [0, 1])',
            "tableau 'bad': row 1 of a sums to 0.4, not c=0.5",
        ),
        ('tableau("bad", 1, [0], [[]], [0.9])', "tableau 'bad': b sums to 0.9, not 1"),
        ('tableau("rk4", 1, [0], [[]], [1])', "tableau 'rk4': the name is taken (built-in)"),
        (
            'arch("half", [("attn", 1.0), ("mlp", 0.5)], 1, "M for half a step")',
            "arch 'half': the MLP field is integrated over 0.5 of the step, not 1",
        ),
        ('arch("odd", [("mlp", 1.0), ("x", 1.0)], 1, "")', "field is attn, mlp or both, not 'x'"),
        ('adaptive("nope45", 5)', "adaptive solver 'nope45': not an adaptive method"),
        (
            'preset("wide", "vit", depth=2, dim=10, heads=3, patch_size=4)',
            "preset 'wide': model.heads: 3 does not divide model.dim 10",
        ),
        ('preset("x", "nobackbone", 2, 8, 2)', "preset 'x': unknown backbone 'nobackbone'"),
        ('dataset("d", "audio", len, len, "")', "dataset 'd': kind must be one of image"),
        ('dataset("digits", "image", len, len, "")', "the name is taken (built-in)"),
        (
            'export_format("ts2", ".ts", "t", len, len, len, "", "")',
            "the suffix .ts is export format 'torchscript'",
        ),
        ('tableau("has space", 1, [0], [[]], [1])', "tableau 'has space': a name is letters"),
        (
            'attention("half", lambda d, h, *rest: Half(d), "")',
            "attention 'half': build(causal=False) maps (2, 5, 8) to (2, 5, 4), not the same",
        ),
        (
            'norm("n", lambda d, eps: torch.nn.Identity(), True, -1.0, "")',
            "norm 'n': eps must be a positive finite number, got -1.0",
        ),
        ('mlp("m", 3, "")', "MLP 'm': build must be callable, got int"),
        ('positions("p", "", learned=True, rotary=True)', "learned or rotary, not both"),
        (
            'step_controller("c", 1.0, 0.0, 2.0, "")',
            "step-size controller 'c': accept_min must lie in [0.2, 1], got 2.0",
        ),
    ],
)
def test_an_entry_failing_its_checks_is_one_line_naming_plugin_and_entry(tmp_path, entry, needle):
    plugin = write(tmp_path / "bad_variants.py", f"{PREAMBLE}{GOOD}{entry}\n")
    before = {name: set(r) for name, r in (("s", SOLVERS), ("t", TABLEAUS), ("a", ARCHS))}
    with pytest.raises(PluginError) as info:
        origins.load(str(plugin))
    message = str(info.value)
    assert message.startswith("plugin 'bad_variants.py' (") and needle in message, message
    assert info.value.exit_code == 2 and "\n" not in message
    # All or nothing: the good entry before the bad one is gone too.
    assert "ok3" not in SOLVERS and "ok3" not in TABLEAUS
    assert before == {name: set(r) for name, r in (("s", SOLVERS), ("t", TABLEAUS), ("a", ARCHS))}
    assert origins.loaded() == []


def test_a_clash_between_plugins_names_the_first(tmp_path):
    first = write(tmp_path / "first.py", SSPRK3)
    second = write(tmp_path / "second.py", SSPRK3.replace("reverse", "reverse2"))
    origins.load(str(first))
    with pytest.raises(PluginError, match=r"tableau 'ssprk3': the name is taken \(plugin 'first"):
        origins.load(str(second))
    assert SOLVERS.source("ssprk3") == "first.py" and "reverse2" not in ARCHS


def test_a_plugin_that_fails_to_import_is_one_line_exit_2(tmp_path):
    broken = write(tmp_path / "broken.py", "import odetx.plugins\nimport no_such_module_here\n")
    result = invoke("list", "--plugin", broken)
    line = one_line(result)
    assert result.exit_code == 2 and "plugin 'broken.py'" in line
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in line
    assert f"{broken.resolve()}:2" in line  # where it failed
    result = invoke("eval", tmp_path, "--plugin", tmp_path / "missing.py")
    assert result.exit_code == 2 and "missing.py': does not exist" in one_line(result)
    result = invoke("list", "--plugin", "no_such_plugin_module")
    assert result.exit_code == 2
    assert "no module named 'no_such_plugin_module'" in one_line(result)


def test_list_shows_where_each_entry_comes_from(tmp_path):
    plugin = write(tmp_path / "my_variants.py", SSPRK3)
    result = invoke("list", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "ssprk3" in line)
    assert "my_variants.py" in row
    row = next(line for line in result.output.splitlines() if " rk4 " in line)
    assert BUILT_IN in row


def test_choices_and_a_config_file_take_plugin_entries(tmp_path, monkeypatch):
    plugin = write(tmp_path / "my_variants.py", SSPRK3)
    recipe = write(tmp_path / "r.yaml", f"plugins: [{plugin}]\nmodel:\n  arch: reverse\n")
    seen = {}
    from odetx.cli import train as train_module

    monkeypatch.setattr(train_module, "prepare_run", lambda *a: seen.update(args=a) or 1 / 0)
    # Without the plugin the choice is refused when the options are read...
    result = invoke("train", "--solver", "ssprk3")
    assert result.exit_code == 2 and "'ssprk3' is not one of" in result.output
    # ...with it, --solver takes it, from --plugin or from the config file's plugins:.
    for args in (["--plugin", plugin], ["-c", recipe]):
        origins.unload()
        result = invoke("train", "--solver", "ssprk3", *args)
        assert "ssprk3" in SOLVERS, result.output
    assert seen["args"][1]["solver.method"] == "ssprk3"
    cfg = build_config(recipe, {"solver.method": "ssprk3"})
    assert cfg.model.arch == "reverse" and [p.name for p in cfg.plugins] == ["my_variants.py"]


def test_a_file_plugin_run_records_it_reloads_it_and_refuses_without_it(tmp_path):
    """Train with a plugin's tableau; compare fits its order (3); without the file, eval of
    the run is one line naming it; a copy of the same file is the same plugin."""
    plugin = write(tmp_path / "ssprk3.py", SSPRK3)
    run = tmp_path / "run"
    result = invoke(
        "train", "--plugin", plugin, "--solver", "ssprk3", "--epochs", 1, "--out", run, *TINY_FLAGS
    )
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())["plugins"]
    ref = origins.file_ref(plugin)
    assert recorded == [{"name": "ssprk3.py", "path": ref.path, "sha256": ref.sha256}]
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["config"]["plugins"] == recorded

    origins.unload()  # a new process: the file is where the run says, with the same content
    out = tmp_path / "orders.json"
    result = invoke("compare", run, "--solver", "ssprk3", "--steps", "1,2,4,8", "--json", out)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert {r["expected_order"] for r in rows} == {3}
    assert rows[0]["order"] == pytest.approx(3.0, abs=0.6)

    origins.unload()
    moved = tmp_path / "elsewhere.py"
    shutil.move(plugin, moved)
    for command in (
        ["eval", run],
        ["compare", run, "--steps", "1,2"],
        ["export", run, "--out", tmp_path / "model.ts"],
        ["inspect", run],
        ["predict", run / "best.pt", tmp_path / "digit.png"],
        ["generate", run, "--prompt", "x"],
        ["train", "--resume", run, "--epochs", 2],
    ):
        result = invoke(*command)
        line = one_line(result)
        assert result.exit_code == 2 and "needs plugin 'ssprk3.py'" in line, command
        assert str(plugin.resolve()) in line and "--plugin" in line
    assert not (tmp_path / "model.ts").exists()
    result = invoke("eval", run, "--plugin", moved, "--json")
    assert result.exit_code == 0, result.output  # the same content, elsewhere

    origins.unload()
    write(plugin, SSPRK3 + "# edited\n")
    result = invoke("train", "--resume", run, "--epochs", 2)
    line = one_line(result)
    assert result.exit_code == 2 and "has changed since" in line and "ssprk3.py" in line


def test_a_module_imported_by_hand_is_attributed_to_itself(tmp_path, monkeypatch):
    """...and a run of it imports it again only when asked: a module a checkpoint names is
    imported (code run) only if it is an installed plugin or given with --plugin."""
    import sys

    from odetx.training import Trainer

    write(tmp_path / "hand_made.py", SSPRK3)
    monkeypatch.syspath_prepend(str(tmp_path))
    import hand_made  # noqa: F401  (registers on import, no loader involved)

    assert SOLVERS.source("ssprk3") == "hand_made"
    cfg = build_config(overrides={**TINY, "solver.method": "ssprk3"})
    assert cfg.plugins == (PluginRef("hand_made", module="hand_made"),)
    Trainer(cfg, tmp_path / "run").fit()

    origins.unload()
    monkeypatch.delitem(sys.modules, "hand_made")
    result = invoke("eval", tmp_path / "run")
    line = one_line(result)
    assert result.exit_code == 2 and "not an installed odetx plugin here" in line
    assert "--plugin hand_made" in line and "hand_made" not in sys.modules
    result = invoke("eval", tmp_path / "run", "--plugin", "hand_made", "--json")
    assert result.exit_code == 0, result.output


def test_registries_reach_every_family():
    """One public function per registry the issue names."""
    from odetx import plugins

    for fn in (
        "tableau", "learned_solver", "adaptive", "arch", "norm", "mlp", "attention",
        "positions", "stem", "preset", "backbone", "dataset", "export_format",
        "embedded_pair", "step_controller",
    ):  # fmt: skip
        assert callable(getattr(plugins, fn)), fn
    assert "dopri5" in SOLVERS and "digits" in DATASETS and "vit-micro" in PRESETS
    assert "torchscript" in FORMATS


EVERY_FAMILY = """\
import torch
from odetx.data import DATASETS
from odetx.export.formats import FORMATS
from odetx.models import STEMS
from odetx.models.vit import ViT
from odetx.plugins import *
from odetx.solvers.learned import WeightedRKIntegrator


class ScaleNorm(torch.nn.Module):  # Nguyen & Salazar (2019): x / |x| * sqrt(d), a gain
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.eps = eps

    def forward(self, x, weight, bias: torch.Tensor | None):
        y = x * self.scale / x.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(self.eps) * weight
        return y if bias is None else y + bias


class ReLU2(torch.nn.Module):  # Primer's squared ReLU (So et al. 2021)
    def __init__(self, dim, hidden, dropout, parts, bias):
        super().__init__()
        self.fc1 = parts.linear(dim, hidden, bias)
        self.fc2 = parts.linear(hidden, dim, bias)

    def forward(self, x, t: float = 0.0):
        return self.fc2(torch.relu(self.fc1(x, t)) ** 2, t)


norm("scalenorm", ScaleNorm, bias=False, eps=1e-5, description="ScaleNorm")
mlp("relu2", ReLU2, "fc2(relu(fc1 x)^2)")
positions("nopos", "no positions at all")
patch = STEMS["patch"]
stem("patch2", patch.build, patch.side, patch.params, patch.misfit, "patches again")
backbone("vit2", ViT, "image")
preset("vit2-micro", "vit2", depth=2, dim=16, heads=2, mlp_ratio=2.0, patch_size=4)
digits = DATASETS["digits"]
dataset("digits2", "image", digits.info, digits.load, "the digits again")
ts = FORMATS["torchscript"]
export_format("ts2", ".ts2", "TorchScript", ts.build, ts.save, ts.load, ts.load_hint, ts.steps)
tableau("ssprk3", 3, [0, 1, 0.5], [[], [1], [0.25, 0.25]], [1/6, 1/6, 2/3])
adaptive("fehlberg2", 2, "Fehlberg 2(1)")
learned_solver("rk38-learned", "rk38", WeightedRKIntegrator, "rk38's stages, learned weights")
embedded_pair("heun-euler2", 2, [0, 1], [[], [1]], [0.5, 0.5], [-0.5, 0.5], 1, "Heun-Euler")
step_controller("shrinking", 1.0, 0.0, 0.5, "integral, and accepted steps may halve")
"""


def test_every_family_takes_a_plugin_entry_that_trains_and_exports(tmp_path):
    """One entry per registry, used together by one run: recorded, trained, exported."""
    from odetx.export import export_checkpoint
    from odetx.models import build_model
    from odetx.training import Trainer

    ref = origins.load(str(write(tmp_path / "every.py", EVERY_FAMILY)))
    flat = {
        "model.preset": "vit2-micro", "model.norm": "scalenorm", "model.mlp": "relu2",
        "model.pos": "nopos", "model.stem": "patch2", "data.name": "digits2",
        "solver.method": "ssprk3", "train.epochs": 1, "train.batch_size": 128,
        "train.threads": 1, "train.device": "cpu", "train.warmup_epochs": 0.0,
    }  # fmt: skip
    cfg = build_config(overrides=flat)
    assert cfg.plugins == (ref,)
    Trainer(cfg, tmp_path / "run").fit()
    report = export_checkpoint(tmp_path / "run", tmp_path / "model.ts2")
    assert report.format.name == "ts2" and report.parity.ok
    info = DATASETS["digits2"].info(cfg.data)
    for solver in (
        {"solver.method": "fehlberg2"},
        {"solver.method": "rk38-learned", "solver.steps": 2},
        {"solver.method": "heun-euler2", "solver.per_sample": True},
        {"solver.method": "dopri5", "solver.per_sample": True, "solver.controller": "shrinking"},
    ):
        cfg = build_config(overrides={**flat, **solver})
        model = build_model(cfg.model, cfg.solver, info).eval()
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
        assert cfg.plugins == (ref,)
