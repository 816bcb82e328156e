"""EMA, gradient accumulation, optimiser choice, init-from, augmentation, top-5, TensorBoard:
each against a hand computation or a plainly written reference."""

import copy
import importlib.util

import pytest
import torch
from torch import nn

from odetx.artefacts import load_checkpoint, save_checkpoint
from odetx.config import TrainConfig
from odetx.data import DATASETS
from odetx.errors import ConfigError, Interrupted
from odetx.evaluation.loop import evaluate, top_k_hits
from odetx.resolve import build_config
from odetx.training import Trainer, prepare_run
from odetx.training.ema import WeightAverage
from odetx.training.optim import build_optimizer
from odetx.training.transfer import init_from
from tests.test_data_images import make_cifar


def test_ema_is_the_hand_computed_exponential_average():
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.75, every=1)
    expected = None
    for step in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(step))
        ema.step(model, step)
        w = model.weight.detach().clone()
        expected = w if expected is None else 0.75 * expected + 0.25 * w
    assert torch.allclose(ema.module.weight, expected, atol=1e-6)
    assert ema.updates == 4


def test_ema_every_skips_steps():
    model = nn.Linear(2, 1)
    ema = WeightAverage(model, decay=0.5, every=2)
    for step in range(1, 4):
        ema.step(model, step)
    assert ema.updates == 1  # only step 2


def test_sgd_momentum_step_matches_a_hand_computation():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    t = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0)
    opt = build_optimizer(model, t)
    assert isinstance(opt, torch.optim.SGD)
    w = torch.tensor([1.0, -2.0])
    v = torch.zeros(2)
    g = torch.tensor([3.0, 4.0])
    for _ in range(3):
        opt.zero_grad()
        model.weight.grad = g.view(1, 2).clone()
        opt.step()
        v = 0.9 * v + g  # PyTorch's (Sutskever) form: v <- mu v + g; w <- w - lr v
        w = w - 0.1 * v
    assert torch.allclose(model.weight.detach().view(-1), w, atol=1e-6)


def test_nesterov_needs_sgd_with_momentum():
    with pytest.raises(ConfigError, match="train.nesterov"):
        build_config(overrides={"train.nesterov": True})
    with pytest.raises(ConfigError, match="train.optimizer"):
        build_config(overrides={"train.optimizer": "lion"})


def _one_step(tiny_config, tmp_path, name, **overrides):
    cfg = tiny_config(
        train__epochs=1,
        train__mixup=0.0,
        model__dropout=0.0,
        train__warmup_epochs=0.0,
        **overrides,
    )
    trainer = Trainer(cfg, tmp_path / name)
    trainer._setup()
    # One optimiser step only: cut the loader to the batches of the first step.
    batches = list(trainer.train_loader)[: cfg.train.accumulate]
    trainer.sampler = None
    trainer.train_loader = _Fixed(batches)
    trainer._train_epoch()
    trainer.lock.release()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


class _Fixed(list):
    """A list of batches standing in for a loader (the epoch reseeds its generator)."""

    generator = torch.Generator()


def test_accumulating_two_half_batches_equals_one_batch(tiny_config, tmp_path):
    whole = _one_step(tiny_config, tmp_path, "a", train__batch_size=64, train__accumulate=1)
    # Batches of 32 come in another shuffle order; rebuild the same 64 examples instead.
    cfg = tiny_config(
        train__epochs=1,
        train__mixup=0.0,
        model__dropout=0.0,
        train__warmup_epochs=0.0,
        train__batch_size=64,
    )
    trainer = Trainer(cfg, tmp_path / "b")
    trainer._setup()
    trainer.train_loader.generator.manual_seed(cfg.train.seed * 1_000_003)
    x, y = next(iter(trainer.train_loader))
    trainer.lock.release()
    cfg2 = tiny_config(
        train__epochs=1,
        train__mixup=0.0,
        model__dropout=0.0,
        train__warmup_epochs=0.0,
        train__batch_size=32,
        train__accumulate=2,
    )
    t2 = Trainer(cfg2, tmp_path / "c")
    t2._setup()
    t2.sampler = None
    t2.train_loader = _Fixed([(x[:32], y[:32]), (x[32:], y[32:])])
    t2._train_epoch()
    t2.lock.release()
    assert t2.progress.step == 1
    for k, v in whole.items():
        assert torch.allclose(t2.model.state_dict()[k], v, atol=1e-6), k


def test_top5_counts_targets_among_the_five_highest_logits():
    logits = torch.tensor(
        [[9.0, 8, 7, 6, 5, 4, 3], [1.0, 2, 3, 4, 5, 6, 7], [0.0, 0, 0, 0, 0, 0, 1]]
    )
    y = torch.tensor([4, 0, 6])  # rank 5 (hit), rank 7 (miss), rank 1 (hit)
    assert top_k_hits(logits, y, 5) == 2
    assert top_k_hits(logits[:, :5], torch.tensor([0, 0, 0]), 5) == 0  # <= 5 classes: none


def test_evaluation_reports_top5_for_more_than_five_classes(trained_run):
    from odetx.evaluation import eval_loader, load_model, load_split

    loaded = load_model(trained_run)
    loader = eval_loader(loaded, load_split(loaded, "val"))
    result = evaluate(loaded.model, loader, loaded.device)
    hits = n = 0
    with torch.no_grad():
        for x, y in loader:
            top = loaded.model(x).argsort(-1, descending=True)[:, :5]
            hits += sum(int(y[i] in top[i]) for i in range(len(y)))
            n += len(y)
    assert result.top5 == pytest.approx(hits / n)


def test_init_from_loads_weights_and_renews_a_head_of_another_class_count(tmp_path, trained_run):
    cfg = build_config(overrides={"model.dim": 16, "model.depth": 2, "model.heads": 2})
    ckpt = load_checkpoint(trained_run / "best.pt")
    info = DATASETS["digits"].info(cfg.data)
    from odetx.models import build_model

    model = build_model(cfg.model, cfg.solver, info)
    assert init_from(model, trained_run) == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
    # The same backbone with a 7-class head: the head starts afresh, the rest is loaded.
    seven = copy.deepcopy(ckpt)
    seven["model"]["head.weight"] = torch.zeros(7, 16)
    seven["model"]["head.bias"] = torch.zeros(7)
    save_checkpoint(
        tmp_path / "seven.pt", {k: v for k, v in seven.items() if k not in ("format", "version")}
    )
    fresh_model = build_model(cfg.model, cfg.solver, info)
    head = fresh_model.head.weight.detach().clone()
    assert sorted(init_from(fresh_model, tmp_path / "seven.pt")) == ["head.bias", "head.weight"]
    assert torch.equal(fresh_model.head.weight, head)
    name = next(k for k in ckpt["model"] if not k.startswith("head."))
    assert torch.equal(fresh_model.state_dict()[name], ckpt["model"][name])
    # Another width is refused in one line naming the weight.
    wide = build_model(
        build_config(overrides={"model.dim": 24, "model.depth": 2, "model.heads": 2}).model,
        cfg.solver,
        info,
    )
    with pytest.raises(ConfigError, match="only the head may change shape") as e:
        init_from(wide, trained_run)
    assert "\n" not in str(e.value)


def test_init_from_cannot_be_combined_with_resume(trained_run):
    with pytest.raises(ConfigError, match="--init-from"):
        prepare_run(None, {"train.init_from": str(trained_run)}, resume=trained_run)


def test_augmentation_policies_apply_to_train_only_and_keep_shapes(tmp_path):
    make_cifar(tmp_path, 100)
    cfg = build_config(
        overrides={
            "data.name": "cifar100",
            "data.root": str(tmp_path),
            "data.randaugment": "rand-m9-n2",
            "data.random_erasing": 1.0,
        }
    )
    splits = DATASETS["cifar100"].load(cfg.data)
    assert splits.train.erase is not None and splits.train.augment is not None
    assert splits.val.erase is None and splits.val.augment is None
    assert splits.test.augment is None
    x, y = splits.train[0]
    ref, _ = splits.val[0]
    assert x.shape == ref.shape == (3, 32, 32) and x.dtype == ref.dtype == torch.float32
    torch.manual_seed(0)
    first = splits.val[0][0]
    assert torch.equal(first, splits.val[0][0])  # evaluation is never augmented


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"data.randaugment": "rand-m99"}, "data.randaugment"),
        ({"data.randaugment": "auto"}, "data.randaugment"),
        ({"data.random_erasing": 0.25}, "data.random_erasing"),  # digits: never augmented
        ({"train.ema": 1.0}, "train.ema"),
        ({"train.accumulate": 0}, "train.accumulate"),
    ],
)
def test_bad_feature_settings_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        build_config(overrides=overrides)


def test_a_resumed_ema_run_ends_like_an_uninterrupted_one(tiny_config, tmp_path):
    straight = Trainer(tiny_config(train__ema=0.9), tmp_path / "a").fit()

    def stop(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        Trainer(tiny_config(train__ema=0.9), tmp_path / "b", callbacks=[stop]).fit()
    plan = prepare_run(None, {}, resume=tmp_path / "b")
    resumed = Trainer(plan.config, plan.run_dir, plan.checkpoint).fit()
    assert resumed["test"] == {
        **straight["test"],
        "samples_per_s": resumed["test"]["samples_per_s"],
    }
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    for k, v in a["model_ema"].items():
        assert torch.equal(v, b["model_ema"][k]), k
    assert a["ema_updates"] == b["ema_updates"]


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard extra")
def test_tensorboard_logs_the_metrics_rows(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(tiny_config(train__epochs=2, train__tensorboard=True), tmp_path / "run").fit()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"val_acc", "val_top5", "train_loss"} <= set(acc.Tags()["scalars"])
    last = dict(zip(header, rows[-1].split(","), strict=True))
    events = acc.Scalars("val_acc")
    assert [e.step for e in events] == [1, 2]
    assert events[-1].value == pytest.approx(float(last["val_acc"]), rel=1e-5)


@pytest.mark.parametrize("name", ["cifar100-deit-tiny.yaml", "cifar100-cct.yaml"])
def test_cifar_recipes_train_one_tiny_step_on_fake_files(tmp_path, name):
    from tests.test_configs import CONFIG_DIR

    make_cifar(tmp_path / "data", 100)
    cfg = build_config(
        CONFIG_DIR / name,
        {
            "data.root": str(tmp_path / "data"),
            "model.dim": 16,
            "model.depth": 2,
            "model.heads": 2,
            "train.epochs": 1,
            "train.batch_size": 32,
            "train.device": "cpu",
            "train.threads": 1,
        },
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary["epochs"] == 1 and "top5" in summary["test"]
