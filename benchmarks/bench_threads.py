#!/usr/bin/env python
"""Training time with 1, 2 and the automatic number of threads, on idle cores and
beside busy processes, side by side.

    python benchmarks/bench_threads.py [--epochs 5] [--repeats 2] [--busy 1]

Each cell runs ``odetx train --epochs N --threads T`` (the embedded default) in a fresh
process and reports its training wall time (``summary.json``); the loaded cells run
``--busy`` processes spinning on the CPU next to it. Repeats are interleaved so that
drifting load hits every setting alike; the table gives the median and the range.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def spin() -> None:
    while True:
        pass


def train_seconds(threads: int, epochs: int, out: Path) -> float:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "odetx",
            "train",
            "--epochs",
            str(epochs),
            "--out",
            str(out),
            "--threads",
            str(threads),
            "--device",
            "cpu",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
    )
    summary = json.loads((out / "summary.json").read_text())
    return summary["wall_time_s"], summary.get("threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes when loaded")
    args = parser.parse_args()
    settings = {"1 thread": 1, "2 threads": 2, "auto": 0}
    times: dict[tuple[str, str], list[float]] = {}
    chosen: dict[tuple[str, str], set] = {}
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
                    for name, threads in settings.items():
                        n += 1
                        seconds, used = train_seconds(threads, args.epochs, Path(tmp) / str(n))
                        times.setdefault((load, name), []).append(seconds)
                        chosen.setdefault((load, name), set()).add(used)
                finally:
                    for p in busy:
                        p.terminate()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    print(f"odetx train --epochs {args.epochs} (digits, vit-micro), {os.cpu_count()} CPUs: {cpu}")
    print(f"loaded = beside {args.busy} spinning process(es); {args.repeats} interleaved repeats")
    idle_best = statistics.median(times[("idle", "2 threads")])
    print(f"{'load':8} {'threads':10} {'used':6} {'median s':>9} {'range s':>15} {'vs idle 2':>10}")
    for (load, name), values in times.items():
        med = statistics.median(values)
        used = ",".join(str(u) for u in sorted(chosen[(load, name)]))
        span = f"{min(values):.1f}-{max(values):.1f}"
        print(f"{load:8} {name:10} {used:6} {med:9.1f} {span:>15} {med / idle_best:9.2f}x")


if __name__ == "__main__":
    main()
