"""The embedded default, end to end: ``odetx train`` with no arguments (about 40 s on 2 cores)."""

import json

import pytest
from typer.testing import CliRunner

from odetx.cli.app import app


@pytest.mark.slow
def test_default_run_reaches_97_percent_on_digits(tmp_path):
    result = CliRunner().invoke(app, ["train", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["dataset"], summary["arch"], summary["solver"]) == (
        "digits",
        "parallel",
        "euler",
    )
    assert summary["test"]["acc"] >= 0.97, summary["test"]
