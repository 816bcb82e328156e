"""``odetx inspect``: field measures against the field called by hand, power iteration
against exact matrix norms, local errors against known orders, and the command's output."""

import dataclasses
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from odetx.analysis import flow, inspect_stack
from odetx.analysis.inspect import stack_input
from odetx.artefacts import save_checkpoint
from odetx.cli.app import app
from odetx.config import SolverConfig
from odetx.data import DATASETS
from odetx.models import build_model
from odetx.resolve import build_config
from odetx.solvers import build_integrator
from odetx.solvers.field import ATTN, BOTH, MLP, Field
from tests.conftest import TINY

runner = CliRunner()


def tiny(arch="parallel", **overrides):
    cfg = build_config(overrides={**TINY, "model.arch": arch, **overrides})
    info = DATASETS[cfg.data.name].info(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.solver, info).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return cfg, info, model


def save(path, **overrides):
    cfg, info, model = tiny(**overrides)
    payload = {
        "config": cfg.to_dict(),
        "data_info": dataclasses.asdict(info),
        "model": model.state_dict(),
    }
    save_checkpoint(path, payload)
    return path


class Linear(Field):
    """A = x Waᵀ, M = x Wmᵀ on every token: the flow over [t0, t1] is exp((t1-t0)(Wa+Wm))."""

    def __init__(self, wa, wm):
        super().__init__()
        self.wa, self.wm = wa, wm

    def forward(self, which, t, x, mask=None):
        if which == ATTN:
            return x @ self.wa.T
        if which == MLP:
            return x @ self.wm.T
        return x @ (self.wa + self.wm).T


def linear_blocks(method, steps, d=5, groups=1):
    gen = torch.Generator().manual_seed(1)
    fields = [Linear(torch.randn(d, d, generator=gen) * 0.4, torch.randn(d, d, generator=gen) * 0.4)
              for _ in range(groups)]  # fmt: skip
    solver = SolverConfig(method, steps=steps)
    blocks = [build_integrator(f, solver, [(BOTH, 1.0)], g, g + 1.0) for g, f in enumerate(fields)]
    return fields, solver, blocks


def test_field_norms_and_cosine_match_the_field_called_by_hand():
    cfg, _, model = tiny("sequential")
    images = torch.randn(3, 1, 8, 8)
    x, mask = stack_input(model, (images,))
    result = inspect_stack(list(model.stack.blocks), cfg.solver, x, mask, iters=2)
    field = model.stack.blocks[0].field
    with torch.no_grad():
        a, m = field(ATTN, 0.0, x, None), field(MLP, 0.0, x, None)
    row = result.points[0]

    # Per token, then over all tokens of all examples, written plainly.
    def norms(v):
        return sum(float(v[b, i].norm()) for b in range(3) for i in range(v.shape[1]))

    count = 3 * x.shape[1]
    assert row["attn_norm"] == pytest.approx(norms(a) / count, rel=1e-5)
    assert row["mlp_norm"] == pytest.approx(norms(m) / count, rel=1e-5)
    assert row["field_norm"] == pytest.approx(norms(a + m) / count, rel=1e-5)
    assert row["state_norm"] == pytest.approx(norms(x) / count, rel=1e-5)
    cos = sum(
        float(a[b, i] @ m[b, i] / (a[b, i].norm() * m[b, i].norm()))
        for b in range(3)
        for i in range(x.shape[1])
    )
    assert row["cosine"] == pytest.approx(cos / count, rel=1e-4)
    kin = sum(float((a + m)[b, i].pow(2).sum()) for b in range(3) for i in range(x.shape[1]))
    assert row["kinetic"] == pytest.approx(kin / count, rel=1e-5)
    # The trajectory's last state is what the model's own stack computes.
    with torch.no_grad():
        assert torch.allclose(result.tracks[-1], model.stack(x)[0], atol=1e-6)


def test_power_iteration_finds_the_exact_spectral_norm_of_a_real_step_map():
    cfg, _, model = tiny("strang")
    x, mask = stack_input(model, (torch.randn(2, 1, 8, 8),))
    block = model.stack.blocks[0]
    whole, _ = flow.step_map(block, cfg.solver, 0, None)
    got = flow.spectral_norm(whole, x, None, iters=200)
    for b in range(2):
        jac = torch.autograd.functional.jacobian(lambda y: whole(y[None])[0], x[b])
        n = x[b].numel()
        want = torch.linalg.matrix_norm(jac.reshape(n, n), 2)
        assert float(got[b]) == pytest.approx(float(want), rel=1e-3)


@pytest.mark.slow
def test_ftle_of_a_linear_field_is_the_log_norm_of_its_matrix_exponential():
    fields, solver, blocks = linear_blocks("rk4", 16, groups=2)
    x = torch.randn(2, 3, 5)
    result = inspect_stack(blocks, solver, x, None, iters=200)
    for g, f in enumerate(fields):
        exact = torch.linalg.matrix_exp(f.wa + f.wm)  # span 1
        want = math.log(float(torch.linalg.matrix_norm(exact, 2)))
        assert result.groups[g]["ftle"] == pytest.approx(want, rel=1e-4)
    flow_map = torch.linalg.matrix_exp(fields[1].wa + fields[1].wm) @ torch.linalg.matrix_exp(
        fields[0].wa + fields[0].wm
    )
    want = math.log(float(torch.linalg.matrix_norm(flow_map, 2))) / 2
    assert result.overall["ftle"] == pytest.approx(want, rel=1e-4)


def test_local_error_vanishes_for_a_fine_solver_and_falls_at_eulers_order():
    x = torch.randn(2, 3, 5, dtype=torch.float64)

    def mean_error(method, steps):
        _, solver, blocks = linear_blocks(method, steps)
        blocks = [b.double() for b in blocks]
        for f in blocks:
            f.field.wa, f.field.wm = f.field.wa.double(), f.field.wm.double()
        return float(flow.local_error(blocks[0], solver, 0, x, None).mean())

    assert mean_error("rk4", 64) < 1e-9
    e = [mean_error("euler", s) for s in (4, 8, 16, 32)]
    assert e[0] > 1e-3
    for big, small in zip(e, e[1:], strict=False):
        # Local error of one Euler step is O(h²): per unit of time, order 1.
        assert math.log2(big / small) == pytest.approx(2.0, abs=0.2)


@pytest.mark.parametrize(
    "overrides, args",
    [
        ({"arch": "parallel"}, []),
        ({"arch": "sequential", "model.groups": 1}, ["--solver", "heun", "--steps", "2"]),
        pytest.param({"arch": "strang"}, ["--solver", "dopri5"], marks=pytest.mark.slow),
        (
            {
                "arch": "parallel",
                "model.preset": "enc-tiny",
                "data.name": "parity",
                "data.seq_len_min": 8,
                "data.seq_len_max": 16,
            },
            [],
        ),  # fmt: skip
        (
            {
                "arch": "sequential",
                "model.preset": "gpt-tiny",
                "data.name": "pydoc-topics",
                "model.context": 16,
                "data.context": 16,
            },
            ["--steps", "2"],
        ),  # fmt: skip
    ],
    ids=["vit", "vit-shared-heun", "vit-dopri5", "encoder", "gpt"],
)
def test_json_has_the_documented_keys_on_every_backbone(tmp_path, overrides, args):
    ckpt = save(tmp_path / "c.pt", **overrides)
    out = runner.invoke(app, ["inspect", str(ckpt), "--n", "3", "--json", *args])
    assert out.exit_code == 0, out.output
    record = json.loads(out.output.strip().splitlines()[-1])
    assert {"checkpoint", "arch", "solver", "points", "per_group", "overall"} <= set(record)
    assert set(record["points"][0]) == {
        "group", "step", "substep", "t", "which", "state_norm", "attn_norm", "mlp_norm",
        "field_norm", "cosine", "kinetic", "jacobian_norm", "local_error",
    }  # fmt: skip
    assert math.isfinite(record["overall"]["ftle"])
    assert record["points"][-1]["t"] == pytest.approx(2.0)


def test_table_csv_and_plot(tmp_path):
    ckpt = save(tmp_path / "c.pt")
    out = runner.invoke(
        app,
        ["inspect", str(ckpt), "--n", "2", "--csv", str(tmp_path / "p.csv"),
         "--plot", str(tmp_path / "p.png")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "local err" in out.output and "per group and overall" in out.output
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("group,step,substep,t,which") and len(lines) == 1 + 4
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["missing.pt"], 1, "no checkpoint"),
        (["corrupt.pt"], 1, "corrupt"),
        (["good.pt", "--split", "dev"], 2, "--split"),
        (["good.pt", "--n", "0"], 2, "--n"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, code, needle):
    save(tmp_path / "good.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04garbage")
    args = [str(tmp_path / args[0]), *args[1:]]
    out = runner.invoke(app, ["inspect", *args])
    assert out.exit_code == code
    assert needle in out.output and "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
