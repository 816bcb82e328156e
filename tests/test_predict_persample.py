"""``odetx predict`` reports each input's field evaluations: per sample, a difficulty score."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.errors import ConfigError
from odetx.evaluation.predict import predict
from odetx.export import export_checkpoint

runner = CliRunner()
PER_SAMPLE = {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "per_sample": True}


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_checkpoint_and_torchscript_give_each_input_its_own_nfe(trained_run, images, tmp_path):
    done, failed = predict(trained_run, images, 2, solver_overrides=PER_SAMPLE)
    assert not failed and all(p.nfe is not None and p.nfe >= 8 for p in done)
    ts = export_checkpoint(trained_run, tmp_path / "m.ts", solver_overrides=PER_SAMPLE).path
    exported, _ = predict(ts, images, 2)
    assert [p.nfe for p in exported] == [p.nfe for p in done]
    fixed, _ = predict(trained_run, images, 2)  # euler x 1 per group, eager: its count
    assert {p.nfe for p in fixed} == {2.0}
    with pytest.raises(ConfigError, match="baked in"):
        predict(ts, images, 2, solver_overrides={"per_sample": True})


def test_predict_json_carries_nfe(trained_run, images):
    result = runner.invoke(
        app, ["predict", str(trained_run), images[0], "--json", "--solver", "dopri5",
              "--per-sample"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["nfe"] > 0
