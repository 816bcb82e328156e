"""Side-by-side speed and memory of odetx against reference implementations.

    python benchmarks/bench.py [--device cuda] [--quick] [--amp bf16] [--compile]

Every ratio compares cases measured in the same process, with repeats
interleaved (A B C A B C ...) and the median taken, so a busy machine slows
all cases alike. One table is printed; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torchdiffeq import odeint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odetx.config import ModelConfig, SolverConfig  # noqa: E402
from odetx.data.base import DataInfo  # noqa: E402
from odetx.models.fields import LayerField  # noqa: E402
from odetx.resolve import create_model  # noqa: E402
from odetx.solvers import (  # noqa: E402
    TABLEAUS,
    FixedStepIntegrator,
    build_integrator,
    resolve_solver,
)
from odetx.solvers.field import BOTH  # noqa: E402

try:
    from timm.models.vision_transformer import VisionTransformer
except ImportError:
    VisionTransformer = None

INFO = DataInfo("image", num_classes=100, image_size=32, in_chans=3)
DEIT_TI = dict(preset="deit-tiny", patch_size=4, dropout=0.0)  # 12 x 192, 3 heads, MLP 768
ROWS: list[tuple[str, str, str, str, str]] = []


def row(section: str, case: str, value: str, ratio: str = "", target: str = "") -> None:
    ROWS.append((section, case, value, ratio, target))


def verdict(ratio: float, goal: float, higher: bool = True) -> str:
    ok = ratio >= goal if higher else ratio <= goal
    return f"{'≥' if higher else '≤'} {goal:g}× {'met' if ok else 'NOT met'}"


# ---------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    cases: dict[str, Callable[[], object]], reps: int, device: torch.device, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each case, repeats interleaved across cases."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def autocast(device: torch.device, amp: str):
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def matmul_peak(device: torch.device) -> float:
    """Float32 FLOP/s of a big square matmul: the machine's practical peak."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(8):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)  # the best run: a peak, not a typical speed


# ---------------------------------------------------------------- models


def odetx_vit(
    arch: str, shared_norm: bool = False, fused: bool = False, **solver
) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, shared_norm=shared_norm, fused=fused, **DEIT_TI)
    return create_model(cfg, SolverConfig(**solver), INFO)


def timm_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return VisionTransformer(
        img_size=32, patch_size=4, num_classes=100, embed_dim=192, depth=12, num_heads=3
    )


def vit_flops(batch: int, mlp_evals: int = 1) -> float:
    """Matmul FLOPs of one DeiT-Ti training step at 32 px (forward + backward = 3x forward);
    ``mlp_evals``: MLP evaluations per layer (Strang's ½M, A, ½M evaluates it twice)."""
    n, d, h, depth = 65, 192, 768, 12
    layer = 2 * n * (3 * d * d + d * d + mlp_evals * 2 * d * h) + 2 * 2 * n * n * d
    embed = 2 * 64 * 48 * d + 2 * d * 100
    return 3.0 * batch * (depth * layer + embed)


def train_models(has_timm: bool) -> dict[str, Callable[[], torch.nn.Module]]:
    models = {
        "odetx sequential": lambda: odetx_vit("sequential"),
        "odetx parallel": lambda: odetx_vit("parallel"),
        "odetx parallel shared-norm": lambda: odetx_vit("parallel", True),
        "odetx parallel fused": lambda: odetx_vit("parallel", True, fused=True),
        "odetx strang": lambda: odetx_vit("strang"),
    }
    if has_timm:
        models["timm VisionTransformer"] = timm_vit
    return models


def train_step(model, device, amp, batch) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (batch,), device=device)

    def step() -> None:
        with autocast(device, amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_training(args, device: torch.device, peak: float) -> None:
    batch = 64 if device.type == "cuda" or not args.quick else 32
    reps = 3 if args.quick else (20 if device.type == "cuda" else 5)
    builders = train_models(VisionTransformer is not None)
    if VisionTransformer is None:
        row("training", "timm VisionTransformer", "skipped: pip install 'odetx[bench]'")
    steps = {}
    for name, build in builders.items():
        model = build().to(device).train()
        if args.compile:
            model = torch.compile(model)
        steps[name] = train_step(model, device, args.amp, batch)
    t = interleaved(steps, reps, device, warmup=1 if args.quick else 2)
    seq = t["odetx sequential"]
    sec = f"training DeiT-Ti 32px, batch {batch}"
    for name, s in t.items():
        frac = vit_flops(batch, 2 if name == "odetx strang" else 1) / s / peak
        value = f"{batch / s:,.1f} samples/s ({frac:.0%} of peak)"
        if name == "odetx sequential" and "timm VisionTransformer" in t:
            r = t["timm VisionTransformer"] / s
            row(sec, name, value, f"{r:.2f}× timm", verdict(r, 1.0))
        elif name == "odetx parallel fused":
            r = seq / s
            row(sec, name, value, f"{r:.2f}× sequential", verdict(r, 1.05))
            r2 = t["odetx parallel shared-norm"] / s
            row(sec, "  fused vs the same layer unfused", "", f"{r2:.2f}×")
        elif name == "timm VisionTransformer":
            row(sec, name, value, "1.00× timm")
        else:
            row(sec, name, value, f"{seq / s:.2f}× sequential")


# ---------------------------------------------------------------- weight-shared block


def rk38_loop(field, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Kutta's 3/8 rule written out by hand: the arithmetic the integrator must match."""
    h = 1.0 / steps
    for n in range(steps):
        t = n * h
        k1 = field(BOTH, t, x, None)
        k2 = field(BOTH, t + h / 3, x + (h / 3) * k1, None)
        k3 = field(BOTH, t + 2 * h / 3, x + h * (k2 - k1 / 3), None)
        k4 = field(BOTH, t + h, x + h * (k1 - k2 + k3), None)
        x = x + (h / 8) * (k1 + 3 * (k2 + k3) + k4)
    return x


def bench_shared_block(args, device: torch.device) -> None:
    dims = (64, 192) if args.quick else (64, 192, 384)
    batch = 16 if args.quick else 32
    reps = 5 if args.quick else 15
    steps = 4
    for dim in dims:
        torch.manual_seed(0)
        field = LayerField(dim, max(dim // 64, 1), 4.0).to(device)
        ours = FixedStepIntegrator(field, TABLEAUS["rk38"], [(BOTH, 1.0)], steps).to(device)
        x = torch.randn(batch, 65, dim, device=device)
        grid = torch.linspace(0.0, 1.0, steps + 1, device=device)

        def func(t, y, field=field):
            # The field ignores t: passing 0.0 spares a device-to-host sync per evaluation
            # that would be this wrapper's cost, not torchdiffeq's.
            return field(BOTH, 0.0, y, None)

        solves = {
            "odetx": lambda ours=ours, x=x: ours(x),
            "hand loop": lambda field=field, x=x: rk38_loop(field, x, steps),
            "torchdiffeq": lambda func=func, x=x, grid=grid: odeint(func, x, grid, method="rk4")[
                -1
            ],
        }
        with torch.no_grad():
            outs = [solve() for solve in solves.values()]
        for other in outs[1:]:
            torch.testing.assert_close(outs[0], other, rtol=1e-4, atol=1e-4)

        def fwd_bwd(solve):
            def run() -> None:
                with autocast(device, args.amp):
                    out = solve()
                out.float().square().mean().backward()

            return run

        t = interleaved({k: fwd_bwd(s) for k, s in solves.items()}, reps, device)
        sec = f"shared block G=1, rk4 (3/8) x {steps} steps, fwd+bwd, batch {batch}"
        row(sec, f"dim {dim}: odetx", f"{t['odetx'] * 1e3:.1f} ms")
        r = t["torchdiffeq"] / t["odetx"]
        row(sec, f"dim {dim}: vs torchdiffeq.odeint", "", f"{r:.2f}× faster", verdict(r, 1.2))
        r = t["odetx"] / t["hand loop"]
        row(sec, f"dim {dim}: vs hand loop", "", f"{r:.3f}× its time", verdict(r, 1.05, False))


# ---------------------------------------------------------------- memory

MEM_CASES = {
    "dopri5 direct backprop": ("block", dict(method="dopri5", rtol=1e-3, atol=1e-4)),
    "dopri5 adjoint": ("block", dict(method="dopri5", rtol=1e-3, atol=1e-4, adjoint=True)),
    "train sequential": ("vit", dict(arch="sequential")),
    "train parallel": ("vit", dict(arch="parallel")),
    "train parallel shared-norm": ("vit", dict(arch="parallel", shared_norm=True)),
    "train parallel fused": ("vit", dict(arch="parallel", shared_norm=True, fused=True)),
    "train strang": ("vit", dict(arch="strang")),
    "train timm": ("timm", {}),
}


def proc_status(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of this process in bytes. Unlike ``ru_maxrss``,
    which survives ``exec`` and so reports the parent's peak, ``VmHWM`` is this image's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def memory_case(name: str, device: torch.device, quick: bool) -> int:
    """Peak bytes above the ready-to-run baseline for one fwd+bwd of case ``name``."""
    kind, kw = MEM_CASES[name]
    batch = 16 if quick else 32
    if kind == "block":
        torch.manual_seed(0)
        block = build_integrator(
            LayerField(192, 3, 4.0), resolve_solver(SolverConfig(**kw)), [(BOTH, 1.0)], 0, 1
        )
        block = block.to(device)
        x = torch.randn(batch, 65, 192, device=device) * 4
        run = lambda: block(x).square().mean().backward()  # noqa: E731
    else:
        model = timm_vit() if kind == "timm" else odetx_vit(**kw)
        model = model.to(device)
        x = torch.randn(batch, 3, 32, 32, device=device)
        run = lambda: model(x).square().mean().backward()  # noqa: E731
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base = proc_status("VmRSS")
    run()
    return proc_status("VmHWM") - base


def bench_memory(args, device: torch.device) -> None:
    cases = [c for c in MEM_CASES if c != "train timm" or VisionTransformer is not None]
    peaks = {}
    for name in cases:
        if device.type == "cuda":
            peaks[name] = memory_case(name, device, args.quick)
            continue
        # Peak RSS only grows, so each CPU case runs in a fresh interpreter.
        cmd = [sys.executable, __file__, "--memory-case", name]
        proc = subprocess.run(
            cmd + (["--quick"] if args.quick else []), capture_output=True, text=True
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        peaks[name] = json.loads(proc.stdout.strip().splitlines()[-1])["peak"]
    how = "cuda max_memory_allocated" if device.type == "cuda" else "VmHWM − VmRSS before"
    batch = 16 if args.quick else 32
    sec = f"peak memory of one fwd+bwd ({how}), batch {batch}"
    direct = peaks["dopri5 direct backprop"]
    for name, peak in peaks.items():
        ratio = ""
        if name == "dopri5 adjoint":
            ratio = f"{peak / direct:.2f}× direct"
        elif name.startswith("train") and name != "train sequential":
            ratio = f"{peak / peaks['train sequential']:.2f}× sequential"
        label = name if not name.startswith("dopri5") else f"G=1 dim 192 {name}"
        row(sec, label, f"{peak / 2**20:,.0f} MiB", ratio)


# ---------------------------------------------------------------- export


def bench_export(args, device: torch.device) -> None:
    reps = 10 if args.quick else 30
    for batch in (1, 64):
        model = odetx_vit("parallel", True, True, method="rk4", steps=1).to(device).eval()
        x = torch.randn(batch, 3, 32, 32, device=device)
        with torch.no_grad():
            scripted = torch.jit.script(model)
            exported = torch.export.export(model, (x,)).module()
            want = model(x)
            for other in (scripted, exported):
                torch.testing.assert_close(other(x), want, rtol=1e-4, atol=1e-4)

            def infer(m, x=x):
                def run() -> None:
                    with torch.no_grad(), autocast(device, args.amp):
                        m(x)

                return run

            t = interleaved(
                {"eager": infer(model), "ts": infer(scripted), "pt2": infer(exported)},
                reps,
                device,
                warmup=3,
            )
        sec = "inference latency, DeiT-Ti parallel fused, rk4 x 1"
        row(sec, f"batch {batch}: eager", f"{t['eager'] * 1e3:.2f} ms")
        row(sec, f"batch {batch}: TorchScript", f"{t['ts'] * 1e3:.2f} ms", ratio_of(t, "ts"))
        row(sec, f"batch {batch}: torch.export", f"{t['pt2'] * 1e3:.2f} ms", ratio_of(t, "pt2"))


def ratio_of(t: dict[str, float], name: str) -> str:
    return f"{t['eager'] / t[name]:.2f}× eager"


# ---------------------------------------------------------------- main


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} CPUs"
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="smaller batches, fewer repeats")
    p.add_argument("--amp", choices=["off", "bf16"], default="off")
    p.add_argument("--compile", action="store_true", help="torch.compile the training models")
    p.add_argument("--only", nargs="*", default=["training", "block", "memory", "export"])
    p.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = p.parse_args()
    device = torch.device(args.device)
    if args.memory_case:
        print(json.dumps({"peak": memory_case(args.memory_case, device, args.quick)}))
        return
    torch.manual_seed(0)
    peak = matmul_peak(device)
    t0 = time.perf_counter()
    if "training" in args.only:
        bench_training(args, device, peak)
    if "block" in args.only:
        bench_shared_block(args, device)
    if "memory" in args.only:
        bench_memory(args, device)
    if "export" in args.only:
        bench_export(args, device)
    title = (
        f"odetx benchmarks — {machine(device)} · torch {torch.__version__} · "
        f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"
        f" · amp {args.amp}{' · compiled' if args.compile else ''}\n"
        f"$ python {' '.join(sys.argv)}\n"
        f"float32 matmul peak {peak / 1e9:,.0f} GFLOP/s · medians of interleaved repeats · "
        f"{time.perf_counter() - t0:.0f} s"
    )
    table = Table(title=title, title_justify="left")
    for col in ("benchmark", "case", "value", "ratio", "target"):
        table.add_column(col, overflow="fold")
    last = None
    for sec, *rest in ROWS:
        table.add_row(sec if sec != last else "", *rest)
        last = sec
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
