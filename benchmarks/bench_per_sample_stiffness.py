"""Per-sample against batch-shared dopri5 where samples differ: a batch whose samples decay
at rates spread over a range, so some are stiff and some are not.

    OMP_NUM_THREADS=1 python benchmarks/bench_per_sample_stiffness.py \\
        [--stiffness 0.1 3 30 100] [--batch 64] [--tols 1e-2 1e-3 1e-4 1e-5 1e-6]

Each sample ``i`` solves ``z' = −λ_i z + tanh(z W)`` (8 channels, one shared ``W``) over
``[0, 1]`` from a Gaussian ``z(0)``, with ``λ_i`` log-spaced from 0.1 to ``λ_max`` over
the batch (``λ_max`` = 0.1: every sample alike, the control). ``λ_i`` rides in the state
as a constant channel, so a compacted batch keeps each sample's own rate. Batch-shared
rows are torchdiffeq's dopri5 on the whole batch; per-sample rows odetx's integrator.
``err``: the mean over samples of the L2 error at ``t = 1`` against torchdiffeq at 1e-12,
relative to the sample's initial state.
"Equal accuracy" interpolates the batch-shared (err, nfe) curve at each per-sample row's
error, as ``bench_per_sample.py`` does. Counts only: this field costs nothing, so wall
time would measure the loop, not the field (``bench_per_sample.py`` times trained blocks).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from torch import nn
from torchdiffeq import odeint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_per_sample import interp_nfe  # noqa: E402

from odetx.solvers import EMBEDDED  # noqa: E402
from odetx.solvers.field import BOTH  # noqa: E402
from odetx.solvers.persample import PerSampleIntegrator  # noqa: E402

CHANNELS = 8


class DecayField(nn.Module):
    """``z' = −λ z + tanh(z W)`` with ``λ`` the state's first channel (held constant)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w
        self.calls = 0

    def forward(self, which: int, t: float, y: torch.Tensor, mask=None) -> torch.Tensor:
        self.calls += 1
        rate, z = y[:, :1], y[:, 1:]
        return torch.cat([torch.zeros_like(rate), -rate * z + torch.tanh(z @ self.w)], 1)


def bench(lam_max: float, batch: int, tols, shared_tols, controller: str) -> dict:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(CHANNELS, CHANNELS, generator=g, dtype=torch.float64) / 3
    rates = torch.logspace(-1, math.log10(lam_max), batch, dtype=torch.float64)[:, None]
    y0 = torch.cat([rates, torch.randn(batch, CHANNELS, generator=g, dtype=torch.float64)], 1)
    field = DecayField(w)
    span = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def plain(t, y):
        return field(0, t, y)

    truth = odeint(plain, y0, span, rtol=1e-12, atol=1e-12)[-1][:, 1:]

    scale = y0[:, 1:].norm(dim=1)  # a stiff sample's state decays to ~e^(−λ): not its scale

    def err(out: torch.Tensor) -> float:
        return ((out[:, 1:] - truth).norm(dim=1) / scale).mean().item()

    shared = []
    for tol in shared_tols:
        field.calls = 0
        out = odeint(plain, y0, span, rtol=tol, atol=tol, method="dopri5")[-1]
        shared.append({"mode": "batch-shared", "tol": tol, "nfe": field.calls, "err": err(out)})
    rows = list(shared)
    for tol in tols:
        block = PerSampleIntegrator(
            field, EMBEDDED["dopri5"], [(BOTH, 1.0)], t1=1.0, rtol=tol, atol=tol,
            max_num_steps=1_000_000, time_dependent=False, controller=controller,
        ).eval()  # fmt: skip
        out = block(y0)
        nfe = block.sample_nfe
        e = err(out)
        at = interp_nfe([r["err"] for r in shared], [r["nfe"] for r in shared], e)
        rows.append({
            "mode": "per-sample", "tol": tol, "nfe": nfe.mean().item(),
            "nfe_min": nfe.min().item(), "nfe_max": nfe.max().item(), "err": e,
            "nfe_ratio_equal_err": at / nfe.mean().item() if at else None,
        })  # fmt: skip
    return {"lambda_max": lam_max, "batch": batch, "controller": controller, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stiffness", type=float, nargs="+", default=[0.1, 3.0, 30.0, 100.0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tols", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    parser.add_argument(
        "--shared-tols", type=float, nargs="+", default=[10.0**-k for k in range(1, 10)]
    )
    parser.add_argument("--controller", default="integral")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'λ_max':>7} {'mode':<13}{'tol':>7}{'NFE/sample':>11}{'(min, max)':>13}"
          f"{'err':>10}{'NFE ratio at equal err':>24}")  # fmt: skip
    for lam_max in args.stiffness:
        record = bench(lam_max, args.batch, args.tols, args.shared_tols, args.controller)
        for r in record["rows"]:
            spread = f"({r['nfe_min']:.0f}, {r['nfe_max']:.0f})" if "nfe_min" in r else ""
            ratio = r.get("nfe_ratio_equal_err")
            shown = f"{ratio:.2f}×" if ratio else ("—" if r["mode"] == "per-sample" else "")
            print(f"{lam_max:>7g} {r['mode']:<13}{r['tol']:>7.0e}{r['nfe']:>11.1f}{spread:>13}"
                  f"{r['err']:>10.1e}{shown:>24}")  # fmt: skip
        print(json.dumps(record))


if __name__ == "__main__":
    main()
