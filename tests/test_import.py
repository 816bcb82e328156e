"""odetx import: randomly initialised transformers/timm models read as odetx runs compute
the source's function (logits within 1e-5 relative in float32), and bad sources are one
line. No downloads: every source is built here."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from odetx.cli.app import app

transformers = pytest.importorskip("transformers")

VOCAB = 320
PROSE = "The quick brown fox jumps over the lazy dog. " * 40


def save_with_tokenizer(model, folder):
    from odetx.data.tokenizer_sources import Fit, train_bpe

    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(train_bpe(Fit(lambda: iter([PROSE]), 300)).json)
    return folder


def hf_gpt2(tmp_path, **kw):
    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=32, n_embd=48, n_layer=3, n_head=4, **kw
    )
    return save_with_tokenizer(transformers.GPT2LMHeadModel(cfg).eval(), tmp_path / "gpt2")


def hf_neox(tmp_path, parallel=True, **kw):
    cfg = transformers.GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=32,
        use_parallel_residual=parallel,
        rotary_pct=0.25 if "rotary_pct" not in kw else kw.pop("rotary_pct"),
        **kw,
    )
    name = f"neox-{parallel}"
    return save_with_tokenizer(transformers.GPTNeoXForCausalLM(cfg).eval(), tmp_path / name)


def hf_llama(tmp_path, kind="llama", **kw):
    config, model = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }[kind]
    cfg = config(
        vocab_size=VOCAB,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=kw.pop("kv", 2),
        intermediate_size=80,
        max_position_embeddings=32,
        **kw,
    )
    net = model(cfg).eval()
    with torch.no_grad():  # RMSNorm gains start at 1: make them tell layers apart
        for name, p in net.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return save_with_tokenizer(net, tmp_path / kind)


def randomise_norms(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln" in name:
                p.add_(torch.randn_like(p) * 0.2)
    return model


def run_import(src, out, *extra):
    result = CliRunner().invoke(app, ["import", str(src), "--out", str(out), *extra])
    return result


def logits_of_run(run, ids):
    from odetx.evaluation import load_model

    loaded = load_model(run)
    with torch.no_grad():
        return loaded.model(ids)


def hf_logits(folder, ids):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(ids).logits


def assert_close(ours, theirs):
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() <= 1e-5 * scale, float((ours - theirs).abs().max() / scale)


IDS = torch.randint(0, VOCAB, (2, 32), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "make, arch",
    [
        (lambda p: hf_gpt2(p), "sequential"),
        (lambda p: hf_gpt2(p, activation_function="gelu"), "sequential"),
        (lambda p: hf_neox(p, parallel=True), "parallel"),
        (lambda p: hf_neox(p, parallel=False), "sequential"),
        (lambda p: hf_neox(p, rotary_pct=1.0, tie_word_embeddings=True), "parallel"),
        (lambda p: hf_llama(p), "sequential"),
        (lambda p: hf_llama(p, kv=1), "sequential"),  # multi-query
        (lambda p: hf_llama(p, kv=6, tie_word_embeddings=True), "sequential"),
        (lambda p: hf_llama(p, "qwen2"), "sequential"),
        (lambda p: hf_llama(p, "mistral", sliding_window=16), "sequential"),
    ],
    ids=[
        "gpt2", "gpt2-gelu", "neox-parallel", "neox-sequential", "neox-full-rotary-tied",
        "llama-gqa", "llama-mqa", "llama-mha-tied", "qwen2", "mistral-window",
    ],
)  # fmt: skip
def test_an_imported_language_model_is_its_source(tmp_path, make, arch):
    src = make(tmp_path)
    result = run_import(src, tmp_path / "run")
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "run/summary.json").read_text())
    assert cfg["arch"] == arch
    n = 16 if "mistral" in str(src) else 32  # Mistral: within its sliding window
    ours = logits_of_run(tmp_path / "run", IDS[:, :n])
    assert_close(ours, hf_logits(src, IDS[:, :n]))


def test_the_source_tokenizer_comes_along_and_generate_speaks_text(tmp_path):
    src = hf_gpt2(tmp_path)
    assert run_import(src, tmp_path / "run").exit_code == 0
    assert (tmp_path / "run/tokenizer.json").read_text() == (src / "tokenizer.json").read_text()
    result = CliRunner().invoke(
        app, ["generate", str(tmp_path / "run"), "--prompt", "The quick", "--max-new-tokens", "4"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("The quick")


def test_the_seed_papers_question_asked_of_an_imported_model(tmp_path):
    """GPT-2 is sequential; integrated as the parallel arch (or with another solver) it is
    another function of the same weights, evaluated like any run."""
    from odetx.evaluation import load_model

    src = hf_gpt2(tmp_path)
    run_import(src, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    with torch.no_grad():
        seq = loaded.model(IDS)
        par = loaded.rebuild(loaded.solver, arch="parallel")(IDS)
        rk4 = load_model(tmp_path / "run", {"method": "rk4"}).model(IDS)
    assert not torch.allclose(seq, par) and not torch.allclose(seq, rk4)
    assert torch.isfinite(par).all() and torch.isfinite(rk4).all()


def timm_vit(tmp_path, name="vit_tiny_patch16_224", **args):
    timm = pytest.importorskip("timm")
    from timm.models import _hub

    args = {"img_size": 32, "patch_size": 8, "depth": 2, "num_heads": 4, "embed_dim": 64,
            "num_classes": 7, **args}  # fmt: skip
    model = randomise_norms(timm.create_model(name, pretrained=False, **args).eval())
    folder = tmp_path / name
    _hub.save_for_hf(model, folder, model_args=args)
    return model, folder


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_small_patch16_224"])
@pytest.mark.parametrize("pool", ["token"])
def test_an_imported_vit_is_its_source(tmp_path, name, pool):
    model, folder = timm_vit(tmp_path, name, global_pool=pool)
    result = run_import(folder, tmp_path / "run")
    assert result.exit_code == 0, result.output
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert_close(logits_of_run(tmp_path / "run", images), model(images))


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda p: timm_vit(p, "deit_tiny_distilled_patch16_224")[1], "distilled"),
        (lambda p: timm_vit(p, init_values=1e-5)[1], "layer scale"),
        (lambda p: hf_gpt2(p, activation_function="relu"), "activation_function"),
        (lambda p: hf_llama(p, rope_scaling={"rope_type": "linear", "factor": 2.0}), "rotary"),
    ],
    ids=["distilled", "layer-scale", "relu", "rope-scaling"],
)
def test_what_odetx_cannot_express_is_refused_in_one_line(tmp_path, setup, needle):
    src = setup(tmp_path)
    result = run_import(src, tmp_path / "run")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_bad_sources_are_one_line_and_write_nothing(tmp_path, monkeypatch):
    src = hf_gpt2(tmp_path)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (bert / "model.safetensors").write_bytes(b"")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((src / "config.json").read_text())
    (broken / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:5000])
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    cfg = json.loads((src / "config.json").read_text())
    cfg["n_layer"] = 5  # the weights hold 3
    (wrong / "config.json").write_text(json.dumps(cfg))
    (wrong / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text("{not json")
    cases = [
        (bert, 2, "'bert' model; odetx imports"),
        (broken, 1, "cannot read weights"),
        (wrong, 1, "lack 'transformer.h.3"),
        (junk, 1, "not valid JSON"),
        (tmp_path / "absent", 1, "no model at"),
    ]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cases.append(("hf-hub:EleutherAI/pythia-160m", 1, "not in the local cache under"))
    for source, code, needle in cases:
        result = run_import(source, tmp_path / "run")
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == code and len(lines) == 1, (source, result.output)
        assert needle in lines[0], (source, lines)
        assert "Traceback" not in result.output
        assert not (tmp_path / "run").exists()


def test_import_refuses_to_overwrite_a_run(tmp_path, trained_run):
    src = hf_gpt2(tmp_path)
    import shutil

    shutil.copytree(trained_run, tmp_path / "run")
    result = run_import(src, tmp_path / "run")
    assert result.exit_code == 2 and "--force" in result.output
    assert run_import(src, tmp_path / "run", "--force").exit_code == 0


def test_everything_works_on_an_imported_model(tmp_path):
    """eval with another arch and solver, compare, export and fine-tuning, on text
    prepared with the imported run's own tokenizer."""
    from odetx.data.prepare import prepare_text

    src = hf_neox(tmp_path)
    assert run_import(src, tmp_path / "run").exit_code == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "input.txt").write_text(PROSE * 4)
    tokens = prepare_text(corpus, tmp_path / "tok", str(tmp_path / "run/tokenizer.json")).folder
    invoke = CliRunner().invoke
    result = invoke(app, ["eval", str(tmp_path / "run"), "--data-dir", str(tokens), "--json",
                          "--arch", "sequential", "--solver", "rk4"])  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert (row["arch"], row["trained_arch"], row["solver"]["method"]) == (
        "sequential",
        "parallel",
        "rk4",
    )
    assert row["nfe"] == 3 * 4  # rk4: four evaluations a layer
    result = invoke(app, ["compare", str(tmp_path / "run"), "--data-dir", str(tokens),
                          "--solver", "euler", "--solver", "midpoint",
                          "--steps", "1,2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(app, ["inspect", str(tmp_path / "run"), "--data-dir", str(tokens),
                          "--n", "2", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for fmt in ("m.ts", "m.pt2", "m.onnx"):
        result = invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / fmt)])
        assert result.exit_code == 0, (fmt, result.output)
    result = invoke(
        app,
        ["train", "--init-from", str(tmp_path / "run"), "--dataset", "tokens", "--data-dir",
         str(tokens), "--epochs", "1", "--set", "data.train_windows=8", "--set",
         "data.context=16", "--threads", "1", "--out", str(tmp_path / "tuned"),
         "-c", str(tmp_path / "run/config.yaml")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_an_imported_vit_predicts_and_exports(tmp_path):
    from torchvision.io import write_png

    model, folder = timm_vit(tmp_path)
    assert run_import(folder, tmp_path / "run").exit_code == 0
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    write_png(image, str(tmp_path / "x.png"))
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), str(tmp_path / "x.png"),
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # The source's own preprocessing (timm's mean and std 0.5) gives the same class.
    x = (image.float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        expected = int(model(x[None]).argmax())
    out = json.loads(result.output.strip().splitlines()[-1])
    rows = out if isinstance(out, list) else out.get("predictions", [out])
    assert rows[0]["top"][0]["class"] in (expected, str(expected)), rows
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--out",
                                      str(tmp_path / "vit.onnx")])  # fmt: skip
    assert result.exit_code == 0, result.output
