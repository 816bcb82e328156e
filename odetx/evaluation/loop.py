"""Evaluation: loss, accuracy, NFE per forward and throughput on one split.

Classifiers score one label per example; language models score every next token
(logits ``(B, T, vocab)``), and their loss is in nats per token, with bits per
UTF-8 byte of text (the split's nats over its bytes, whatever the tokenizer) and
perplexity per token beside it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from odetx.data.base import IGNORE_INDEX
from odetx.errors import SolverError
from odetx.solvers.persample import per_sample_nfe

TOP_K = 5


@dataclass(frozen=True)
class EvalResult:
    loss: float  # nats per example (classifiers) or per token (language models)
    acc: float
    nfe: float  # field evaluations per forward pass
    samples_per_s: float  # examples, or tokens, per second
    samples: int  # examples, or tokens scored
    lm: bool = False
    top5: float | None = None  # classifiers of more than five classes
    tokens_per_byte: float = 1.0  # language models: the split's tokens per UTF-8 byte
    # Field evaluations per sample (an image, a sequence, a language model's window):
    # mean, median, p90, max; classifiers also over the samples it gets right and wrong.
    nfe_per_sample: dict[str, float | None] | None = None

    @property
    def bpb(self) -> float:
        """Bits per UTF-8 byte of text: the split's nats over its bytes, so byte, char and
        BPE tokens compare (for byte tokens it is the loss in bits)."""
        return self.loss / math.log(2) * self.tokens_per_byte

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))  # exp overflows a float past ~709

    def to_dict(self) -> dict[str, float]:
        out = asdict(self)
        del out["lm"]
        if not self.lm or self.tokens_per_byte == 1.0:
            del out["tokens_per_byte"]
        if self.top5 is None:
            del out["top5"]
        if self.nfe_per_sample is None:
            del out["nfe_per_sample"]
        if self.lm:
            out.update(bpb=self.bpb, ppl=self.ppl)
        return out


def flat_targets(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` and targets ``(N,)``: a language model's tokens each count
    as one example."""
    if logits.ndim == 3:
        return logits.flatten(0, 1), y.flatten()
    return logits, y


def scored(y: torch.Tensor) -> int:
    """Targets that count (``IGNORE_INDEX`` marks tokens scored elsewhere)."""
    return int((y != IGNORE_INDEX).sum())


def forward_batch(
    model: nn.Module, batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one batch; returns ``(logits, targets)``. Sequence batches carry a padding mask."""
    *inputs, y = (t.to(device, non_blocking=True) for t in batch)
    return model(*inputs), y


def top_k_hits(logits: torch.Tensor, y: torch.Tensor, k: int) -> int:
    """Targets among the ``k`` highest logits (none when there are at most ``k`` classes)."""
    if logits.shape[-1] <= k:
        return 0
    return int((logits.topk(k, dim=-1).indices == y.unsqueeze(-1)).any(-1).sum())


def tokens_per_byte(dataset) -> float:
    """A text split's tokens per UTF-8 byte (1 for bytes); a process's shard is read
    through to the split it cuts."""
    while hasattr(dataset, "dataset") and not hasattr(dataset, "tokens_per_byte"):
        dataset = dataset.dataset  # torch's Subset
    return float(getattr(dataset, "tokens_per_byte", 1.0))


def nfe_summary(nfe: torch.Tensor, right: torch.Tensor | None = None) -> dict[str, float | None]:
    """Mean, median, 90th percentile and max of per-sample NFE ``(n,)``; with ``right``
    (bool ``(n,)``: the prediction was correct), the mean over right and wrong ones."""
    nfe = nfe.double()
    if nfe.numel() == 0:
        return {}
    out = {
        "mean": float(nfe.mean()),
        "median": float(nfe.quantile(0.5)),
        "p90": float(nfe.quantile(0.9)),
        "max": float(nfe.max()),
    }
    if right is not None:
        for key, sel in (("mean_right", right), ("mean_wrong", ~right)):
            out[key] = float(nfe[sel].mean()) if bool(sel.any()) else None
    return out


def check_finite(out: torch.Tensor, where: str) -> None:
    if not torch.isfinite(out).all():
        raise SolverError(
            f"the model produced non-finite values during {where}; the solver may be unstable "
            "at this step size: try more steps or an adaptive solver"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    reduce: Callable[[list[float]], list[float]] | None = None,
    stack: nn.Module | None = None,
) -> EvalResult:
    """Loss, accuracy and NFE of ``model`` on ``loader``.

    ``reduce`` sums the totals over processes when each holds a shard of the split;
    ``stack`` is the module counting NFE when ``model`` wraps it (compiled, DDP).
    """
    stack = stack if stack is not None else model.stack
    model.eval()
    total_loss, correct, correct5, n, nfe, batches = 0.0, 0, 0, 0, 0.0, 0
    lm = False
    per_sample: list[torch.Tensor] = []
    rights: list[torch.Tensor] = []
    start = time.perf_counter()
    for batch in loader:
        if batch is None:  # every example of it left out (image files that do not decode)
            continue
        stack.reset_nfe()
        with autocast():
            logits, y = forward_batch(model, batch, device)
        lm = logits.ndim == 3
        per_sample.append(per_sample_nfe(stack, logits.shape[0]))
        if not lm:
            rights.append((logits.argmax(-1) == y).cpu())
        logits, y = flat_targets(logits.float(), y)
        check_finite(logits, "evaluation")
        nfe += stack.nfe()
        batches += 1
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        correct5 += top_k_hits(logits, y, TOP_K)
        n += scored(y)
    seconds = time.perf_counter() - start
    if reduce is not None:
        total_loss, correct, correct5, n, nfe, batches = reduce(
            [total_loss, correct, correct5, n, nfe, batches]
        )
    # Top-5 says something only when there are more than five classes to rank; a language
    # model's next-token ranking is left to its loss.
    has_top5 = not lm and batches > 0 and logits.shape[-1] > TOP_K
    return EvalResult(
        loss=total_loss / max(n, 1),
        acc=correct / max(n, 1),
        nfe=nfe / max(batches, 1),
        samples_per_s=n / seconds if seconds > 0 else 0.0,
        samples=int(n),
        lm=lm,
        top5=correct5 / max(n, 1) if has_top5 else None,
        tokens_per_byte=tokens_per_byte(loader.dataset),
        nfe_per_sample=nfe_summary(
            torch.cat(per_sample) if per_sample else torch.zeros(0),
            torch.cat(rights) if rights and not lm else None,
        )
        or None,
    )
