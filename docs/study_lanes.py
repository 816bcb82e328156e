#!/usr/bin/env python
"""Train a sweep's cells in several processes at once, in an order that keeps arms paired.

    python docs/study_lanes.py configs/sweeps/study-lm-budget.yaml --lanes 2 \
        --first archs,groups,capacity,solvers:midpoint/2,solvers:rk4/1

Each lane is one process (``--lane i`` runs one lane in this process; without it, all lanes
start as child processes and this waits for them). Cells are ordered seed-major: every arm's
seed 0, then every arm's seed 1, …, with the ``--first`` arms' five seeds before the rest, so a
study stopped early still holds whole seeds of each arm; lane ``i`` takes cells ``i``,
``i + n``, … of that order. A cell is trained by the sweep's own runner (``run_sweep``), so
complete cells are skipped and a stopped one resumes; ``odetx compare --sweep`` then tabulates.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from odetx.compare.sweep import Cell, load_sweep, run_sweep  # noqa: E402


def _label(cell: Cell) -> str:
    """``experiment`` or ``experiment:method/steps`` (an arm's name in ``--first``)."""
    o = cell.overrides
    if "solver.method" in o:
        return f"{cell.experiment}:{o['solver.method']}/{o.get('solver.steps', '')}"
    return cell.experiment


def ordered(cells: list[Cell], first: list[str]) -> list[Cell]:
    def key(cell: Cell) -> tuple:
        label = _label(cell)
        front = cell.experiment in first or label in first
        return (not front, cell.overrides.get("train.seed", 0))

    return sorted((c for c in cells if not c.shared), key=key)  # stable: sweep order within


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--lane", type=int, help="run this lane here (else start every lane)")
    ap.add_argument("--first", default="", help="comma-separated arms trained first")
    args = ap.parse_args()
    if args.lane is None:
        procs = [
            subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--lane", str(i)])
            for i in range(args.lanes)
        ]
        raise SystemExit(max(p.wait() for p in procs))
    cells = ordered(load_sweep(args.sweep), [a for a in args.first.split(",") if a])
    mine = cells[args.lane :: args.lanes]

    def announce(i: int, n: int, cell: Cell, status: str) -> None:
        print(f"lane {args.lane} [{i}/{n}] {status}: {cell.run_dir}", flush=True)

    run_sweep(mine, announce=announce)


if __name__ == "__main__":
    main()
