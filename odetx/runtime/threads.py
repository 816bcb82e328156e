"""How many intra-op threads torch uses, and how long they spin while they wait.

The count. Float sums depend on how the work is split among threads, so one config
gives other weights at another thread count. The default count therefore depends on
nothing but the cores this process may use (never on the machine's load): those
cores less one, at least one and at most ``DEFAULT_CAP``, shared by the run's
processes. The core left free is what keeps a busy machine cheap: OpenMP threads wait
for each other at the end of every operation, and beside one busy process a run with
a thread per core waits for a descheduled thread again and again (measured on 2
cores: 2 threads 3-4x slower than idle, 1 thread as fast as idle and, for the default
model, about as fast as 2 idle threads; ``benchmarks/README.md``). A run records the
count it used (``train.threads`` in ``config.yaml`` and its checkpoints), so
``--resume`` reuses it. ``auto`` keeps the older, load-following choice: the cores
less the 1-minute load average, at the price of reproducibility.

The wait. When more processes compete than one core can absorb, a waiting thread
should yield its core soon. GNU OpenMP (torch's on Linux) spins ``GOMP_SPINCOUNT``
times before it sleeps, 300,000 by default (milliseconds), and reads it once, when
torch is loaded: so the command line bounds it to ``SPIN_COUNT`` before it imports
torch (:func:`bound_spin`), unless the user chose a spin count or a wait policy. The
wait never changes results, only time.

torch is imported inside :func:`apply_threads` only, so that the entry point can import
this module before torch loads.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass

AUTO = "auto"  # train.threads: follow the load at start (not reproducible across loads)
DEFAULT_CAP = 8  # the small models odetx trains on CPU gain little beyond this
# Spins before a waiting GNU OpenMP thread sleeps: short enough that a thread waiting
# for a descheduled one soon yields its core, long enough to bridge most gaps between
# torch's operations on idle cores. Measured with 2 threads on 2 cores (4-epoch default
# run; time beside one busy process / time idle): 500 spins 1.1-1.35x, 1,000
# 1.35-1.64x, 2,000 2.2-2.5x, GNU's own 300,000 3.3-4.4x; idle, the 50-epoch default run
# took 29-30 s with 300,000 spins, 36-38 s with 1,000, 42-50 s with 500.
SPIN_COUNT = 1_000
# What the user may have set instead; any of them is left alone.
SPIN_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


@dataclass(frozen=True)
class Threads:
    count: int
    why: str  # for the run header


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads(processes: int = 1) -> int:
    """The default count: the usable cores less one (at least one, at most
    ``DEFAULT_CAP``), per process."""
    return max(1, min(available_cores() - 1, DEFAULT_CAP) // max(1, processes))


def spin_setting(environ: MutableMapping[str, str] = os.environ) -> str:
    """How GNU OpenMP's threads wait in this process, for the run header."""
    chosen = [f"{name}={environ[name]}" for name in SPIN_VARIABLES if name in environ]
    return ", ".join(chosen) or "GNU OpenMP's default spin"


def bound_spin(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set ``GOMP_SPINCOUNT`` to ``SPIN_COUNT`` unless a spin count or wait policy is set.

    Takes effect only before torch (and its OpenMP runtime) is loaded: call it first
    thing in an entry point. Returns whether it set the variable.
    """
    if any(name in environ for name in SPIN_VARIABLES):
        return False
    environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True


def choose_threads(requested: int | str = 0, processes: int = 1) -> Threads:
    """``requested`` threads; the default count for 0; for ``"auto"``, the free cores."""
    spin = spin_setting()
    if requested == AUTO:
        cores = available_cores()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        free = max(1, round(cores - load))
        count = max(1, min(cores, free) // max(1, processes))
        why = f"auto: {cores} cores, load {load:.1f}, {processes} process(es); {spin}"
        return Threads(count, why)
    if isinstance(requested, int) and requested > 0:
        return Threads(requested, f"train.threads; {spin}")
    cores = available_cores()
    why = f"default: {cores} cores less one, at most {DEFAULT_CAP}, {processes} process(es)"
    return Threads(default_threads(processes), f"{why}; {spin}")


def apply_threads(requested: int | str = 0, processes: int = 1) -> Threads:
    """Choose and set torch's intra-op thread count; returns the choice."""
    import torch

    threads = choose_threads(requested, processes)
    if torch.get_num_threads() != threads.count:
        torch.set_num_threads(threads.count)
    return threads
