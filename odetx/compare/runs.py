"""Tabulate finished runs from their run directories; seeds of one setting are pooled."""

from __future__ import annotations

import glob
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from odetx.compare.table import Column, ResultTable
from odetx.errors import OdetxError

# The fields that define a setting in the table; runs equal in all but the seed pool.
SETTING = ("dataset", "preset", "scheme", "solver", "steps", "depth", "groups")
METRICS = ("params", "best_val_acc", "test_acc", "test_acc_last", "nfe", "wall_time_s")

COLUMNS = [
    Column("dataset", "dataset"),
    Column("scheme", "scheme"),
    Column("solver", "solver"),
    Column("steps", "steps"),
    Column("depth", "D"),
    Column("groups", "G"),
    Column("params", "params", "min", "{:,.0f}"),
    Column("best_val_acc", "best val acc", "max", "{:.4f}"),
    Column("test_acc", "test acc", "max", "{:.4f}"),
    Column("test_acc_last", "final test acc", "max", "{:.4f}"),
    Column("nfe", "NFE", "min", "{:.4g}"),
    Column("wall_time_s", "wall s", "min", "{:.1f}"),
    Column("seeds", "seeds"),
]


def expand(patterns: list[str]) -> list[Path]:
    """Run directories named directly or by glob; a folder of runs expands to its runs."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or [pattern]
        for m in matches:
            p = Path(m)
            if (p / "summary.json").is_file():
                found.append(p)
            elif p.is_dir():
                found += sorted(s.parent for s in p.rglob("summary.json"))
            elif not p.exists():
                raise OdetxError(f"no run directory at {p}")
    if not found:
        raise OdetxError(f"no finished runs (with summary.json) under {', '.join(patterns)}")
    return list(dict.fromkeys(found))


def read_run(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise OdetxError(f"cannot read {path / 'summary.json'}: {e}") from None
    config = {}
    if (path / "config.yaml").is_file():
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    return {
        "run": str(path),
        "dataset": summary.get("dataset"),
        "preset": summary.get("preset"),
        "scheme": summary.get("scheme"),
        "solver": summary.get("solver"),
        "steps": summary.get("steps"),
        "depth": summary.get("depth"),
        "groups": summary.get("groups"),
        "seed": summary.get("seed", config.get("train", {}).get("seed")),
        "params": summary.get("params"),
        "best_val_acc": summary.get("best_val_acc"),
        "test_acc": summary.get("test", {}).get("acc"),
        "test_acc_last": summary.get("test_last", {}).get("acc"),
        "nfe": summary.get("nfe_forward"),
        "wall_time_s": summary.get("wall_time_s"),
    }


def pool_seeds(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting: mean and (for several seeds) sample std of each metric."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in SETTING), []).append(r)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(SETTING, key, strict=True))
        for m in METRICS:
            values = [r[m] for r in members if r[m] is not None]
            if not values:
                row[m] = None
                continue
            row[m] = statistics.fmean(values)
            if len(values) > 1:
                row[f"{m}_std"] = statistics.stdev(values)
        row["seeds"] = len(members)
        row["runs"] = [r["run"] for r in members]
        rows.append(row)
    rows.sort(key=lambda r: (str(r["dataset"]), -(r["test_acc"] or 0.0)))
    return rows


def runs_table(patterns: list[str]) -> ResultTable:
    runs = [read_run(p) for p in expand(patterns)]
    table = ResultTable("finished runs", COLUMNS, pool_seeds(runs))
    if any(r["seeds"] > 1 for r in table.rows):
        table.notes.append("runs equal but for the seed are pooled: mean ± sample std over seeds")
    return table
