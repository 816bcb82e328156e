"""Classify files with a trained model: a checkpoint or an exported artefact.

Inputs are read as the run's data was: images are decoded by the decoder image folders
use (:mod:`odetx.data.decode`: PNG, JPEG, GIF, WebP; 8- or 16-bit; any colour mode
turned grey or RGB to the run's channels), resized to its size and normalised with
its dataset's statistics, and classes are named where the run knows their names
(image folders); token models read one example per text line (parity: a string
of 0s and 1s; listops: the space-separated tokens of its files). An input that cannot
be read becomes one :class:`Failure`; the others are still predicted.

Language models are not classifiers: ``odetx generate`` continues their text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from odetx.artefacts.modelfile import EXPORTS, identify, read_export
from odetx.data import digits, listops, parity
from odetx.data.base import DataInfo
from odetx.data.decode import read_image as read_pixels
from odetx.data.images import IMAGE_DATASETS
from odetx.errors import ConfigError, DataError, ModelFileError
from odetx.evaluation.load import load_model
from odetx.registry import Registry


@dataclass(frozen=True)
class Predictor:
    """A model called like the eager one, with what reading its inputs needs."""

    model: Callable[..., Tensor]
    info: DataInfo
    data_name: str
    source: Path
    data: dict = field(default_factory=dict)  # the run's data config (folder statistics)


@dataclass(frozen=True)
class Prediction:
    input: str
    top: list[tuple[int | str, float]]  # (class name, or index, and probability), most likely first
    nfe: float | None = None  # field evaluations this input took (per-sample: its difficulty)

    def to_dict(self) -> dict:
        out = {"input": self.input, "top": [{"class": c, "prob": p} for c, p in self.top]}
        if self.nfe is not None:
            out["nfe"] = self.nfe
        return out


@dataclass(frozen=True)
class Failure:
    input: str
    reason: str


# ----------------------------------------------------------------- loading


def _metadata_predictor(model: Callable[..., Tensor], meta: str, path: Path) -> Predictor:
    try:
        record = json.loads(meta)
        info = DataInfo(**record["data_info"])
        data = record["config"]["data"]
        name = data["name"]
    except (ValueError, KeyError, TypeError):
        raise ModelFileError(f"{path} carries no odetx.json metadata") from None
    return Predictor(model, info, name, path, data)


def load_predictor(
    source: str | Path, ema: bool = True, solver_overrides: dict | None = None
) -> Predictor:
    """A checkpoint or run directory (``ema`` picks a ``train.ema`` run's average; its solver
    or ``solver_overrides``), or an exported TorchScript/``.pt2``/ONNX file described by its
    ``odetx.json``; told apart by content (:func:`~odetx.artefacts.modelfile.identify`),
    never by suffix."""
    found = identify(source)
    overrides = {k: v for k, v in (solver_overrides or {}).items() if v is not None}
    if found.kind in EXPORTS:
        if overrides:
            flag = "--per-sample" if "per_sample" in overrides else f"--{next(iter(overrides))}"
            raise ConfigError(flag, f"{found.path} is an export: its solver is baked in")
        export = read_export(found)
        predictor = _metadata_predictor(export.module, export.metadata, found.path)
    else:  # a run directory or a checkpoint; anything else is refused there, by what it is
        loaded = load_model(found.path, overrides, device="cpu", ema=ema)
        predictor = Predictor(
            loaded.model.eval(),
            loaded.info,
            loaded.config.data.name,
            loaded.path,
            asdict(loaded.config.data),
        )
    if predictor.info.kind == "text":
        raise ConfigError(
            "MODEL", "a language model predicts text, not classes; use odetx generate"
        )
    return predictor


# ----------------------------------------------------------------- reading inputs


def image_statistics(data_name: str, data: dict | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of the run's training images, on pixels in [0, 1]: an image
    folder's as its config (``data``) recorded them."""
    if data and data.get("mean") and data.get("std"):
        return torch.tensor(data["mean"]).float(), torch.tensor(data["std"]).float()
    if data_name in IMAGE_DATASETS:
        spec = IMAGE_DATASETS[data_name]
        return torch.tensor(spec.mean), torch.tensor(spec.std)
    pixels, labels = digits.read_raw()  # the digits are normalised by their own split
    train = torch.from_numpy(pixels[digits.stratified_split(labels)["train"]] / 16.0).float()
    return train.mean().reshape(1), train.std().reshape(1)


def read_image(path: Path, info: DataInfo, mean: Tensor, std: Tensor) -> Tensor:
    """``(C, H, W)`` float32 as the model saw its training images."""
    x = read_pixels(path, info.in_chans, info.image_size)
    return (x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)


def encode_parity(line: str) -> list[int]:
    if not line or set(line) - {"0", "1"}:
        raise DataError("a parity example is a string of 0s and 1s")
    return [parity.BIT_TOKEN[int(c)] for c in line]


def encode_listops(line: str) -> list[int]:
    tokens = line.split()
    unknown = sorted({t for t in tokens if t not in listops.TOKEN_ID or t == listops.VOCAB[0]})
    if not tokens or unknown:
        raise DataError(f"not a ListOps expression (unknown tokens: {' '.join(unknown[:5])})")
    return [listops.TOKEN_ID[t] for t in tokens]


ENCODERS: Registry[Callable[[str], list[int]]] = Registry("token dataset")
ENCODERS.register("parity", encode_parity)
ENCODERS.register("listops", encode_listops)


def read_lines(sources: Sequence[str], stdin: Callable[[], str]) -> list[tuple[str, str]]:
    """``(name, line)`` for every non-empty line; ``-`` is standard input."""
    out = []
    for source in sources:
        if source == "-":
            text = stdin()
        else:
            try:
                text = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                out.append((source, f"\0{getattr(e, 'strerror', None) or e}"))
                continue
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                out.append((f"{source}:{i}", line.strip()))
    return out


# ----------------------------------------------------------------- predicting


def input_nfe(model) -> float | None:
    """Field evaluations of the last call of ``model`` on one input: per-sample integrators
    (eager or TorchScript) count each input's own; other eager integrators their count per
    forward. None where the model does not say (a fixed-step TorchScript block, pt2, ONNX)."""
    stack = getattr(model, "stack", None)
    if stack is None:
        return None
    total = 0.0
    for block in stack.blocks.children():
        own = getattr(block, "sample_nfe", None)
        if isinstance(own, Tensor) and own.numel() == 1:
            total += float(own[0])
            continue
        if isinstance(block, torch.jit.ScriptModule) or not hasattr(block, "nfe"):
            return None  # TorchScript's nfe() is not compiled; a pt2 module has none
        total += float(block.nfe())
    return total


def _call(p: Predictor, *inputs: Tensor) -> tuple[Tensor, float | None]:
    """The logits of one input, and the field evaluations they took."""
    stack = getattr(p.model, "stack", None)
    if stack is not None and hasattr(stack, "reset_nfe"):
        stack.reset_nfe()
    logits = p.model(*inputs)[0]
    return logits, input_nfe(p.model)


def top_k(logits: Tensor, k: int) -> list[tuple[int, float]]:
    probs = logits.double().softmax(-1)
    values, idx = probs.topk(min(k, probs.numel()))
    return [(int(i), float(v)) for i, v in zip(idx, values, strict=True)]


def named(top: list[tuple[int, float]], info: DataInfo) -> list[tuple[int | str, float]]:
    """``top`` with each class index replaced by its name, where the run knows the names."""
    if not info.classes:
        return list(top)
    return [(info.classes[c], prob) for c, prob in top]


@torch.no_grad()
def predict(
    source: str | Path,
    inputs: Sequence[str],
    k: int = 5,
    ema: bool = True,
    stdin: Callable[[], str] | None = None,
    solver_overrides: dict | None = None,
) -> tuple[list[Prediction], list[Failure]]:
    """Top-``k`` classes for every input (image files, or text lines for token models), and
    the field evaluations each took (with per-sample steps, a difficulty score)."""
    if k < 1:
        raise ConfigError("--top-k", f"must be at least 1, got {k}")
    p = load_predictor(source, ema, solver_overrides)
    done: list[Prediction] = []
    failed: list[Failure] = []
    if p.info.kind == "image":
        mean, std = image_statistics(p.data_name, p.data)
        for name in inputs:
            try:
                x = read_image(Path(name), p.info, mean, std)
            except DataError as e:
                failed.append(Failure(name, str(e)))
                continue
            logits, nfe = _call(p, x[None])
            done.append(Prediction(name, named(top_k(logits, k), p.info), nfe))
        return done, failed
    if p.data_name not in ENCODERS:
        raise ConfigError("MODEL", f"reading {p.data_name} examples from text is not supported")
    encode = ENCODERS[p.data_name]
    for name, line in read_lines(inputs, stdin or (lambda: "")):
        try:
            if line.startswith("\0"):
                raise DataError(f"cannot read it ({line[1:]})")
            ids = encode(line)
            if len(ids) > p.info.max_len:
                raise DataError(f"{len(ids)} tokens, more than the model's {p.info.max_len}")
        except DataError as e:
            failed.append(Failure(name, str(e)))
            continue
        tokens = torch.tensor([ids])
        logits, nfe = _call(p, tokens, tokens != 0)
        done.append(Prediction(name, named(top_k(logits, k), p.info), nfe))
    return done, failed
