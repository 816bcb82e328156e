"""Tabulate finished runs from their run directories; seeds of one setting are pooled.

Two runs share a setting when their resolved configs (``config.yaml``) agree on
every key but the seed and where or how the run was executed
(:data:`~odetx.config.MACHINE_KEYS`);
each setting is one row with the mean and sample standard deviation over its
seeds. Config keys that tell settings apart but have no column of their own are
shown in a ``setting`` column, so no two rows look alike without a reason.
"""

from __future__ import annotations

import glob
import itertools
import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from odetx.compare.table import Column, ResultTable
from odetx.config import (
    MACHINE_KEYS,
    MAX_YAML_BYTES,
    YamlTooLarge,
    flatten,
    load_yaml_text,
    with_defaults,
)
from odetx.errors import OdetxError

SEED = "train.seed"
# Config keys shown as their own column.
SHOWN = {
    "data.name": "dataset",
    "model.preset": "preset",
    "model.arch": "arch",
    "solver.method": "solver",
    "solver.steps": "steps",
    "model.depth": "depth",
    "model.groups": "groups",
}
METRICS = (
    "params",
    "best_val_acc",
    "test_acc",
    "test_acc_last",
    "test_top5",
    "test_bpb",
    "test_bpb_last",
    "nfe",
    "wall_time_s",
)

COLUMNS = [
    Column("experiment", "experiment"),
    Column("dataset", "dataset"),
    Column("preset", "model"),
    Column("arch", "arch"),
    Column("solver", "solver"),
    Column("steps", "steps"),
    Column("depth", "D"),
    Column("groups", "G"),
    Column("setting", "setting"),
    Column("params", "params", "min", "{:,.0f}"),
    Column("best_val_acc", "best val", "max", "{:.4f}"),
    Column("test_acc", "test acc", "max", "{:.4f}"),
    Column("test_acc_last", "final acc", "max", "{:.4f}"),
    Column("test_top5", "test top-5", "max", "{:.4f}"),
    Column("test_bpb", "test bits/byte", "min", "{:.4f}"),
    Column("test_bpb_last", "final bits/byte", "min", "{:.4f}"),
    Column("nfe", "NFE", "min", "{:.4g}"),
    Column("wall_time_s", "wall s", "min", "{:.1f}"),
    Column("seeds", "seeds"),
]


def expand(patterns: list[str]) -> tuple[list[Path], list[Path]]:
    """Finished run directories named directly or by glob, and unfinished ones met on the way.

    A folder holding runs expands to every finished run below it.

    Raises:
        OdetxError: a path that does not exist, a glob that matches nothing, a file
            that is not a run directory, a named folder with no run below it, or no
            finished run at all.
    """
    found: list[Path] = []
    unfinished: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise OdetxError(f"no run directory matches {pattern!r}")
        else:
            matches = [pattern]
        for m in matches:
            p = Path(m)
            if (p / "summary.json").is_file():
                found.append(p)
            elif (p / "config.yaml").is_file():
                unfinished.append(p)
            elif p.is_dir():
                below = sorted(s.parent for s in p.rglob("summary.json"))
                started = [
                    c.parent for c in sorted(p.rglob("config.yaml")) if c.parent not in below
                ]
                if not below and not started and not glob.has_magic(pattern):
                    # A folder named outright must hold runs; a glob may also match other folders.
                    raise OdetxError(f"no run directory at or below {p}")
                found += below
                unfinished += started
            elif p.exists():
                raise OdetxError(f"{p} is not a run directory (compare one checkpoint alone)")
            else:
                raise OdetxError(f"no run directory at {p}")
    if not found:
        where = ", ".join(str(u) for u in unfinished) or ", ".join(patterns)
        raise OdetxError(f"no finished runs (with summary.json) in {where}")
    return list(dict.fromkeys(found)), list(dict.fromkeys(unfinished))


class RunError(OdetxError):
    """One run directory that cannot be tabulated; ``reason`` says why, without the path."""

    def __init__(self, run: Path, reason: str) -> None:
        self.run, self.reason = run, reason
        super().__init__(f"cannot read the run in {run}: {reason}")


def _short(e: BaseException, limit: int = 160) -> str:
    """An exception's message as one short line."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or _short(e)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _kind(value: Any, json_terms: bool = False) -> str:
    """What ``value`` is, in the words of the file it came from (JSON or YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array" if json_terms else "a list"
    if isinstance(value, dict):
        return "an object" if json_terms else "a mapping"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    """A JSON number that is also a float (an int of 400 digits is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, float) or abs(value) < 2**1000


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# summary.json entries read here: a metric must be a number (or absent / null).
SUMMARY_NUMBERS = ("params", "best_val_acc", "nfe_forward", "wall_time_s")
SUMMARY_RESULTS = ("test", "test_last")  # each a mapping holding "acc" and/or "bpb"


def _read_summary(path: Path) -> dict[str, Any]:
    file = path / "summary.json"
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise RunError(path, f"summary.json cannot be read ({e.strerror or _short(e)})") from None
    except UnicodeDecodeError:
        raise RunError(path, "summary.json is not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise RunError(path, f"summary.json is not valid JSON ({_short(e)})") from None
    if not isinstance(summary, dict):
        raise RunError(path, f"summary.json holds {_kind(summary, True)}, not an object")
    for key in SUMMARY_NUMBERS:
        if summary.get(key) is not None and not _is_number(summary[key]):
            raise RunError(path, f"summary.json: {key} is {summary[key]!r:.40}, not a number")
    for key in SUMMARY_RESULTS:
        part = summary.get(key)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise RunError(path, f"summary.json: {key} is {part!r:.40}, not an object")
        for metric in ("acc", "top5", "bpb"):
            if part.get(metric) is not None and not _is_number(part[metric]):
                raise RunError(
                    path, f"summary.json: {key}.{metric} is {part[metric]!r:.40}, not a number"
                )
    return summary


def _read_config(path: Path) -> dict[str, Any]:
    file = path / "config.yaml"
    if not file.is_file():
        return {}
    try:
        if file.stat().st_size > MAX_YAML_BYTES:
            raise YamlTooLarge(f"is larger than {MAX_YAML_BYTES // 1024} KiB")
        tree = load_yaml_text(file.read_text(encoding="utf-8"))  # bounded: no alias bombs
    except YamlTooLarge as e:
        raise RunError(path, f"config.yaml {e.reason}") from None
    except OSError as e:
        raise RunError(path, f"config.yaml cannot be read ({e.strerror or _short(e)})") from None
    except UnicodeDecodeError:
        raise RunError(path, "config.yaml is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise RunError(path, f"config.yaml is not valid YAML ({_yaml_problem(e)})") from None
    except (ValueError, RecursionError) as e:
        raise RunError(path, f"config.yaml cannot be parsed ({_short(e)})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise RunError(path, f"config.yaml holds {_kind(tree)}, not a mapping")
    return flatten(tree)


def read_run(path: Path) -> dict[str, Any]:
    """One run's metrics (from ``summary.json``) and flattened config (``config.yaml``).

    Raises:
        RunError: a summary that is not a JSON object of the expected types, or a
            config file that is not a YAML mapping; ``reason`` says which.
    """
    path = Path(path)
    summary = _read_summary(path)
    config = _read_config(path)
    from_file = bool(config)
    # Without a config file (not written by odetx train) the summary's fields define the setting.
    summary.setdefault("arch", summary.get("scheme"))  # summaries before 0.2 said "scheme"
    for key, name in SHOWN.items():
        config.setdefault(key, summary.get(name))
    config.setdefault(SEED, summary.get("seed"))
    if from_file:  # after the summary's record: it knows the seed a damaged file lost
        config = with_defaults(config)
    for key in (*SHOWN, SEED):  # shown in a column, compared and sorted: plain values only
        if not _is_scalar(config[key]):
            raise RunError(path, f"{key} is {config[key]!r:.40}, not a plain value")
    test, last = summary.get("test") or {}, summary.get("test_last") or {}
    return {
        "run": str(path),
        "config": config,
        "params": summary.get("params"),
        "best_val_acc": summary.get("best_val_acc"),
        "test_acc": test.get("acc"),
        "test_acc_last": last.get("acc"),
        "test_top5": test.get("top5"),
        "test_bpb": test.get("bpb"),
        "test_bpb_last": last.get("bpb"),
        "nfe": summary.get("nfe_forward"),
        "wall_time_s": summary.get("wall_time_s"),
        "cpu": summary.get("cpu") if isinstance(summary.get("cpu"), str) else None,
    }


def read_runs(
    runs: list[Path], labels: list[str | None] | None = None
) -> tuple[list[dict[str, Any]], list[str | None], list[str]]:
    """:func:`read_run` of each of ``runs``, skipping the unreadable ones.

    Returns the runs read, their labels, and one note per skipped run
    (``skipped RUN: why``).

    Raises:
        OdetxError: no run could be read (the message gives each one's reason).
    """
    labels = labels if labels is not None else [None] * len(runs)
    read: list[dict[str, Any]] = []
    kept: list[str | None] = []
    skipped: list[str] = []
    for path, label in zip(runs, labels, strict=True):
        try:
            read.append(read_run(path))
        except RunError as e:
            skipped.append(f"skipped {path}: {e.reason}")
            continue
        kept.append(label)
    if runs and not read:
        if len(skipped) == 1:
            raise OdetxError(f"no usable run: {skipped[0]}")
        raise OdetxError(f"none of the {len(runs)} runs is usable: {'; '.join(skipped)}")
    return read, kept, skipped


def _setting(run: dict[str, Any]) -> tuple:
    return tuple(
        sorted(
            (k, repr(v)) for k, v in run["config"].items() if k != SEED and k not in MACHINE_KEYS
        )
    )


def _varied_keys(settings: list[dict[str, str]]) -> list[str]:
    """Config keys without a column of their own on which some settings disagree."""
    keys = sorted({k for s in settings for k in s if k not in SHOWN})
    return [k for k in keys if len({s.get(k) for s in settings}) > 1]


def pool_seeds(runs: list[dict[str, Any]], labels: list[str | None]) -> list[dict[str, Any]]:
    """One row per (label, setting): mean and, for several seeds, sample std of each metric.

    Raises:
        OdetxError: two runs of one label and setting share a seed.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run, label in zip(runs, labels, strict=True):
        members = groups.setdefault((label, _setting(run)), [])
        seed = run["config"].get(SEED)
        twin = next((r for r in members if r["config"].get(SEED) == seed), None)
        if twin is not None:  # a repeat is not a new sample: pooling it would shrink the std
            raise OdetxError(
                f"{twin['run']} and {run['run']} are the same setting with the same seed "
                f"({SEED}={seed}); name only one of them"
            )
        members.append(run)
    varied = _varied_keys([dict(key[1]) for key in groups])
    rows = []
    for (label, _), members in groups.items():
        config = members[0]["config"]
        row: dict[str, Any] = {"experiment": label}
        row.update({name: config.get(key) for key, name in SHOWN.items()})
        row["setting"] = ", ".join(f"{k}={config.get(k)}" for k in varied) or None
        for m in METRICS:
            values = [r[m] for r in members if r[m] is not None]
            row[m] = statistics.fmean(values) if values else None
            if len(values) > 1:  # (statistics.stdev fails on inf and nan)
                finite = all(math.isfinite(v) for v in values)
                row[f"{m}_std"] = statistics.stdev(values) if finite else math.nan
        row["seeds"] = len(members)
        row["seed_values"] = [r["config"].get(SEED) for r in members]
        row["runs"] = [r["run"] for r in members]
        # Wall times, and the last digits of a metric, are comparable only on one kind of CPU.
        row["cpus"] = sorted({r["cpu"] for r in members if r["cpu"] is not None})
        rows.append(row)
    order = list(dict.fromkeys(labels))
    rows.sort(
        key=lambda r: (
            order.index(r["experiment"]),
            str(r["dataset"]),
            -(r["test_acc"] if r["test_acc"] is not None else -1.0),
            r["nfe"] if r["nfe"] is not None else float("inf"),
        )
    )
    return rows


def table_of_runs(runs: list[Path], labels: list[str | None] | None = None) -> ResultTable:
    """The table of ``runs``; ``labels`` (e.g. sweep experiments) keep their rows apart.

    A run that cannot be read is left out with a note (``skipped RUN: why``); only when
    none can be read is that an error.
    """
    read, labels, skipped = read_runs(runs, labels)
    rows = pool_seeds(read, labels)
    hidden = set() if any(label is not None for label in labels) else {"experiment"}
    title = "finished runs"
    for key in ("dataset", "preset"):
        if rows and len({r[key] for r in rows}) == 1:  # the same for every row: said once
            hidden.add(key)
            title += f" · {rows[0][key]}"
    columns = [c for c in COLUMNS if c.key not in hidden]
    table = ResultTable(title, columns, rows)
    table.notes.append(
        "runs equal but for the seed are pooled: mean ± sample std over the seeds counted"
    )
    table.notes.append("test acc: at the best validation epoch; final acc: at the last epoch")
    table.notes.extend(skipped)
    return table


def runs_table(patterns: list[str]) -> ResultTable:
    """The table of every finished run that ``patterns`` (paths or globs) name."""
    found, unfinished = expand(patterns)
    table = table_of_runs(found)
    if unfinished:
        table.notes.append(
            f"left out {len(unfinished)} unfinished run(s): {', '.join(map(str, unfinished))}"
        )
    return table


def paired(a: dict[Any, float], b: dict[Any, float]) -> dict[str, Any] | None:
    """Two arms trained with the same seeds, compared seed by seed: ``a − b``.

    ``a`` and ``b`` map a seed to a metric (e.g. test accuracy). Seeds present in only
    one arm are left out; ``None`` when no seed is shared. Returns the seeds, the
    per-seed differences, their mean and sample sd (``None`` for one seed), how many
    seeds favour ``a``, favour ``b`` or tie, and ``p``: the exact two-sided sign-flip
    (paired permutation) p-value of the mean difference, whose smallest possible value
    with n seeds is ``p_min`` = 2 / 2**n.
    """
    shared = set(a) & set(b)
    if not shared:
        return None
    try:
        seeds = sorted(shared)  # numerically: 2 before 10
    except TypeError:  # seeds of mixed kinds
        seeds = sorted(shared, key=repr)
    diffs = [a[s] - b[s] for s in seeds]
    tol = 1e-12
    observed = abs(sum(diffs))
    n_flips = 2 ** len(diffs)
    extreme = sum(
        1
        for signs in itertools.product((1, -1), repeat=len(diffs))
        if abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - tol
    )
    return {
        "seeds": seeds,
        "diffs": diffs,
        "mean": statistics.fmean(diffs),
        "sd": statistics.stdev(diffs) if len(diffs) > 1 else None,
        "a_wins": sum(d > tol for d in diffs),
        "b_wins": sum(d < -tol for d in diffs),
        "ties": sum(abs(d) <= tol for d in diffs),
        "p": extreme / n_flips,
        "p_min": 2 / n_flips,
    }
