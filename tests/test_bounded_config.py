"""Bounded configs: YAML alias bombs, absurd sizes and meaningless numbers are refused
up front, as one ``ConfigError`` line (exit 2 through the CLI), before any work starts."""

import dataclasses
import math
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

import odetx.resolve as resolve_module
from odetx.cli import train as train_module
from odetx.cli.app import app
from odetx.compare.sweep import load_sweep
from odetx.config import MAX_YAML_BYTES, load_config, parse_set, read_yaml
from odetx.data import DATASETS
from odetx.data.base import DataInfo
from odetx.errors import ConfigError
from odetx.models import PRESETS, build_model, count_params
from odetx.models.factory import DATA_KIND
from odetx.resolve import (
    MAX_PARAMS,
    MEMORY_FACTOR,
    build_config,
    estimate_size,
    resolve,
    static_info,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
GiB = 2**30
# Generous bounds: these check that nothing expands, not how fast the machine is.
SECONDS = 5.0
PEAK_BYTES = 50 * 2**20

runner = CliRunner()


def bomb_block(levels: int = 9) -> str:
    """The classic "billion laughs" in block style: 9**levels strings from ~350 bytes."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, name in zip(names[: levels - 1], names[1:levels], strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def bomb_flow(levels: int = 9) -> str:
    """The same bomb on one line, as a ``--set`` value."""
    names = "abcdefghijklmnopqrstuvwxyz"
    items = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip(names[: levels - 1], names[1:levels], strict=True):
        items.append(f"&{name} [{', '.join(['*' + prev] * 9)}]")
    return "[" + ", ".join(items) + "]"


def bounded(fn, *args, trace=True):
    """``fn(*args)`` must raise ConfigError within SECONDS (and, with ``trace``, PEAK_BYTES
    of Python allocations); returns the error."""
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as info:
            fn(*args)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        if trace:
            tracemalloc.stop()
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert peak < PEAK_BYTES, f"peak {peak / 2**20:.0f} MiB"
    return info.value


def one_line_exit_2(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.fixture
def no_trainer(monkeypatch):
    """The CLI's Trainer replaced by one that records being constructed."""
    made = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            made.append(args)
            raise AssertionError("a refused config reached the trainer")

    monkeypatch.setattr(train_module, "Trainer", Recorder)
    return made


# ---------------------------------------------------------------- YAML bombs


def test_the_bomb_really_is_one():
    # 9 levels of 9 aliases: 9**9 = 387,420,489 strings once expanded, from a few hundred bytes.
    assert len(bomb_block()) < 400 and len(bomb_flow()) < 400


def test_alias_bomb_in_a_config_file_is_refused_fast_with_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb_block())
    for reader in (read_yaml, build_config, load_config):
        err = bounded(reader, path)
        assert err.key == "--config"
        assert str(path) in str(err) and "aliases" in str(err)
        assert "lol" not in str(err)  # the value is never quoted


def test_alias_bomb_in_a_set_value_is_refused_fast_with_bounded_memory():
    err = bounded(parse_set, [f"model.dim={bomb_flow()}"])
    assert err.key == "--set model.dim"
    assert "aliases" in str(err) and "lol" not in str(err)


def test_alias_bomb_through_the_cli_is_one_line(tmp_path, no_trainer):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb_block())
    out = tmp_path / "run"
    one_line_exit_2(runner.invoke(app, ["train", "-c", str(path), "--out", str(out)]), "aliases")
    one_line_exit_2(
        runner.invoke(app, ["train", "--set", f"train.lr={bomb_flow()}", "--out", str(out)]),
        "--set train.lr",
    )
    assert not out.exists() and not no_trainer


def test_small_anchors_and_aliases_still_work(tmp_path):
    # Aliases are allowed (a sweep may reuse a block); only their expanded size is bounded.
    path = tmp_path / "c.yaml"
    path.write_text(
        "solver:\n  method: dopri5\n  rtol: &tol 1.0e-2\n  atol: *tol\ntrain: &train\n  epochs: 3\n"
    )
    cfg = build_config(path)
    assert cfg.solver.rtol == cfg.solver.atol == pytest.approx(1e-2)
    assert cfg.train.epochs == 3
    # A merge key over an anchored mapping, and a --set value with an alias in it.
    tree = read_yaml(write(tmp_path, "base: &b {epochs: 2, lr: 0.1}\ntrain:\n  <<: *b\n"))
    assert tree["train"] == {"epochs": 2, "lr": 0.1}
    assert parse_set(["x.y=[&a [1, 2], *a]"]) == {"x.y": [[1, 2], [1, 2]]}


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_self_referencing_alias_is_refused(tmp_path):
    err = bounded(read_yaml, write(tmp_path, "model: &m\n  preset: *m\n"))
    assert err.key == "--config" and "refers to a node containing it" in str(err)
    with pytest.raises(ConfigError, match="--set model.dim: the value has an alias"):
        parse_set(["model.dim=&a [*a]"])


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    # Deeper than Python's recursion limit, which PyYAML's composer would hit. (Not traced:
    # PyYAML's scanner looks up to 1024 characters ahead, slow under tracemalloc.)
    deep = "[" * 50_000 + "]" * 50_000
    err = bounded(parse_set, [f"model.dim={deep}"], trace=False)
    assert "nests more than" in str(err) and err.key == "--set model.dim"
    err = bounded(read_yaml, write(tmp_path, f"model: {deep}\n"), trace=False)
    assert "nests more than" in str(err) and err.key == "--config"


def test_a_huge_file_is_refused_without_being_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(4 * GiB)  # sparse: takes no disk, but reading it would take 4 GiB
    err = bounded(read_yaml, path)
    assert err.key == "--config" and "larger than 1024 KiB" in str(err)
    err = bounded(parse_set, ["data.root=" + "x" * (MAX_YAML_BYTES + 1)])
    assert err.key == "--set data.root" and "larger than" in str(err)


def test_a_number_too_long_for_python_is_a_config_error(tmp_path):
    err = bounded(read_yaml, write(tmp_path, "train:\n  seed: " + "9" * 5000 + "\n"))
    assert err.key == "--config" and "not valid YAML" in str(err)
    # A --set value YAML cannot construct is text, as any other unreadable value.
    with pytest.raises(ConfigError, match="train.seed: expected int"):
        build_config(overrides=parse_set(["train.seed=" + "9" * 5000]))


def test_a_long_value_is_cut_short_in_the_message():
    with pytest.raises(ConfigError) as info:
        build_config(overrides={"model.dim": list(range(10_000))})
    assert len(str(info.value)) < 200 and "..." in str(info.value)


# ---------------------------------------------------------------- absurd sizes

HUGE = [
    ({"model.depth": 1_000_000_000}, "model.depth", "parameters"),
    ({"model.dim": 1_000_000, "model.heads": 1}, "model.dim", "parameters"),
    ({"model.dim": 10**400, "model.heads": 1}, "model.dim", "parameters"),
    ({"model.mlp_ratio": 1e9}, "model.mlp_ratio", "parameters"),
    ({"model.mlp_ratio": 1e300}, "model.mlp_ratio", "parameters"),
    ({"model.depth": 10**9, "model.groups": 10**9}, "model.groups", "parameters"),
    ({"model.heads": 10**9}, "model.heads", "does not divide"),
    ({"model.patch_size": 100_000}, "model.patch_size", "parameters"),
    ({"solver.steps": 1_000_000_000}, "solver.steps", "at most 1,000,000"),
    ({"solver.steps": 1_000_000}, "solver.steps", "training step"),
    ({"train.batch_size": 1_000_000_000}, "train.batch_size", "training step"),
    ({"train.batch_size": 10**400}, "train.batch_size", "training step"),
    ({"train.epochs": 100_000_000}, "train.epochs", "at most 10,000,000"),
    (
        {"solver.method": "dopri5", "solver.max_num_steps": 10_000_000},
        "solver.max_num_steps",
        "1..1,000,000",
    ),
    (
        {"model.preset": "gpt-tiny", "data.name": "pydoc-topics", "data.context": 10**9},
        "data.context",
        "data.context: 1000000000",  # longer than the model's positions, or too big
    ),
    (
        {
            "model.preset": "gpt-tiny",
            "data.name": "pydoc-topics",
            "data.context": 10**6,
            "model.context": 10**6,
        },
        "data.context",
        "training step",
    ),
    (
        {"model.preset": "gpt-tiny", "data.name": "pydoc-topics", "model.context": 10**9},
        "model.context",
        "parameters",
    ),
    (
        {"model.preset": "enc-tiny", "data.name": "listops", "data.seq_len_max": 10**9},
        "data.seq_len_max",
        "parameters",
    ),
    (
        {"model.preset": "enc-tiny", "data.name": "listops", "data.max_len": 10**12},
        "data.max_len",
        "parameters",
    ),
]


@pytest.fixture
def memory_16gib(monkeypatch):
    """A 16 GiB machine, so that what is refused does not depend on this one's memory."""
    monkeypatch.setattr(resolve_module, "machine_memory", lambda: 16 * GiB)


@pytest.mark.parametrize("overrides, key, needle", HUGE, ids=lambda v: str(v)[:40])
def test_absurd_sizes_are_refused_naming_the_key(memory_16gib, overrides, key, needle):
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        build_config(overrides=overrides)
    assert time.perf_counter() - start < SECONDS
    assert info.value.key == key, str(info.value)
    assert needle in str(info.value)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


def test_the_message_says_how_big_and_what_the_limit_is():
    with pytest.raises(ConfigError) as info:
        build_config(overrides={"model.dim": 1_000_000, "model.heads": 1})
    assert str(info.value) == (
        "model.dim: 1000000 gives about 4.8e13 parameters (192 TB in float32); the limit is 2e10"
    )


def test_the_step_memory_limit_follows_the_machine(monkeypatch):
    big_batch = {"train.batch_size": 10_000_000}  # ~1.2 TB of activations for vit-micro
    monkeypatch.setattr(resolve_module, "machine_memory", lambda: 16 * GiB)
    with pytest.raises(ConfigError, match=r"train.batch_size: 10000000 gives about 1.2 TB .*4x"):
        build_config(overrides=big_batch)
    monkeypatch.setattr(resolve_module, "machine_memory", lambda: 1024 * GiB)
    assert build_config(overrides=big_batch).train.batch_size == 10_000_000


def test_machine_memory_is_known_or_a_fixed_bound():
    assert resolve_module.machine_memory() > 0


def test_a_long_span_with_few_groups_is_not_refused():
    # depth only sets the span each group integrates over: one group is one layer's weights.
    cfg = build_config(overrides={"model.depth": 10**9, "model.groups": 1})
    assert estimate_size(cfg).params < 1e6


def test_a_checkpoint_config_resolves_whatever_this_machine_holds(memory_16gib):
    # Step memory is a training question: resolve (which loading a checkpoint calls)
    # checks only the machine-independent parameter bound.
    parsed = load_config(overrides={"train.batch_size": 10**9})
    assert resolve(parsed).train.batch_size == 10**9
    with pytest.raises(ConfigError, match="train.batch_size"):
        build_config(overrides={"train.batch_size": 10**9})


def test_absurd_size_through_the_cli_is_one_line_and_writes_nothing(tmp_path, no_trainer):
    out = tmp_path / "run"
    for args, needle in [
        (["--depth", "1000000000"], "model.depth: 1000000000 gives about"),
        (["--set", "model.dim=1000000", "--set", "model.heads=1"], "model.dim: 1000000"),
        (["--steps", "1000000000"], "solver.steps: must be at most"),
    ]:
        one_line_exit_2(runner.invoke(app, ["train", *args, "--out", str(out)]), needle)
    assert not out.exists() and not no_trainer


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_resolves(path, memory_16gib):
    cfg = build_config(path)
    assert estimate_size(cfg).params < 1e8


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_shipped_sweep_resolves(path, tmp_path, memory_16gib):
    assert load_sweep(path, tmp_path)


KIND_DATA = {"image": "cifar100", "tokens": "listops", "text": "pydoc-topics"}


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_resolves(name, memory_16gib):
    data = KIND_DATA[DATA_KIND[PRESETS[name].backbone]]
    for arch in ("sequential", "parallel", "strang"):
        build_config(overrides={"model.preset": name, "data.name": data, "model.arch": arch})
    build_config(overrides={"model.preset": name, "data.name": data, "solver.method": "rk4"})


def test_recipe_scale_models_fit_a_modest_machine():
    # DeiT-S at 224 px on ImageNet-1k (Touvron et al. 2021: 22M parameters), batch 256.
    cfg = build_config(
        overrides={"model.preset": "deit-small", "data.name": "cifar100", "train.batch_size": 256}
    )
    imagenet = DataInfo("image", num_classes=1000, image_size=224, in_chans=3)
    size = estimate_size(cfg, imagenet)
    assert 21.5e6 < size.params < 22.5e6
    assert size.params < MAX_PARAMS and size.step_bytes < MEMORY_FACTOR * 8 * GiB
    # nanoGPT's Shakespeare run (configs/lm-gpu.yaml): ~10.7M parameters.
    lm = build_config(ROOT / "configs" / "lm-gpu.yaml")
    size = estimate_size(lm, DataInfo("text", 65, vocab_size=65, max_len=256))
    assert 10.5e6 < size.params < 11e6 and size.step_bytes < MEMORY_FACTOR * 8 * GiB


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"model.arch": "sequential", "model.qkv_bias": False},
        {"model.preset": "vit-mini", "data.name": "mnist", "model.pool": "mean"},
        {"model.shared_norm": True, "model.fused": True, "model.dropout": 0.0},
        {"model.preset": "enc-tiny", "data.name": "listops"},
        {"model.preset": "enc-tiny", "data.name": "parity", "model.pool": "mean"},
        {"model.preset": "gpt-tiny", "data.name": "pydoc-topics", "model.groups": 2},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_the_parameter_estimate_matches_the_built_model(overrides):
    cfg = build_config(overrides={"model.dim": 32, "model.heads": 2, **overrides})
    info = static_info(cfg)
    if cfg.data.name != "pydoc-topics":
        assert info == DATASETS[cfg.data.name].info(cfg.data)
    real = count_params(build_model(cfg.model, cfg.solver, info))
    assert estimate_size(cfg).params == pytest.approx(real, rel=0.01)


# ---------------------------------------------------------------- NaN, inf, negatives

NAN, INF = math.nan, math.inf
ADAPTIVE = {"solver.method": "dopri5"}
MEANINGLESS = [
    ({"train.lr": NAN}, "train.lr"),
    ({"train.lr": INF}, "train.lr"),
    ({"train.lr": -INF}, "train.lr"),
    ({"train.lr": "nan"}, "train.lr"),  # --set train.lr=nan: text that float() reads
    ({**ADAPTIVE, "solver.rtol": NAN}, "solver.rtol"),
    ({**ADAPTIVE, "solver.rtol": INF}, "solver.rtol"),
    ({**ADAPTIVE, "solver.atol": NAN}, "solver.atol"),
    ({**ADAPTIVE, "solver.atol": -1e-3}, "solver.atol"),
    ({**ADAPTIVE, "solver.max_num_steps": 0}, "solver.max_num_steps"),
    ({"train.weight_decay": -0.1}, "train.weight_decay"),
    ({"train.weight_decay": NAN}, "train.weight_decay"),
    ({"train.weight_decay": INF}, "train.weight_decay"),
    ({"train.min_lr_ratio": -0.1}, "train.min_lr_ratio"),
    ({"train.min_lr_ratio": 1.5}, "train.min_lr_ratio"),
    ({"train.min_lr_ratio": NAN}, "train.min_lr_ratio"),
    ({"train.warmup_epochs": NAN}, "train.warmup_epochs"),
    ({"train.warmup_epochs": INF}, "train.warmup_epochs"),
    ({"train.grad_clip": NAN}, "train.grad_clip"),
    ({"train.grad_clip": INF}, "train.grad_clip"),
    ({"train.mixup": NAN}, "train.mixup"),
    ({"train.mixup": INF}, "train.mixup"),
    ({"train.cutmix": NAN}, "train.cutmix"),
    ({"train.cutmix": -1.0}, "train.cutmix"),
    ({"train.label_smoothing": NAN}, "train.label_smoothing"),
    ({"model.dropout": NAN}, "model.dropout"),
    ({"model.dropout": INF}, "model.dropout"),
    ({"model.mlp_ratio": NAN}, "model.mlp_ratio"),
    ({"model.mlp_ratio": INF}, "model.mlp_ratio"),
    ({"model.mlp_ratio": 0.0}, "model.mlp_ratio"),
]


@pytest.mark.parametrize("overrides, key", MEANINGLESS, ids=lambda v: str(v)[:50])
def test_meaningless_numbers_fail_validation_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        build_config(overrides=overrides)
    assert info.value.key == key, str(info.value)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_yaml_nan_and_inf_spellings_are_refused_too(tmp_path):
    for text in ("train:\n  lr: .nan\n", "train:\n  weight_decay: .inf\n", "train:\n  lr: inf\n"):
        with pytest.raises(ConfigError, match=r"^train\."):
            build_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="^train.mixup"):
        build_config(overrides=parse_set(["train.mixup=.NaN"]))


def test_edge_values_that_mean_something_still_pass():
    cfg = build_config(
        overrides={
            "train.weight_decay": 0.0,
            "train.min_lr_ratio": 1.0,
            "train.warmup_epochs": 0.0,
            "train.grad_clip": 0.0,
            "train.mixup": 0.0,
            "train.cutmix": 0.0,
            "train.label_smoothing": 0.0,
            "model.dropout": 0.0,
        }
    )
    assert dataclasses.asdict(cfg.train)["min_lr_ratio"] == 1.0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "nan"], "train.lr: must be a positive finite number, got nan"),
        (["--lr", "inf"], "train.lr: must be a positive finite number, got inf"),
        (["--solver", "dopri5", "--rtol", "nan"], "solver.rtol: must be a positive finite"),
        (["--solver", "dopri5", "--atol", "inf"], "solver.atol: must be a positive finite"),
        (["--set", "train.weight_decay=-1"], "train.weight_decay: must be a finite number >= 0"),
        (["--set", "model.mlp_ratio=.inf"], "model.mlp_ratio: must be a positive finite"),
    ],
)
def test_meaningless_flags_are_one_line_and_exit_2(tmp_path, no_trainer, args, needle):
    out = tmp_path / "run"
    one_line_exit_2(runner.invoke(app, ["train", *args, "--out", str(out)]), needle)
    assert not out.exists() and not no_trainer


@pytest.mark.slow  # a fresh interpreter per case, importing torch: seconds each
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "nan"], "train.lr: must be a positive finite number"),
        (["--depth", "1000000000"], "model.depth: 1000000000 gives about"),
    ],
)
def test_the_real_command_exits_2_with_one_line_on_stderr(tmp_path, args, needle):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "odetx", "train", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert not out.exists() and not (tmp_path / "runs").exists()
