"""Per-sample against batch-shared adaptive steps: field evaluations per sample, wall time and
accuracy of the integration, on trained G = 1 blocks.

    OMP_NUM_THREADS=1 python benchmarks/bench_per_sample.py --run runs/ps/digits-reg \\
        [--run runs/ps/listops] [--tols 1e-1 1e-2 1e-3 1e-4 1e-5] [--n 256] [--repeats 3] \\
        [--controller integral|pi]

For each run (a checkpoint whose stack is one group, arch parallel) and tolerance
(rtol = atol), on the first ``--n`` test examples:

- ``nfe``: mean field evaluations per sample (batch-shared: each batch's count, for all of
  its samples), at batch 64;
- ``err``: the relative L2 error of each sample's logits against rk4 with 256 steps in
  float64, mean over samples (``err_max``: the worst sample); accuracy is how close the
  integration is to the ODE's solution, not the classifier's score (also reported);
- wall time per sample at batch 1 (the first 32 examples one by one), 64 and 256, median
  of ``--repeats`` runs; and torchode's dopri5 (per-sample steps, no compaction) at one
  tolerance, if it is installed.

"Equal accuracy" interpolates each mode's (err, nfe) curve on log-log axes at the
per-sample errors. Prints one JSON record per run and a table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odetx.config import SolverConfig  # noqa: E402
from odetx.evaluation import eval_loader, load_model, load_split, override_solver  # noqa: E402
from odetx.solvers.field import BOTH  # noqa: E402
from odetx.solvers.persample import per_sample_nfe  # noqa: E402

REFERENCE = SolverConfig("rk4", steps=256)


def batches(loaded, n):
    data = load_split(loaded, "test")
    loader = eval_loader(loaded, torch.utils.data.Subset(data, range(min(n, len(data)))), n)
    *inputs, y = next(iter(loader))
    return inputs, y


def per_sample_error(out, ref):
    d = (out.double() - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
    return d


@torch.no_grad()
def run_model(model, inputs, batch):
    """Logits and per-sample NFE over ``inputs`` in batches of ``batch``."""
    outs, nfes = [], []
    n = inputs[0].shape[0]
    for i in range(0, n, batch):
        part = [t[i : i + batch] for t in inputs]
        model.stack.reset_nfe()
        out = model(*part)
        outs.append(out)
        nfes.append(per_sample_nfe(model.stack, out.shape[0]))
    return torch.cat(outs), torch.cat(nfes)


@torch.no_grad()
def wall(model, inputs, batch, repeats, limit=None):
    """Median seconds per sample over ``repeats`` passes (``limit`` samples at most)."""
    n = inputs[0].shape[0] if limit is None else min(limit, inputs[0].shape[0])
    model(*(t[:batch] for t in inputs))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, n, batch):
            model(*(t[i : min(i + batch, n)] for t in inputs))
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times), min(times), max(times)


class TorchodeBlock(torch.nn.Module):
    """The G = 1 parallel block integrated by torchode's dopri5 (per-sample steps)."""

    def __init__(self, block, rtol, atol):
        super().__init__()
        import torchode as to

        self.block, self.to = block, to
        self.rtol, self.atol = rtol, atol
        self.nfe = 0.0

    def forward(self, x, mask=None):
        to = self.to
        shape = x.shape
        field = self.block.field

        def f(t, y):
            return field(BOTH, 0.0, y.view(shape), mask).flatten(1)

        term = to.ODETerm(f)
        solver = to.AutoDiffAdjoint(
            to.Dopri5(term=term), to.IntegralController(self.atol, self.rtol, term=term)
        )
        t = torch.tensor([[self.block.t0, self.block.t1]] * shape[0], dtype=x.dtype)
        sol = solver.solve(to.InitialValueProblem(y0=x.flatten(1), t_eval=t))
        self.nfe = float(sol.stats["n_f_evals"].float().mean())
        return sol.ys[:, -1].view(shape)


def auroc(pos, neg):
    """Chance that a wrong input took more evaluations than a right one (ties count half):
    0.5 means NFE says nothing about errors."""
    if len(pos) == 0 or len(neg) == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).double().mean()
    eq = (pos[:, None] == neg[None, :]).double().mean()
    return float(gt + eq / 2)


def spearman(a, b):
    """Rank correlation (average ranks for ties) of two 1-D tensors."""

    def ranks(v):
        order = v.double().argsort()
        r = torch.empty_like(order, dtype=torch.double)
        r[order] = torch.arange(len(v), dtype=torch.double)
        for value in v.unique():  # ties share their mean rank
            same = v == value
            r[same] = r[same].mean()
        return r - r.mean()

    ra, rb = ranks(a), ranks(b)
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def interp_nfe(err_curve, nfe_curve, target):
    """NFE at which a mode's (err, nfe) curve reaches ``target`` error (log-log)."""
    pts = sorted(zip(err_curve, nfe_curve, strict=True))
    errs = np.log([max(e, 1e-300) for e, _ in pts])
    nfes = np.log([n for _, n in pts])
    t = math.log(target)
    if t < errs[0] or t > errs[-1]:
        return None  # outside the measured range
    return float(math.exp(np.interp(t, errs, nfes)))


def bench_run(run, tols, shared_tols, n, repeats, controller="integral"):
    loaded = load_model(run)
    inputs, y = batches(loaded, n)
    with torch.no_grad():
        ref = loaded.rebuild(REFERENCE).double()(*[t.double() if t.is_floating_point() else t
                                                  for t in inputs])  # fmt: skip
    rows = []
    for mode, mode_tols in (("shared", shared_tols), ("per-sample", tols)):
        for tol in mode_tols:
            cfg = override_solver(
                loaded.trained_solver,
                {"method": "dopri5", "rtol": tol, "atol": tol, "per_sample": mode != "shared"}
                | ({"controller": controller} if mode != "shared" else {}),
            )
            model = loaded.rebuild(cfg)
            out, nfe = run_model(model, inputs, 64)
            # batch-shared steps depend on the batch: its count at batch 1 and 256 beside 64's
            nfe_b = {b: run_model(model, [t[:limit] for t in inputs], b)[1].mean()
                     for b, limit in ((1, 64), (256, None))}  # fmt: skip
            err = per_sample_error(out, ref)
            right = out.argmax(-1) == y
            row = {
                "mode": mode,
                "tol": tol,
                "nfe": float(nfe.mean()),
                "nfe_p90": float(nfe.quantile(0.9)),
                "nfe_max": float(nfe.max()),
                "nfe_b1": float(nfe_b[1]),
                "nfe_b256": float(nfe_b[256]),
                "err": float(err.mean()),
                "err_max": float(err.max()),
                "acc": float(right.double().mean()),
            }
            for b, limit in ((1, 32), (64, None), (256, None)):
                med, lo, hi = wall(model, inputs, b, repeats, limit)
                row[f"ms_b{b}"] = 1e3 * med
                row[f"ms_b{b}_range"] = [1e3 * lo, 1e3 * hi]
            if mode == "per-sample":
                top = nfe >= nfe.quantile(0.9)
                row["nfe_right"] = float(nfe[right].mean())
                row["nfe_wrong"] = float(nfe[~right].mean()) if (~right).any() else None
                row["auroc_nfe_wrong"] = auroc(nfe[~right], nfe[right])
                row["acc_top_decile_nfe"] = float(right[top].double().mean())
                row["acc_rest"] = float(right[~top].double().mean()) if (~top).any() else None
                if len(inputs) > 1 and inputs[1].dtype == torch.bool:  # token data: its mask
                    row["spearman_nfe_length"] = spearman(nfe, inputs[1].sum(1).double())
            rows.append(row)
    for row in rows:
        if row["mode"] == "per-sample":
            shared = [r for r in rows if r["mode"] == "shared"]
            same = next((r for r in shared if r["tol"] == row["tol"]), None)
            if same is not None:
                row["nfe_ratio_equal_tol"] = same["nfe"] / row["nfe"]
                row["b64_speedup_equal_tol"] = same["ms_b64"] / row["ms_b64"]
            at = interp_nfe([r["err"] for r in shared], [r["nfe"] for r in shared], row["err"])
            row["shared_nfe_equal_err"] = at
            row["nfe_ratio_equal_err"] = at / row["nfe"] if at else None
            # equal worst-sample error: every prediction held to the same accuracy
            worst = interp_nfe([r["err_max"] for r in shared], [r["nfe"] for r in shared],
                               row["err_max"])  # fmt: skip
            row["nfe_ratio_equal_err_max"] = worst / row["nfe"] if worst else None
            at256 = interp_nfe([r["err"] for r in shared], [r["nfe_b256"] for r in shared],
                               row["err"])  # fmt: skip
            row["nfe_ratio_equal_err_b256"] = at256 / row["nfe"] if at256 else None
            if at:  # batch-shared wall time at that error, interpolated likewise
                ms = interp_nfe([r["err"] for r in shared], [r["ms_b64"] for r in shared],
                                row["err"])  # fmt: skip
                row["b64_speedup_equal_err"] = ms / row["ms_b64"]
    record = {"run": str(run), "n": int(inputs[0].shape[0]), "rows": rows}
    try:
        mid = tols[len(tols) // 2]
        model = loaded.rebuild(
            override_solver(loaded.trained_solver, {"method": "dopri5", "rtol": mid, "atol": mid})
        )
        block = TorchodeBlock(model.stack.blocks[0], mid, mid)
        model.stack.blocks[0] = block
        with torch.no_grad():
            start = time.perf_counter()
            out = torch.cat([model(*(t[i : i + 64] for t in inputs)) for i in range(0, n, 64)])
            seconds = time.perf_counter() - start
        record["torchode"] = {
            "tol": mid,
            "nfe_last_batch": block.nfe,
            "err": float(per_sample_error(out, ref).mean()),
            "ms_b64": 1e3 * seconds / inputs[0].shape[0],
        }
    except Exception as e:  # torchode not installed, or its API moved
        record["torchode"] = f"not measured: {type(e).__name__}: {e}"
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-1, 1e-2, 1e-3, 1e-4, 1e-5])
    parser.add_argument(
        "--shared-tols", type=float, nargs="+", default=[10.0**-k for k in range(1, 9)]
    )
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--controller", default="integral", help="per-sample step-size controller")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.run:
        record = bench_run(run, args.tols, args.shared_tols, args.n, args.repeats, args.controller)
        print(json.dumps(record))
        print(f"{'mode':<11}{'tol':>7}{'nfe':>7}{'p90':>6}{'max':>6}{'err':>10}{'acc':>7}"
              f"{'ms/s b1':>9}{'b64':>7}{'b256':>7}{'NFE x eq.err':>13}{'eq.max':>7}"
              f"{'b256':>6}{'b64 x':>7}")  # fmt: skip
        for r in record["rows"]:
            ratio = r.get("nfe_ratio_equal_err")
            speed = r.get("b64_speedup_equal_err")
            worst, r256 = r.get("nfe_ratio_equal_err_max"), r.get("nfe_ratio_equal_err_b256")
            print(
                f"{r['mode']:<11}{r['tol']:>7.0e}{r['nfe']:>7.1f}{r['nfe_p90']:>6.0f}"
                f"{r['nfe_max']:>6.0f}{r['err']:>10.2e}{r['acc']:>7.3f}{r['ms_b1']:>9.2f}"
                f"{r['ms_b64']:>7.2f}{r['ms_b256']:>7.2f}"
                f"{(f'{ratio:.2f}' if ratio else '—'):>13}"
                f"{(f'{worst:.2f}' if worst else '—'):>7}"
                f"{(f'{r256:.2f}' if r256 else '—'):>6}"
                f"{(f'{speed:.2f}' if speed else '—'):>7}"
            )
        for r in record["rows"]:  # which inputs take the most steps
            if r["mode"] == "per-sample":
                print(f"per sample {r['tol']:.0e}: NFE right {r['nfe_right']:.1f} / wrong "
                      f"{r['nfe_wrong'] or float('nan'):.1f}, AUROC(NFE, wrong) "
                      f"{r['auroc_nfe_wrong'] or float('nan'):.2f}, Spearman(NFE, length) "
                      f"{r.get('spearman_nfe_length', float('nan')):.2f}")  # fmt: skip
        print("torchode:", record["torchode"])


if __name__ == "__main__":
    main()
