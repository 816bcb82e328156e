"""Sample text from a trained language model, streaming it as it is drawn.

Prompts longer than the model's context slide: the model always reads the last
``context`` tokens. With a fixed-step solver a key/value cache
(:mod:`odetx.models.kvcache`) feeds each new token alone while the window grows.
Once it is full, a model with learned positions shifts every position and reads the
whole window again at each step; one with rotary positions (or none) rolls the cache
instead (drops the oldest token's keys and values, positions going on) and keeps
feeding one token, which is the usual sliding-window cache rather than a recomputation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from odetx.data.tokenizer import from_info
from odetx.errors import CheckpointError, ConfigError, DataError, SolverError
from odetx.evaluation.load import LoadedModel, load_model
from odetx.models import POSITIONS
from odetx.models.attention import ATTENTIONS
from odetx.models.kvcache import KVCache
from odetx.solvers import SOLVERS


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn: ``temperature`` 0 takes the most likely one;
    ``top_k`` > 0 draws among the k most likely only."""

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0

    def check(self, vocab_size: int) -> None:
        if self.max_new_tokens <= 0:
            raise ConfigError("--max-new-tokens", f"must be positive, got {self.max_new_tokens}")
        if not self.temperature >= 0:  # also refuses NaN
            raise ConfigError("--temperature", f"must be >= 0, got {self.temperature}")
        if not 0 <= self.top_k <= vocab_size:
            raise ConfigError("--top-k", f"must lie in [0, {vocab_size}], got {self.top_k}")


def next_token(logits: Tensor, sampling: Sampling, gen: torch.Generator) -> int:
    """One id from the last position's ``logits`` (vocab,).

    Temperature 0 takes the most likely token, and so does a temperature so small that
    ``logits / temperature`` overflows float64 (1e-320, say: softmax would read
    inf - inf): the most likely token is what sampling tends to as the temperature
    goes to 0.

    Raises:
        SolverError: the model's logits are not finite (nothing sound can be drawn).
    """
    if not bool(torch.isfinite(logits).all()):
        raise SolverError(
            "the model's next-token logits are not finite; the solve may have blown up "
            "(try more --steps or another --solver)"
        )
    if sampling.temperature == 0:
        return int(logits.argmax())
    scaled = logits.double() / sampling.temperature
    if not bool(torch.isfinite(scaled).all()):  # the limit as the temperature goes to 0
        return int(logits.argmax())
    logits = scaled
    if sampling.top_k:
        kth = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))


class Generation:
    """A prompt's continuation; iterate :meth:`stream` for the text as it comes, then read
    ``tokens``, ``seconds`` and ``cached``."""

    def __init__(
        self, loaded: LoadedModel, prompt: str, sampling: Sampling, cache: bool = True
    ) -> None:
        if loaded.info.kind != "text":
            raise CheckpointError(
                f"{loaded.path} is a model of {loaded.info.kind} data; generate needs a "
                "language model (a gpt preset trained on text)"
            )
        self.loaded, self.sampling = loaded, sampling
        self.tokenizer = from_info(loaded.info)
        sampling.check(self.tokenizer.size)
        if not prompt:
            raise ConfigError("--prompt", "is empty; give at least one character")
        try:
            self.prompt = self.tokenizer.encode(prompt, "the prompt")
        except DataError as e:
            raise ConfigError("--prompt", str(e)) from None
        if not self.prompt:
            raise ConfigError("--prompt", "encodes to no tokens with the run's tokenizer")
        # Adaptive solvers pick steps from the whole sequence: nothing lines up to cache.
        # Another attention than softmax keeps no cache of keys and values (odetx.models.attention).
        self.cached = (
            cache
            and not SOLVERS[loaded.solver.method].adaptive
            and ATTENTIONS[loaded.config.model.attn].cached
        )
        self.tokens = 0
        self.seconds = 0.0

    @torch.no_grad()
    def ids(self) -> Iterator[int]:
        """The new token ids, one at a time."""
        model, context = self.loaded.model, self.loaded.config.model.context
        device = self.loaded.device
        gen = torch.Generator().manual_seed(self.sampling.seed)
        window = list(self.prompt[-context:])
        cache = KVCache(model) if self.cached else None
        rolls = cache is not None and POSITIONS[self.loaded.config.model.pos].rolls
        start = time.perf_counter()
        try:
            if cache is not None:
                cache.__enter__()
            fed = 0  # tokens of ``window`` whose keys and values the cache holds
            for _ in range(self.sampling.max_new_tokens):
                if cache is not None:
                    cache.begin()
                new = window[fed:]
                logits = model.forward_from(torch.tensor([new], device=device), fed)
                if cache is not None:
                    cache.commit(len(new))
                    fed = len(window)
                token = next_token(logits[0, -1].float().cpu(), self.sampling, gen)
                self.tokens += 1
                self.seconds = time.perf_counter() - start
                yield token
                window.append(token)
                if len(window) > context:
                    window = window[-context:]
                    if rolls:  # keys stay at their positions: forget the oldest token's
                        cache.drop_oldest(1)
                        fed = len(window) - 1
                    else:  # positions shift: read the last window afresh
                        fed = 0
                        if cache is not None:
                            cache.clear()
        finally:
            if cache is not None:
                cache.__exit__(None, None, None)

    def stream(self) -> Iterator[str]:
        """The continuation as text, each piece yielded once it forms whole characters."""
        yield from self.tokenizer.stream(self.ids())

    @property
    def prompt_text(self) -> str:
        """The prompt as the model reads it (undecodable bytes shown as U+FFFD)."""
        return self.tokenizer.decode(self.prompt)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def start_generation(
    checkpoint: str | Path,
    prompt: str,
    sampling: Sampling,
    solver_overrides: dict[str, Any] | None = None,
    device: str = "cpu",
    cache: bool = True,
) -> Generation:
    """Load ``checkpoint`` (a file or a run directory, then its ``best.pt``) and prepare
    the continuation of ``prompt``; nothing is computed until it is iterated."""
    return Generation(load_model(checkpoint, solver_overrides, device), prompt, sampling, cache)
