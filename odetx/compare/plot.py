"""Plots for comparisons; matplotlib is an optional extra (``pip install "odetx[plot]"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odetx.compare.table import ResultTable
from odetx.errors import OdetxError
from odetx.io import atomic_write

INSTALL_HINT = 'plotting needs matplotlib: pip install "odetx[plot]" (or pip install matplotlib)'


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or a one-line install hint."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OdetxError(INSTALL_HINT) from None
    return plt


def _lines(table: ResultTable) -> dict[str, list[dict]]:
    lines: dict[str, list[dict]] = {}
    for r in table.rows:
        label = f"{r['arch']} / {r['solver']}"
        if r.get("experiment"):
            label = f"{r['experiment']}: {label}"
        lines.setdefault(label, []).append(r)
    return lines


def plot(table: ResultTable, path: str | Path, convergence: bool) -> None:
    """Accuracy against NFE, one line per arch/solver; with ``convergence``, also the
    error against step size on log-log axes with each line's fitted order in the legend."""
    plt = require_matplotlib()
    ncols = 2 if convergence else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False)
    ax = axes[0][0]
    # Language models are judged by bits per byte (lower is better), classifiers by accuracy.
    keys = [
        k
        for k in ("bpb", "test_bpb", "acc", "test_acc")
        if any(r.get(k) is not None for r in table.rows)
    ]
    acc_key = keys[0] if keys else "acc"
    for label, rows in _lines(table).items():
        rows = sorted(
            (r for r in rows if r.get("nfe") is not None and r.get(acc_key) is not None),
            key=lambda r: r["nfe"],
        )
        if not rows:
            continue
        yerr = [r.get(f"{acc_key}_std", 0.0) for r in rows]
        ax.errorbar(
            [r["nfe"] for r in rows],
            [r[acc_key] for r in rows],
            yerr=yerr if any(yerr) else None,
            marker="o",
            capsize=3,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("NFE per forward (per-sample solvers: mean per sample)")
    what = "bits per byte" if acc_key.endswith("bpb") else "accuracy"
    ax.set_ylabel(f"{'test ' if acc_key.startswith('test') else ''}{what}")
    ax.set_title(f"{what} against cost")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if convergence:
        ax = axes[0][1]
        for label, rows in _lines(table).items():
            rows = sorted((r for r in rows if r.get("h") and r.get("error")), key=lambda r: r["h"])
            if len(rows) < 2:
                continue
            order, finest = rows[0].get("order"), rows[0].get("local_order")
            legend = f"{label}: order {order:.2f}" if order is not None else label
            if finest is not None:  # rows run finest first: its slope is the settled one
                legend += f" (finest pair {finest:.2f})"
            ax.loglog([r["h"] for r in rows], [r["error"] for r in rows], marker="o", label=legend)
        ax.set_xlabel("step size h")
        ax.set_ylabel("relative error of the logits")
        ax.set_title("empirical convergence against a fine unsplit solve")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as (f, _):
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
