import pytest

from odetx.resolve import build_config

TINY = {
    "model.dim": 16,
    "model.depth": 2,
    "model.heads": 2,
    "train.epochs": 4,
    "train.batch_size": 128,
    "train.warmup_epochs": 1.0,
    "train.device": "cpu",
}


@pytest.fixture
def tiny_config():
    def make(**overrides):
        return build_config(
            overrides={**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}}
        )

    return make
