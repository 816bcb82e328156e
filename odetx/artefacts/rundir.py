"""The run directory contract: config.yaml, metrics.csv, last.pt, best.pt, summary.json;
and a run's identity, the fields its header, its summary and its default name share."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from odetx.config import Config
from odetx.io import write_text

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

    def has_run(self) -> bool:
        """True once an epoch has been saved (a run stopped before that holds nothing to keep)."""
        return self.last.exists() or self.metrics.exists()

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

    def append_metrics(self, row: dict[str, Any]) -> None:
        self._write_rows([*self.read_metrics(), row])

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        fields = METRIC_FIELDS + tuple(k for k in LM_METRIC_FIELDS if any(k in r for r in rows))
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
