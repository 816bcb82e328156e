"""Generation: the key/value cache is exact, long prompts slide, bad input is one line."""

import math

import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app
from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.errors import SolverError
from odetx.evaluation.generate import Generation, Sampling, next_token
from odetx.models import ARCHS
from odetx.models.kvcache import KVCache
from odetx.resolve import build_config, create_model
from odetx.training import Trainer
from tests.conftest import TINY_LM

INFO = DataInfo("text", 256, vocab_size=256, max_len=12)


def tiny_lm(arch: str, solver: SolverConfig, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(preset="gpt-tiny", arch=arch, depth=2, dim=16, heads=2, context=12, **kw)
    return create_model(cfg, solver, INFO).double().eval()


@pytest.mark.parametrize("arch", ARCHS.names())
@pytest.mark.parametrize(
    "solver, kw",
    [
        (SolverConfig("euler"), {}),
        (SolverConfig("rk4", steps=2), {}),
        (SolverConfig("midpoint"), {"groups": 1}),
    ],
    ids=["euler", "rk4x2", "midpoint-shared"],
)
def test_feeding_one_token_at_a_time_with_the_cache_equals_the_whole_window(arch, solver, kw):
    model = tiny_lm(arch, solver, **kw)
    tokens = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model(tokens)  # (1, 9, vocab), no cache
        with KVCache(model) as cache:
            cache.begin()
            pieces = [model.forward_from(tokens[:, :4], 0)]  # a prompt of 4, then one by one
            cache.commit(4)
            for i in range(4, 9):
                cache.begin()
                pieces.append(model.forward_from(tokens[:, i : i + 1], i))
                cache.commit(1)
        stepped = torch.cat(pieces, dim=1)
    assert (stepped - whole).abs().max() < 1e-12


def test_the_fused_layer_caches_exactly_too():
    model = tiny_lm("parallel", SolverConfig("heun"), shared_norm=True, fused=True, dropout=0.0)
    tokens = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model(tokens)
    with torch.no_grad(), KVCache(model) as cache:
        cache.begin()
        model.forward_from(tokens[:, :5], 0)
        cache.commit(5)
        cache.begin()
        last = model.forward_from(tokens[:, 5:], 5)
    assert (last[0, 0] - whole[0, 5]).abs().max() < 1e-12


def test_the_cache_leaves_the_model_as_it_was():
    model = tiny_lm("sequential", SolverConfig("euler"))
    tokens = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(tokens)
        with KVCache(model):
            pass
        assert torch.equal(model(tokens), before)


def test_greedy_and_top_k_sampling():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    gen = torch.Generator().manual_seed(0)
    assert next_token(logits, Sampling(temperature=0.0), gen) == 1
    # top-k 2 never draws outside the two most likely; at a high temperature both appear.
    drawn = {next_token(logits, Sampling(temperature=50.0, top_k=2), gen) for _ in range(200)}
    assert drawn == {1, 2}
    # Plain sampling follows softmax(logits / T): the frequency of token 3 at T = 1.
    counts = sum(next_token(logits, Sampling(), gen) == 3 for _ in range(4000))
    p3 = math.exp(-1.0) / sum(math.exp(v) for v in logits.tolist())
    assert abs(counts / 4000 - p3) < 4 * math.sqrt(p3 * (1 - p3) / 4000) + 1e-3


def test_a_temperature_too_small_to_divide_by_takes_the_most_likely_token():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    gen = torch.Generator().manual_seed(0)
    for t in (1e-320, 5e-324, 1e-308):  # logits / t overflows float64: softmax would be nan
        for k in (0, 2):
            assert next_token(logits, Sampling(temperature=t, top_k=k), gen) == 1
    assert next_token(logits, Sampling(temperature=1e-300), gen) == 1  # finite, and one-hot
    with pytest.raises(SolverError, match="logits are not finite"):
        next_token(torch.tensor([0.0, float("nan")]), Sampling(), gen)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "input.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    cfg = build_config(
        overrides={**TINY_LM, "data.name": "text", "data.root": str(root), "data.vocab": "char"}
    )
    Trainer(cfg, root / "run").fit()
    return root / "run"


def test_cached_and_uncached_generation_agree_also_past_the_context(lm_run):
    from odetx.evaluation import load_model

    loaded = load_model(lm_run)
    sampling = Sampling(max_new_tokens=40, temperature=1.0, top_k=5, seed=3)  # 40 > context 16
    prompt = "the lazy dog. the quick brown fox "  # 34 characters: the prompt slides too
    with_cache = Generation(loaded, prompt, sampling, cache=True)
    text = "".join(with_cache.stream())
    without = "".join(Generation(loaded, prompt, sampling, cache=False).stream())
    assert with_cache.cached and with_cache.tokens == 40
    assert text == without and len(text) == 40


def test_an_adaptive_solver_recomputes(lm_run):
    from odetx.evaluation import load_model

    loaded = load_model(lm_run, {"method": "dopri5"})
    run = Generation(loaded, "the ", Sampling(max_new_tokens=3), cache=True)
    assert not run.cached and len("".join(run.stream())) == 3


def test_a_tiny_temperature_generates_greedily(lm_run):
    args = ["generate", str(lm_run), "--prompt", "the ", "--max-new-tokens", "8"]
    tiny = CliRunner().invoke(app, [*args, "--temperature", "1e-320"])
    greedy = CliRunner().invoke(app, [*args, "--temperature", "0"])
    assert tiny.exit_code == 0 and "Traceback" not in tiny.output, tiny.output
    assert tiny.stdout.splitlines()[0] == greedy.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["--prompt", ""], 2, "--prompt: is empty"),
        (["--prompt", "the", "--max-new-tokens", "0"], 2, "--max-new-tokens: must be positive"),
        (["--prompt", "the", "--temperature", "-1"], 2, "--temperature: must be >= 0"),
        (["--prompt", "the", "--top-k", "999"], 2, "--top-k: must lie in"),
        (["--prompt", "thé"], 2, "the prompt has the character 'é'"),
    ],
)
def test_bad_generation_input_is_one_line(lm_run, args, code, needle):
    result = CliRunner().invoke(app, ["generate", str(lm_run), *args])
    assert result.exit_code == code, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_generate_refuses_a_classifier(tmp_path, tiny_config):
    Trainer(tiny_config(train__epochs=1), tmp_path / "run").fit()
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "run"), "--prompt", "a"])
    assert result.exit_code == 1 and "generate needs a language model" in result.output
