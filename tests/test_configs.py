"""Every shipped recipe under configs/ loads and validates; the cheap ones train a few steps."""

from dataclasses import replace
from pathlib import Path

import pytest

from odetx.data import DATASETS
from odetx.models import check_fits, resolve_model
from odetx.resolve import build_config
from odetx.training import Trainer

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
SHRINK = {
    "model.dim": 16,
    "model.depth": 2,
    "model.groups": None,
    "model.heads": 2,
    "train.epochs": 1,
    "train.batch_size": 32,
    "train.device": "cpu",
}
SMALL_SETS = {"data.train_size": 64, "data.val_size": 32, "data.test_size": 32}


def test_the_recipes_are_there():
    names = {p.name for p in CONFIGS}
    assert {
        "default.yaml",
        "cifar100-deit-tiny.yaml",
        "cifar100-cct.yaml",
        "mnist.yaml",
        "listops.yaml",
        "parity.yaml",
        "lm.yaml",
        "lm-gpu.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_and_fits_its_data(path):
    cfg = build_config(path)
    if cfg.data.name == "text":  # a char vocabulary is read from the user's files
        assert cfg.data.context <= cfg.model.context
        return
    check_fits(cfg.model, DATASETS[cfg.data.name].info(cfg.data))  # static shapes, no files read


def test_deit_tiny_recipe_is_deit():
    cfg = build_config(CONFIG_DIR / "cifar100-deit-tiny.yaml")
    model = resolve_model(cfg.model)
    # DeiT-Ti (Touvron et al. 2021): 12 layers, width 192, 3 heads, MLP ratio 4.
    assert (model.depth, model.dim, model.heads, model.mlp_ratio) == (12, 192, 3, 4.0)
    assert model.patch_size == 4 and cfg.data.name == "cifar100"
    t = cfg.train
    assert t.lr == pytest.approx(5e-4 * t.batch_size / 512)  # DeiT's linear scaling rule
    assert (t.mixup, t.cutmix) == (0.8, 1.0)  # DeiT's mixing
    assert (t.weight_decay, t.warmup_epochs, t.epochs, t.label_smoothing) == (0.05, 5, 300, 0.1)
    # The recipe fits every arch, and choosing one changes nothing else.
    for arch in ("sequential", "parallel", "strang"):
        other = build_config(CONFIG_DIR / "cifar100-deit-tiny.yaml", {"model.arch": arch})
        assert other == replace(cfg, model=replace(cfg.model, arch=arch)), arch


@pytest.mark.parametrize(
    "name, extra",
    [
        ("default.yaml", {}),
        ("listops.yaml", SMALL_SETS),
        ("parity.yaml", SMALL_SETS),
        ("lm.yaml", {"data.context": 16, "data.train_windows": 16}),
    ],
)
def test_cheap_recipes_train(tmp_path, name, extra):
    cfg = build_config(CONFIG_DIR / name, {**SHRINK, **extra})
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["epochs"] == 1 and summary["dataset"] == cfg.data.name
    test = DATASETS[cfg.data.name].load(cfg.data).test
    # A language model's examples are its scored next tokens (targets not marked -100).
    expected = sum(int((y != -100).sum()) for _, y in test) if name == "lm.yaml" else len(test)
    assert summary["test"]["samples"] == expected
    assert (tmp_path / "run" / "best.pt").is_file()
