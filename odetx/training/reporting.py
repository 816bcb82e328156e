"""The events a training run reports; the CLI renders them, tests ignore them."""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None: ...
    def batch(self, done: int, stats: dict[str, float]) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...
    def finish(self, summary: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    def start(self, info: dict[str, Any]) -> None:
        pass

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        pass

    def batch(self, done: int, stats: dict[str, float]) -> None:
        pass

    def epoch_end(self, row: dict[str, Any]) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
