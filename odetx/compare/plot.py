"""Plots for comparisons; matplotlib is an optional extra (``pip install "odetx[plot]"``)."""

from __future__ import annotations

from pathlib import Path

from odetx.compare.table import ResultTable
from odetx.errors import OdetxError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OdetxError(
            'plotting needs matplotlib: pip install "odetx[plot]" (or pip install matplotlib)'
        ) from None
    return plt


def _lines(table: ResultTable) -> dict[str, list[dict]]:
    lines: dict[str, list[dict]] = {}
    for r in table.rows:
        lines.setdefault(f"{r['scheme']} / {r['solver']}", []).append(r)
    return lines


def plot(table: ResultTable, path: str | Path, convergence: bool) -> None:
    """Accuracy against NFE (one line per scheme/solver); with ``convergence``, also the
    error against step size on log-log axes with the fitted order in the legend."""
    plt = _pyplot()
    ncols = 2 if convergence else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.5), squeeze=False)
    ax = axes[0][0]
    acc_key = "acc" if "acc" in table.rows[0] else "test_acc"
    for label, rows in _lines(table).items():
        rows = sorted((r for r in rows if r.get("nfe") is not None), key=lambda r: r["nfe"])
        xs, ys = [r["nfe"] for r in rows], [r[acc_key] for r in rows]
        yerr = [r.get(f"{acc_key}_std", 0.0) for r in rows]
        ax.errorbar(xs, ys, yerr=yerr if any(yerr) else None, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("NFE per forward (log)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy against cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if convergence:
        ax = axes[0][1]
        for label, rows in _lines(table).items():
            rows = sorted((r for r in rows if r.get("steps")), key=lambda r: r["steps"])
            if len(rows) < 2:
                continue
            order = rows[0].get("order")
            xs = [1.0 / r["steps"] for r in rows]
            legend = f"{label} (order {order:.2f})" if order is not None else label
            ax.loglog(xs, [r["error"] for r in rows], marker="o", label=legend)
        ax.set_xlabel("step size h (fraction of a group's span)")
        ax.set_ylabel("relative error vs fine unsplit solve")
        ax.set_title("empirical convergence")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
