#!/usr/bin/env python
"""Train a sweep's cells in several processes at once, in an order that keeps arms paired.

    python docs/study_lanes.py configs/sweeps/study-lm-budget.yaml --lanes 2 \
        --first archs,groups,capacity \
        --first solvers:midpoint/2,time:film/1,modern:sequential/4/1,modern:parallel/4/1

Each lane is one process (``--lane i`` runs one lane in this process; without it, all lanes
start as child processes and this waits for them). Cells are ordered in tiers, each ``--first``
a tier and the arms it does not name the last one, and seed-major within a tier: every arm's
seed 0, then every arm's seed 1, …, so a study stopped early still holds whole seeds of the
first tiers' arms. Each lane takes the next cell of that order no lane has claimed (an
exclusive file per cell in a folder the lanes share), so a slow arm does not hold up a lane.
A cell is trained by the sweep's own runner (``run_sweep``), so complete cells are skipped and
a stopped one resumes; ``odetx compare --sweep`` then tabulates.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from odetx.compare.sweep import Cell, load_sweep, run_sweep  # noqa: E402
from odetx.errors import Interrupted  # noqa: E402


def _label(cell: Cell) -> str:
    """``experiment:value/value…`` (an arm's name in ``--first``: its grid values but the
    seed, in the grid's order, e.g. ``solvers:midpoint/2``); ``experiment`` names every arm."""
    values = [str(v) for k, v in cell.overrides.items() if k != "train.seed"]
    return f"{cell.experiment}:{'/'.join(values)}"


def ordered(cells: list[Cell], tiers: list[list[str]]) -> list[Cell]:
    def key(cell: Cell) -> tuple:
        label = _label(cell)
        tier = next(
            (i for i, t in enumerate(tiers) if cell.experiment in t or label in t), len(tiers)
        )
        return (tier, cell.overrides.get("train.seed", 0))

    return sorted((c for c in cells if not c.shared), key=key)  # stable: sweep order within


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--lane", type=int, help="run this lane here (else start every lane)")
    ap.add_argument("--claims", help="the lanes' shared folder of claimed cells")
    ap.add_argument(
        "--first", action="append", default=[], help="a tier of comma-separated arms (repeatable)"
    )
    args = ap.parse_args()
    if args.lane is None:
        claims = tempfile.mkdtemp(prefix="odetx-lanes-")
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, *sys.argv[1:], "--lane", str(i), "--claims", claims]
            )
            for i in range(args.lanes)
        ]
        try:
            raise SystemExit(max(p.wait() for p in procs))
        except KeyboardInterrupt:  # the lanes got it too: each keeps its finished epochs
            for p in procs:
                p.wait()
            raise SystemExit("interrupted: rerun the same command to resume") from None
    cells = ordered(load_sweep(args.sweep), [[a for a in t.split(",") if a] for t in args.first])
    claims = Path(args.claims or tempfile.mkdtemp(prefix="odetx-lanes-"))

    def announce(i: int, n: int, cell: Cell, status: str) -> None:
        print(f"lane {args.lane} {status}: {cell.run_dir}", flush=True)

    for k, cell in enumerate(cells):
        try:
            os.close(os.open(claims / str(k), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue  # another lane has it
        try:
            run_sweep([cell], announce=announce)
        except Interrupted as e:  # finished epochs are kept: a rerun resumes the cell
            raise SystemExit(f"lane {args.lane}: {e}") from None


if __name__ == "__main__":
    main()
