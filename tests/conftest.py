import pytest
import torch

from odetx.resolve import build_config
from odetx.training import Trainer

TINY = {
    "model.dim": 16,
    "model.depth": 2,
    "model.heads": 2,
    "train.epochs": 4,
    "train.batch_size": 128,
    "train.warmup_epochs": 1.0,
    "train.device": "cpu",
    "train.threads": 1,  # a fixed count: float sums, and so results, depend on it
}

# A language model of a few thousand parameters: one epoch of 32 windows of 16 tokens.
TINY_LM = {
    "data.train_windows": 32,
    "model.preset": "gpt-tiny",
    "model.dim": 16,
    "model.depth": 2,
    "model.heads": 2,
    "model.context": 16,
    "train.epochs": 1,
    "train.label_smoothing": 0.0,
    "train.device": "cpu",
    "train.threads": 1,
}


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread for the whole session. The models here are tiny and gain nothing
    from threads, while on a shared, busy CPU OpenMP's threads wait for each other at every
    operation: on 2 cores the fast lane went from ~1 to ~4 minutes under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config():
    def make(**overrides):
        return build_config(
            overrides={**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}}
        )

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished TINY run of two epochs (digits, parallel, Euler): read it, never change it."""
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(build_config(overrides={**TINY, "train.epochs": 2}), run).fit()
    return run
