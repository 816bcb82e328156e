"""The run directory contract: config.yaml, metrics.csv, last.pt, best.pt, summary.json;
and a run's identity, the fields its header, its summary and its default name share.

**Crash consistency.** ``last.pt`` is the one commit point of an epoch: it holds the
weights, every state needed to continue, and the metrics rows of every epoch so far.
Everything else an epoch writes is derived from it afterwards — ``best.pt`` (a copy
of ``last.pt`` when that epoch is the best) and ``metrics.csv`` — by :meth:`RunDir.sync`,
which a resumed run calls again first. So whatever instant a process dies at, the
directory holds a committed epoch and what follows from it, or will once resumed.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from odetx.artefacts.checkpoint import load_checkpoint, save_checkpoint
from odetx.config import Config
from odetx.errors import CheckpointError, ConfigError
from odetx.io import remove_stale_temps, write_text

METRIC_FIELDS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "nfe_forward",
    "nfe_backward",
    "seconds",
    "samples_per_s",
)
# Language models' rows add these after the others.
LM_METRIC_FIELDS = ("val_bpb", "val_ppl")
# Classifiers of more than five classes add top-5; a run with train.ema adds the average's.
EXTRA_METRIC_FIELDS = (
    "val_top5",
    *(f"{k}_ema" for k in ("val_loss", "val_acc", "val_top5", *LM_METRIC_FIELDS)),
    "reg_kinetic",  # train.reg_kinetic / reg_jacobian: the epoch's mean penalty
    "reg_jacobian",
)
DEFAULT_ROOT = Path("runs")


def run_identity(cfg: Config) -> dict[str, Any]:
    """What a resolved config trains, in the words of the run header and ``summary.json``."""
    return {
        "dataset": cfg.data.name,
        "preset": cfg.model.preset,
        "arch": cfg.model.arch,
        "solver": cfg.solver.method,
        "steps": cfg.solver.steps,
        "depth": cfg.model.depth,
        "groups": cfg.model.groups,
        # Token datasets read from files pad to their longest example (set when resolved).
        **({"max_len": cfg.data.max_len} if cfg.data.max_len > 0 else {}),
    }


def default_run_dir(cfg: Config, now: datetime | None = None) -> Path:
    """``runs/<dataset>-<arch>-<solver>-<time>``: where a run goes without ``train.out``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return DEFAULT_ROOT / f"{cfg.data.name}-{cfg.model.arch}-{cfg.solver.method}-{stamp}"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.csv")
    last = property(lambda self: self.path / "last.pt")
    best = property(lambda self: self.path / "best.pt")
    summary = property(lambda self: self.path / "summary.json")

    def files(self) -> list[Path]:
        """The contract's files present in the folder."""
        return [
            p for p in (self.config, self.metrics, self.last, self.best, self.summary) if p.exists()
        ]

    def has_run(self) -> bool:
        """True once an epoch has been saved (a run stopped before that holds nothing to keep)."""
        return self.last.exists() or self.metrics.exists()

    def claim(self, force: bool = False) -> None:
        """Refuse to start a new run over files another run left, unless ``force`` (which
        removes them); a folder with a saved epoch is resumed, not overwritten."""
        if self.has_run() and not force:
            raise ConfigError(
                "train.out",
                f"{self.path} already holds a run; resume it with --resume {self.path}, "
                "choose another --out, or pass --force to start over",
            )
        found = self.files()
        if found and not force:
            raise ConfigError(
                "train.out",
                f"{self.path} holds {', '.join(p.name for p in found)} from another run; "
                "choose another --out or pass --force to replace them",
            )
        for p in found:
            p.unlink()

    def clean(self) -> list[Path]:
        """Remove temporary files a killed process left (call while holding the lock)."""
        names = ("config.yaml", "metrics.csv", "last.pt", "best.pt", "summary.json")
        return remove_stale_temps(self.path, names)

    def commit(self, payload: dict[str, Any]) -> None:
        """Make an epoch durable: write ``last.pt``; then :meth:`derive` the rest."""
        save_checkpoint(self.last, payload)

    def derive(self, payload: dict[str, Any]) -> None:
        """Bring ``best.pt`` and ``metrics.csv`` in line with the epoch just committed."""
        if payload["best_epoch"] == payload["epoch"]:
            save_checkpoint(self.best, payload)
        self._write_rows(payload["history"])

    def sync(self, ckpt: dict[str, Any]) -> None:
        """Derive ``best.pt`` and ``metrics.csv`` from a committed ``last.pt`` payload;
        idempotent, so a resumed run repairs what a crash after the commit left undone."""
        if ckpt["best_epoch"] == ckpt["epoch"] and self._best_epoch() != ckpt["epoch"]:
            save_checkpoint(self.best, ckpt)
        elif not self.best.exists():
            raise CheckpointError(
                f"{self.best} is missing, and {self.last} (epoch {ckpt['epoch']}) cannot "
                f"restore it: its best epoch is {ckpt['best_epoch']}"
            )
        if "history" in ckpt:
            self._write_rows(ckpt["history"])
        else:  # checkpoints before the history was kept: rows past the commit are lost ones
            self.truncate_metrics(ckpt["epoch"])

    def _best_epoch(self) -> int | None:
        if not self.best.exists():
            return None
        try:
            return load_checkpoint(self.best)["epoch"]
        except CheckpointError:  # torn by a crash: rewritten from last.pt
            return None

    def is_complete(self) -> bool:
        return self.summary.is_file()

    def write_config(self, tree: dict[str, Any]) -> None:
        write_text(self.config, yaml.safe_dump(tree, sort_keys=False))

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics.is_file():
            return []
        with self.metrics.open(newline="") as f:
            return list(csv.DictReader(f))

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep rows up to ``last_epoch`` (rows past a checkpoint are from a lost epoch)."""
        rows = [r for r in self.read_metrics() if int(r["epoch"]) <= last_epoch]
        self._write_rows(rows)

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        optional = LM_METRIC_FIELDS + EXTRA_METRIC_FIELDS
        fields = METRIC_FIELDS + tuple(k for k in optional if any(k in r for r in rows))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in fields})
        write_text(self.metrics, text.getvalue())

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_text(self.summary, json.dumps(summary, indent=2) + "\n")


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
