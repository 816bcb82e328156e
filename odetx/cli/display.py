"""Rich rendering: tables, a live progress bar on terminals, plain lines elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from odetx.config import SolverConfig

console = Console()
err_console = Console(stderr=True)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "—" if value is None else str(value)


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, fmt(value))
    return table


def solver_label(solver) -> str:
    if solver.rtol is not None:
        each = ", per sample" if getattr(solver, "per_sample", False) else ""
        controller = getattr(solver, "controller", SolverConfig.controller)
        if each and controller != SolverConfig.controller:  # named when not the default
            each += f", {controller} controller"
        return f"{solver.method} (rtol {solver.rtol:g}, atol {solver.atol:g}{each})"
    return f"{solver.method} ({solver.steps} step{'s' if solver.steps != 1 else ''})"


def nfe_line(stats: dict[str, float | None]) -> str:
    """Per-sample NFE statistics in one line (``mean_right``/``mean_wrong`` if known)."""
    line = ", ".join(f"{k} {stats[k]:.4g}" for k in ("mean", "median", "p90", "max"))
    if "mean_right" in stats:
        right, wrong = (stats[k] for k in ("mean_right", "mean_wrong"))
        line += f"; mean right {fmt(right)}, wrong {fmt(wrong)}"
    return line


def print_solver_override(solver, trained_solver, to: Console | None = None) -> None:
    """Say so when a model is integrated with another solver than it was trained with."""
    if solver != trained_solver:
        (to or console).print(
            f"integrating with [bold]{solver_label(solver)}[/]; "
            f"the model was trained with {solver_label(trained_solver)}"
        )


@contextlib.contextmanager
def transfer_progress(con: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(what, bytes done, bytes in all)`` drawing one bar per ``what`` with
    bytes/s and the time left (on terminals; elsewhere nothing)."""
    con = con or err_console
    if not con.is_terminal:
        yield lambda what, done, total: None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=con,
    )
    tasks: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(what, total=total)
        progress.update(tasks[what], completed=done)

    with progress:
        yield update


class RichReporter:
    """Renders training events; animated only when stdout is a terminal."""

    def __init__(self, con: Console | None = None) -> None:
        self.console = con or console
        self.live = self.console.is_terminal
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0

    def start(self, info: dict[str, Any]) -> None:
        rows = {k: v for k, v in info.items() if k != "resumed_from_epoch"}
        if info.get("resumed_from_epoch") is not None:
            rows["resumed from epoch"] = info["resumed_from_epoch"]
        self.console.print(kv_table("odetx train", rows))

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epochs = epochs
        if not self.live:
            return
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=batches, stats="")

    def batch(self, done: int, stats: dict[str, float]) -> None:
        if self.progress is None:
            return
        text = (
            f"loss {stats['loss']:.4f} acc {stats['acc']:.3f} "
            f"nfe {fmt(stats['nfe'])} {stats['samples_per_s']:.0f} samples/s"
        )
        self.progress.update(self.task, completed=done, stats=text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.close()
        bpb = f"bpb {row['val_bpb']:.3f}  " if "val_bpb" in row else ""
        reg = "".join(f"{k} {row[k]:.3g}  " for k in ("reg_kinetic", "reg_jacobian") if k in row)
        self.console.print(
            f"epoch {row['epoch']}/{self.epochs}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}  "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}  {bpb}{reg}"
            f"lr {row['lr']:.2e}  nfe {fmt(row['nfe_forward'])}/{fmt(row['nfe_backward'])}  "
            f"{row['samples_per_s']:.0f} samples/s  {row['seconds']:.1f}s",
            highlight=False,
            soft_wrap=True,
        )

    def finish(self, summary: dict[str, Any]) -> None:
        test, last = summary["test"], summary["test_last"]
        if test is None:  # an image folder without test/
            scores = {
                "test": "no test split",
                "best val acc": f"{summary['best_val_acc']:.4f} (epoch {summary['best_epoch']})",
            }
        elif "bpb" in test:  # a language model: bits per byte decide, whatever the tokenizer
            unit = summary.get("unit", "byte")
            scores = {
                "test bits per byte (best val epoch)": f"{test['bpb']:.4f}",
                f"test perplexity (per {unit})": f"{test['ppl']:.3f}",
                f"test loss (nats per {unit})": f"{test['loss']:.4f}",
                "test bits per byte (last epoch)": f"{last['bpb']:.4f}",
                "best val loss": (
                    f"{summary['best_val_loss']:.4f} (epoch {summary['best_epoch']})"
                ),
            }
        else:
            scores = {
                "test acc (best val epoch)": f"{test['acc']:.4f}",
                "test loss": f"{test['loss']:.4f}",
                "test acc (last epoch)": f"{last['acc']:.4f}",
                "best val acc": f"{summary['best_val_acc']:.4f} (epoch {summary['best_epoch']})",
            }
        self.console.print(
            kv_table(
                "results",
                {
                    **scores,
                    "NFE per forward": summary["nfe_forward"],
                    **(
                        {"files left out (do not decode)": summary["undecodable_files"]}
                        if summary.get("undecodable_files")
                        else {}
                    ),
                    "params": summary["params"],
                    "wall time": f"{summary['wall_time_s']:.1f}s",
                    # Only compiled runs have the entry; a break costs speed, not results.
                    **(
                        {"graph breaks (--compile)": summary["graph_breaks"]}
                        if "graph_breaks" in summary
                        else {}
                    ),
                },
            )
        )


def result_table(table) -> Table:
    """A :class:`~odetx.compare.table.ResultTable` as rich, best value per column in bold green."""
    out = Table(title=table.title, title_justify="left")
    columns = [c for c in table.columns if any(r.get(c.key) is not None for r in table.rows)]
    for col in columns:
        out.add_column(col.title, justify="right" if col.better else "left")
    best = {c.key: table.best(c.key) for c in columns}
    for row in table.rows:
        cells = []
        for col in columns:
            text = table.format(row, col)
            if best[col.key] is not None and row.get(col.key) == best[col.key]:
                text = f"[bold green]{text}[/]"
            cells.append(text)
        out.add_row(*cells, style="italic" if row.get("trained") else None)
    return out


def print_result_table(table) -> None:
    """The table and its notes; piped or captured output gets values whole, not cut to 80
    columns (a terminal keeps its width)."""
    rendered = result_table(table)
    show = console
    if not console.is_terminal:
        wide = console.options.update_width(1000)
        show = Console(width=max(console.width, Measurement.get(console, wide, rendered).maximum))
    show.print(rendered)
    for note in table.notes:
        show.print(f"  {note}", highlight=False, markup=False, soft_wrap=show is not console)
