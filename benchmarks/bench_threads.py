#!/usr/bin/env python
"""Training time by thread setting, on idle cores and beside busy processes, side by side.

    python benchmarks/bench_threads.py [--epochs 5] [--repeats 3] [--busy 1]
        [--spins 1000 100000] [--max-other 0.3] [--only default "1 thread"]

Each cell runs ``odetx train --epochs N`` (the embedded default) in a fresh process and
reports its training wall time (``summary.json``); the loaded cells run ``--busy``
processes spinning on the CPU next to it. The settings:

- ``default``: no ``--threads`` (the fixed default count, the cores less one; OpenMP's
  spin bounded by the command line's ``GOMP_SPINCOUNT``);
- ``1 thread``; ``2 threads`` (with the command line's bound), ``2 threads spin`` (GNU
  OpenMP's own spin, ``GOMP_SPINCOUNT=300000``), ``2 threads passive``
  (``OMP_WAIT_POLICY=PASSIVE``); ``auto`` (the load-following count);
- ``spin N`` for each ``--spins N``: 2 threads with ``GOMP_SPINCOUNT=N``.

Repeats are interleaved so that drifting load hits every setting alike; the table gives
the median and range of each setting as a ratio to the idle default. On a machine that
others share, each cell also measures the cores busy with *other* processes meanwhile
(``/proc/stat`` less this cell's own processes); ``--max-other X`` reruns a cell (up to
4 times) whose figure exceeds X cores, and the table reports the worst one kept.

Every cell trains the same config, so the weights it ends with say what changes results:
the last lines count the distinct final weights (``last.pt``) per thread count, over all
settings and loads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIBGOMP_SPIN = "300000"  # GNU OpenMP's own GOMP_SPINCOUNT when nothing is set
# The variables a cell decides; the bench's own environment must not leak into them.
CLEARED = ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def spin() -> None:
    while True:
        pass


def busy_ticks() -> int | None:
    """Clock ticks every CPU has spent busy (user, nice, system, irq, softirq) since boot."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return user + nice + system + irq + softirq


def process_ticks(pid: int) -> int:
    """``pid``'s user + system clock ticks (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def children_ticks() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * TICK


def train(threads: str | None, env: dict[str, str], epochs: int, out: Path) -> tuple:
    """One run: (training seconds, threads used, cores busy with other processes)."""
    command = [sys.executable, "-m", "odetx", "train", "--epochs", str(epochs)]
    command += ["--out", str(out), "--device", "cpu"]
    command += ["--threads", threads] if threads is not None else []
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    spinners = [p.pid for p in multiprocessing.active_children()]
    before = busy_ticks(), children_ticks(), sum(process_ticks(p) for p in spinners)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**base, **env})
    wall = time.perf_counter() - start
    after = busy_ticks(), children_ticks(), sum(process_ticks(p) for p in spinners)
    other = None
    if before[0] is not None and after[0] is not None:
        mine = (after[1] - before[1]) + (after[2] - before[2])
        other = max(0.0, (after[0] - before[0] - mine) / (wall * TICK))
    summary = json.loads((out / "summary.json").read_text())
    return summary["wall_time_s"], summary.get("threads"), other, weights_digest(out)


def weights_digest(run: Path) -> str:
    """A digest of the final weights in ``run/last.pt``: equal only when bit-identical."""
    import torch  # here only: the bench process itself trains nothing

    model = torch.load(run / "last.pt", weights_only=True)["model"]
    digest = hashlib.sha256()
    for name in sorted(model):
        digest.update(name.encode())
        digest.update(model[name].cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:12]


def cpu_model() -> str:
    try:
        return next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        return "unknown CPU"


def settings(spins: list[int]) -> dict[str, tuple[str | None, dict[str, str]]]:
    """Name -> (--threads value or None, environment)."""
    out: dict[str, tuple[str | None, dict[str, str]]] = {
        "default": (None, {}),
        "1 thread": ("1", {}),
        "2 threads": ("2", {}),
        "2 threads spin": ("2", {"GOMP_SPINCOUNT": LIBGOMP_SPIN}),
        "2 threads passive": ("2", {"OMP_WAIT_POLICY": "PASSIVE"}),
        "auto": ("auto", {}),
    }
    for n in spins:
        out[f"spin {n}"] = ("2", {"GOMP_SPINCOUNT": str(n)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes when loaded")
    parser.add_argument("--spins", type=int, nargs="*", default=[], help="GOMP_SPINCOUNTs")
    parser.add_argument("--max-other", type=float, default=None, help="rerun above this load")
    parser.add_argument("--only", nargs="*", default=None, help="these settings (and default)")
    args = parser.parse_args()
    cells = settings(args.spins)
    if args.only is not None:
        cells = {k: v for k, v in cells.items() if k == "default" or k in args.only}
    times: dict[tuple[str, str], list[float]] = {}
    used: dict[tuple[str, str], set] = {}
    others: dict[tuple[str, str], list[float]] = {}
    digests: dict[int, set[str]] = {}
    runs: dict[int, int] = {}
    reruns = 0
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for _ in range(args.repeats):
            for load in ("idle", "loaded"):
                busy = []
                if load == "loaded":
                    busy = [
                        multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)
                    ]
                    for p in busy:
                        p.start()
                try:
                    for name, (threads, env) in cells.items():
                        for attempt in range(5):
                            n += 1
                            result = train(threads, env, args.epochs, Path(tmp) / str(n))
                            seconds, count, other, digest = result
                            if args.max_other is None or other is None or other <= args.max_other:
                                break
                            if attempt < 4:
                                reruns += 1
                        times.setdefault((load, name), []).append(seconds)
                        used.setdefault((load, name), set()).add(count)
                        others.setdefault((load, name), []).append(other or 0.0)
                        digests.setdefault(count, set()).add(digest)
                        runs[count] = runs.get(count, 0) + 1
                finally:
                    for p in busy:
                        p.terminate()
                        p.join()
    print(f"odetx train --epochs {args.epochs} (digits, vit-micro) on {os.cpu_count()} CPUs")
    print(f"CPU: {cpu_model()}; loaded = beside {args.busy} spinning process(es)")
    print(f"{args.repeats} interleaved repeats; {reruns} cell(s) rerun for other processes' load")
    base = statistics.median(times[("idle", "default")])
    print(f"ratios to the idle default's median, {base:.2f} s")
    head = f"{'setting':18} {'load':7} {'threads':8} {'median s':>9} {'ratio':>6} {'range':>12}"
    print(head + f" {'other cores':>12}")
    for name in cells:
        for load in ("idle", "loaded"):
            values = times[(load, name)]
            med = statistics.median(values)
            span = f"{min(values) / base:.2f}-{max(values) / base:.2f}"
            count = ",".join(str(u) for u in sorted(used[(load, name)]))
            worst = max(others[(load, name)])
            print(
                f"{name:18} {load:7} {count:8} {med:9.2f} {med / base:6.2f} {span:>12} "
                f"{worst:12.2f}"
            )
    for count in sorted(digests):
        print(
            f"{count} thread(s): {len(digests[count])} distinct final weights over "
            f"{runs[count]} runs ({', '.join(sorted(digests[count]))})"
        )


if __name__ == "__main__":
    main()
