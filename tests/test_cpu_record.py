"""Each run records the CPU it ran on (bit-exact reruns need the same kind), and compare
carries it into its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.runtime.cpu import describe_cpu, parse_cpuinfo

# Two processors of a /proc/cpuinfo, cut short; only the first is read.
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile amx_bf16

processor\t: 1
model name\t: Something Else
flags\t\t: fpu sse2
"""


def test_the_model_name_and_simd_flags_are_read_from_cpuinfo():
    name, flags = parse_cpuinfo(CPUINFO)
    assert name == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "amx_tile"} <= flags and "avx512_bf16" not in flags
    line = describe_cpu(name, flags, "x86_64", "AVX512")
    assert line == (
        "Intel(R) Xeon(R) Platinum 8480+ (x86_64; avx2, avx512f, amx_tile; torch kernels AVX512)"
    )
    assert describe_cpu("Old", {"sse2"}, "x86_64", "DEFAULT") == (
        "Old (x86_64; no AVX2; torch kernels DEFAULT)"
    )


def test_a_run_records_its_cpu_and_compare_reports_it(trained_run, tmp_path):
    summary = json.loads((trained_run / "summary.json").read_text())
    kernels = torch.backends.cpu.get_cpu_capability()
    assert summary["cpu"].endswith(f"torch kernels {kernels})")
    info = Path("/proc/cpuinfo")
    if info.is_file():
        model = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in info.read_text().splitlines()
                if ln.startswith("model name")
            ),
            None,
        )
        if model:
            assert summary["cpu"].startswith(model + " (")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["compare", str(trained_run), "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    assert row["cpus"] == [summary["cpu"]]
