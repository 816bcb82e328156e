"""Mixed precision and torch.compile readiness."""

import math

import pytest
import torch
import torch._dynamo

from odetx.artefacts import load_checkpoint
from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import ARCHS
from odetx.resolve import create_model
from odetx.runtime.precision import amp_label, autocast, grad_scaler
from odetx.training import Trainer

CPU = torch.device("cpu")


def test_bf16_autocast_runs_the_model_in_bf16_and_stays_close_to_float32():
    info = DataInfo("image", num_classes=10, image_size=8, in_chans=1)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, dim=32), SolverConfig(), info).eval()
    x = torch.randn(4, 1, 8, 8)
    full = model(x)
    with autocast("bf16", CPU)():
        half = model(x)
    assert full.dtype == torch.float32 and half.dtype == torch.bfloat16
    diff = (half.float() - full).abs().max().item()
    assert 0 < diff < 0.1  # bf16 keeps 8 mantissa bits: visible, but small


def test_fp16_training_keeps_its_grad_scaler_in_the_checkpoint(tmp_path, tiny_config):
    summary = Trainer(tiny_config(train__epochs=1, train__amp="fp16"), tmp_path / "run").fit()
    assert summary["amp"] == "fp16"
    assert torch.isfinite(torch.tensor(summary["test"]["loss"]))
    scaler = load_checkpoint(tmp_path / "run" / "last.pt")["scaler"]
    # Enabled, so its scale travels with the run for --resume: it starts at 2**16, halves on
    # each overflowing step and grows only after 2000 clean ones, so one short epoch leaves
    # a power of two no larger than 2**16.
    mantissa, exponent = math.frexp(scaler["scale"])
    assert mantissa == 0.5 and 1 <= exponent <= 17, scaler
    assert not grad_scaler("bf16", CPU).is_enabled()  # bf16 has float32's range


@pytest.mark.parametrize(
    "capability,cautioned", [("AVX2", True), ("DEFAULT", True), ("AVX512", False)]
)
def test_amp_on_a_cpu_without_half_precision_units_is_cautioned(monkeypatch, capability, cautioned):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert ("far slower" in amp_label("bf16", CPU)) == cautioned
    assert amp_label("off", CPU) == "off"
    assert amp_label("bf16", torch.device("cuda")) == "bf16"


def test_unknown_amp_mode_is_refused(tiny_config):
    with pytest.raises(ConfigError, match="train.amp"):
        tiny_config(train__amp="fp8")


FUSED = dict(shared_norm=True, fused=True, dropout=0.0)


@pytest.mark.parametrize(
    "arch, extra",
    [pytest.param(a, {}, id=a) for a in ARCHS.names()]
    + [pytest.param("parallel", FUSED, id="parallel-fused")],
)
def test_the_fixed_step_integrator_compiles_without_graph_breaks(arch, extra):
    info = DataInfo("image", num_classes=10, image_size=8, in_chans=1)
    model = create_model(
        ModelConfig(arch=arch, depth=2, dim=16, heads=2, groups=1, **extra),
        SolverConfig(method="rk4", steps=2),
        info,
    )
    torch._dynamo.reset()
    report = torch._dynamo.explain(model)(torch.randn(3, 1, 8, 8))
    assert report.graph_break_count == 0, report.break_reasons
    assert report.graph_count == 1


@pytest.mark.slow  # inductor compiles the train and eval graphs: ~45 s with a cold cache
def test_a_compiled_run_trains_and_reports_its_graph_breaks(tmp_path, tiny_config):
    torch._dynamo.reset()
    summary = Trainer(tiny_config(train__epochs=1, train__compile=True), tmp_path / "run").fit()
    assert summary["graph_breaks"] == 0
    assert torch.isfinite(torch.tensor(summary["test"]["loss"]))
