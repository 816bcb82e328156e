import dataclasses
from pathlib import Path

import pytest
import yaml

from odetx.config import Config, from_dict, parse_set, read_yaml
from odetx.errors import ConfigError
from odetx.resolve import build_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_file_is_the_builtin_default():
    assert build_config(ROOT / "configs" / "default.yaml") == build_config()


def test_order_is_defaults_then_file_then_flags(tmp_path):
    p = write(tmp_path, "model:\n  arch: strang\n  depth: 6\ntrain:\n  lr: 1e-3\n")
    cfg = build_config(p, {"model.depth": 2, "model.groups": 1})
    assert (cfg.model.arch, cfg.model.depth, cfg.model.groups) == ("strang", 2, 1)
    assert cfg.train.lr == pytest.approx(1e-3)  # YAML 1.1 reads "1e-3" as text
    assert cfg.train.epochs == Config().train.epochs


def test_set_reaches_any_field_with_yaml_scalars(tmp_path):
    items = ["model.dropout=0.1", "solver.method=rk4", "model.shared_norm=true", "train.epochs=3"]
    parsed = parse_set(items)
    # Values are YAML scalars: numbers and booleans typed, words left as text.
    assert parsed == {
        "model.dropout": 0.1,
        "solver.method": "rk4",
        "model.shared_norm": True,
        "train.epochs": 3,
    }
    assert type(parsed["model.shared_norm"]) is bool and type(parsed["train.epochs"]) is int
    # --set gives the config the same settings written in a file give it.
    same = write(
        tmp_path,
        "model:\n  dropout: 0.1\n  shared_norm: true\nsolver:\n  method: rk4\n"
        "train:\n  epochs: 3\n",
    )
    assert build_config(overrides=parsed) == build_config(same) != build_config()


@pytest.mark.parametrize(
    "text,key",
    [
        ("model:\n  depht: 4\n", "model.depht"),
        ("optimiser:\n  lr: 1\n", "optimiser"),
        ("model:\n  depth: four\n", "model.depth"),
        ("model:\n  depth: 4.5\n", "model.depth"),
        ("model:\n  shared_norm: 3\n", "model.shared_norm"),
        ("model: 3\n", "model"),
        ("model:\n  depth: 4\n  groups: 3\n", "model.groups"),
        ("solver:\n  method: euler\n  rtol: 1.0e-3\n", "solver.rtol"),
        ("solver:\n  steps: 0\n", "solver.steps"),
        ("data:\n  name: imagenet\n", "data.name"),
        ("train:\n  lr: -1\n", "train.lr"),
    ],
)
def test_bad_configs_fail_naming_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        build_config(write(tmp_path, text))
    assert info.value.key == key
    assert str(info.value).startswith(key)
    assert info.value.exit_code == 2


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"not valid YAML \(line 3, column 1\): expected ',' or ']'"
    ):
        read_yaml(write(tmp_path, "model:\n  arch: [parallel\n"))
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(write(tmp_path, "- a\n- b\n"))


def test_yaml_is_read_safely(tmp_path):
    with pytest.raises(ConfigError):
        read_yaml(write(tmp_path, "model: !!python/object/apply:os.system ['echo pwned']\n"))


def test_set_needs_key_equals_value():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["model.depth"])


def test_configs_are_frozen_and_round_trip_through_plain_data():
    cfg = build_config(overrides={"model.arch": "sequential"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.arch = "parallel"
    tree = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
    assert from_dict(Config, tree) == cfg
