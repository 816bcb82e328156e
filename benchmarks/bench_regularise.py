"""Regularised against plain training of the weight-shared digits block under dopri5.

    OMP_NUM_THREADS=1 python benchmarks/bench_regularise.py [--epochs 30] [--seeds 0 1 2]
        [--tol 1e-2] [--atol ATOL] [--kinetic 0.05] [--jacobian 0.01] [--arms plain reg]
        [--out runs/bench-reg]

Trains vit-micro (D = 6, G = 1, parallel arch) on digits with dopri5 at rtol = ``--tol``,
atol = ``--atol`` (default: the same), once plain and once with ``train.reg_kinetic`` /
``train.reg_jacobian``, for each seed, one process after another; prints test accuracy
(best validation epoch), NFE per forward on the test pass and wall time, and the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odetx.resolve import build_config  # noqa: E402
from odetx.training import Trainer  # noqa: E402


def run(args: argparse.Namespace, seed: int, regularised: bool) -> dict[str, float]:
    overrides = {
        "train.epochs": args.epochs,
        "train.seed": seed,
        "train.threads": 1,
        "model.groups": 1,
        "model.arch": "parallel",
        "solver.method": "dopri5",
        "solver.rtol": args.tol,
        "solver.atol": args.tol if args.atol is None else args.atol,
    }
    if regularised:
        overrides |= {"train.reg_kinetic": args.kinetic, "train.reg_jacobian": args.jacobian}
    atol = "" if args.atol is None else f"-atol{args.atol:g}"
    name = f"{'reg' if regularised else 'plain'}-tol{args.tol:g}{atol}-s{seed}"
    summary = Trainer(build_config(overrides=overrides), Path(args.out) / name).fit()
    return {
        "acc": summary["test"]["acc"],
        "nfe": summary["nfe_forward"],
        "wall_s": summary["wall_time_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tol", type=float, default=1e-2)
    parser.add_argument("--atol", type=float, default=None)
    parser.add_argument("--kinetic", type=float, default=0.05)
    parser.add_argument("--jacobian", type=float, default=0.01)
    parser.add_argument("--arms", nargs="+", choices=["plain", "reg"], default=["plain", "reg"])
    parser.add_argument("--out", default="runs/bench-reg")
    args = parser.parse_args()
    rows = {False: [], True: []}
    for seed in args.seeds:
        for regularised in [arm == "reg" for arm in args.arms]:
            result = run(args, seed, regularised)
            rows[regularised].append(result)
            print(json.dumps({"seed": seed, "regularised": regularised, **result}), flush=True)
    for regularised, results in [(k, v) for k, v in rows.items() if v]:
        mean = {k: statistics.mean(r[k] for r in results) for k in ("acc", "nfe", "wall_s")}
        label = "regularised" if regularised else "plain"
        print(f"{label:12s} acc {mean['acc']:.4f}  nfe {mean['nfe']:.1f}  {mean['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
