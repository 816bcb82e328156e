"""``odetx import``: a pretrained transformer read as an ODE, as an ordinary run directory.

Each family (:mod:`.gpt2`, :mod:`.neox`, :mod:`.llama`, :mod:`.vit`) maps its source's
layer onto odetx's field (norm, MLP, attention, positions) and arch, with one group per
layer and one Euler step (G = D), so the imported model computes the source's function;
:func:`import_model` checks every weight has its place and writes ``config.yaml``,
``best.pt``, ``summary.json`` (recording the source) and, for a language model, the
source's ``tokenizer.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from odetx.artefacts import RunDir, save_checkpoint
from odetx.config import Config, from_dict
from odetx.data.tokenizer import HFTokenizer
from odetx.errors import ConfigError, DataInputError
from odetx.importers import gpt2, llama, neox, vit  # noqa: F401  (each registers its family)
from odetx.importers.family import FAMILIES, Family, Imported
from odetx.importers.source import Source, SourceError
from odetx.io import write_text
from odetx.models import build_model
from odetx.resolve import resolve

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ImportResult:
    run: Path
    family: str
    config: Config
    params: int
    about: dict[str, Any]


def find_family(src: Source) -> Family:
    for _, family in FAMILIES.items():
        if family.matches(src):
            return family
    kind = src.config.get("model_type") or src.config.get("architecture") or "unknown"
    raise ConfigError(
        "SRC",
        f"{src.folder} holds a {str(kind)[:60]!r} model; odetx imports: "
        + "; ".join(f"{name} ({f.description})" for name, f in FAMILIES.items()),
    )


def _config(imported: Imported) -> Config:
    data = imported.data
    if imported.info.kind == "text":  # its text: a corpus prepared with its tokenizer
        data = {"name": "tokens", "vocab_size": imported.info.vocab_size, **data}
    tree = {
        "model": imported.model,
        "solver": {"method": "euler", "steps": 1},
        "data": data,
        "train": {"device": "cpu", "threads": 1},
    }
    return resolve(from_dict(Config, tree))


def _check_weights(cfg: Config, imported: Imported) -> int:
    """Every weight of the odetx model has its tensor, of its shape, and nothing is left
    over; returns the parameter count. The model is built without storage."""
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.solver, imported.info)
    own = model.state_dict()
    missing = [k for k in own if k not in imported.state]
    extra = [k for k in imported.state if k not in own]
    if missing or extra:
        what = f"no source weight for {missing[0]}" if missing else f"no place for {extra[0]}"
        raise SourceError(f"the source does not map onto odetx's model: {what}")
    for name, t in own.items():
        if tuple(imported.state[name].shape) != tuple(t.shape):
            raise SourceError(
                f"the source's {name} is {tuple(imported.state[name].shape)}; "
                f"odetx's model needs {tuple(t.shape)}"
            )
    return sum(p.numel() for p in model.parameters())


def import_model(
    source: str | Path, out: str | Path, force: bool = False, dtype: str = "float32"
) -> ImportResult:
    """Read ``source`` and write the run directory ``out``.

    Raises:
        ConfigError: an unsupported family or setting, a bad ``dtype``, an ``out`` that
            holds a run (without ``force``).
        CheckpointError: a source that is missing, damaged or whose weights disagree
            with its config.
    """
    if dtype not in DTYPES:
        raise ConfigError("--dtype", f"choose one of: {', '.join(DTYPES)}")
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise ConfigError("--out", f"{run.path} is a file")
    taken = [p.name for p in run.files()]
    if taken and not force:
        raise ConfigError(
            "--out", f"{run.path} holds {', '.join(taken)}; choose another --out or pass --force"
        )
    src = Source(source)
    family = find_family(src)
    imported = family.convert(src)
    tokenizer = src.tokenizer_json() if imported.info.kind == "text" else ""
    if tokenizer:
        tok = HFTokenizer(tokenizer, f"{src.folder}/tokenizer.json")
        if tok.size > imported.info.vocab_size:
            raise DataInputError(
                f"{src.folder}/tokenizer.json has {tok.size} ids, the model only "
                f"{imported.info.vocab_size}"
            )
        imported.info = dataclasses.replace(imported.info, tokenizer=tokenizer, unit="token")
    cfg = _config(imported)
    params = _check_weights(cfg, imported)
    state = {
        k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in imported.state.items()
    }
    about = {
        "source": str(source),
        "folder": str(src.folder.resolve()),
        "family": family.name,
        "model_type": src.config.get("model_type") or src.config.get("architecture"),
        "dtype": dtype,
        **imported.about,
    }
    run.path.mkdir(parents=True, exist_ok=True)
    for p in run.files():
        p.unlink()
    run.write_config(cfg.to_dict())
    payload = {
        "config": cfg.to_dict(),
        "data_info": dataclasses.asdict(imported.info),
        "model": state,
        "params": params,
        "epoch": 0,
        "best_epoch": 0,
    }
    save_checkpoint(run.best, payload)
    if tokenizer:
        write_text(run.path / "tokenizer.json", tokenizer)
    run.write_summary({"imported": about, "params": params, "arch": cfg.model.arch})
    return ImportResult(run.path, family.name, cfg, params, about)


__all__ = ["FAMILIES", "ImportResult", "import_model"]
