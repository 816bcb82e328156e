"""A comparison result: named columns, rows of plain values, and how to rank each column."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odetx.io import write_text


@dataclass
class Column:
    key: str
    title: str
    better: str | None = None  # "max", "min" or None (not ranked)
    fmt: str = "{}"


@dataclass
class ResultTable:
    """Rows of dicts keyed by column ``key``; ``±`` spreads live under ``key + '_std'``.

    Rows may carry more keys than there are columns (run paths, tolerances); the CSV
    and JSON files hold every key, the columns' first and in table order.
    """

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

    def keys(self) -> list[str]:
        """Every key of every row: the columns (each followed by its spread), then the rest."""
        keys: list[str] = []
        for col in self.columns:
            keys += [k for k in (col.key, f"{col.key}_std") if any(k in r for r in self.rows)]
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        return keys

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as JSON-safe records (non-finite numbers become ``None``)."""
        return [{k: _plain(row.get(k)) for k in self.keys()} for row in self.rows]

    def write_csv(self, path: str | Path) -> None:
        """One row per table row; lists (a setting's run directories) are joined with ``;``."""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.keys())
        writer.writeheader()
        for record in self.to_records():
            writer.writerow(
                {
                    k: ";".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                    for k, v in record.items()
                }
            )
        write_text(path, text.getvalue())

    def write_json(self, path: str | Path) -> None:
        record = {"title": self.title, "rows": self.to_records(), "notes": self.notes}
        write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
