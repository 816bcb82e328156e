"""A comparison result: named columns, rows of plain values, and how to rank each column."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Column:
    key: str
    title: str
    better: str | None = None  # "max", "min" or None (not ranked)
    fmt: str = "{}"


@dataclass
class ResultTable:
    """Rows of dicts keyed by column ``key``; ``±`` spreads live under ``key + '_std'``."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def best(self, key: str) -> Any:
        col = next(c for c in self.columns if c.key == key)
        values = [r[key] for r in self.rows if _is_number(r.get(key))]
        if col.better is None or not values:
            return None
        return max(values) if col.better == "max" else min(values)

    def format(self, row: dict[str, Any], col: Column) -> str:
        value = row.get(col.key)
        if value is None:
            return "—"
        text = col.fmt.format(value) if _is_number(value) else str(value)
        std = row.get(f"{col.key}_std")
        if _is_number(std):
            text += " ± " + col.fmt.format(std)
        return text

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def write_csv(self, path: str | Path) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        with Path(path).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"title": self.title, "rows": self.rows, "notes": self.notes}, indent=2)
            + "\n"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
