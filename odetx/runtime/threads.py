"""How many intra-op threads torch uses: enough to use idle cores, few enough that a
shared machine degrades gracefully.

OpenMP threads spin while they wait for each other; when another process holds one of
the cores, the spinning thread waits for a descheduled one and small models slow down
many-fold (measured: 3.6x on 2 cores beside one busy process with 2 threads, 1.1x
with one). So by default odetx takes the cores it may run on, less those that other
processes keep busy (the 1-minute load average), shared by the processes of this run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Threads:
    count: int
    why: str  # for the run header


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose_threads(requested: int = 0, processes: int = 1) -> Threads:
    """``requested`` threads, or (0) a count that avoids oversubscribing the cores."""
    if requested > 0:
        return Threads(requested, "set")
    cores = available_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    free = max(1, round(cores - load))
    count = max(1, min(cores, free) // max(1, processes))
    return Threads(count, f"auto: {cores} cores, load {load:.1f}, {processes} process(es)")


def apply_threads(requested: int = 0, processes: int = 1) -> Threads:
    """Choose and set torch's intra-op thread count; returns the choice."""
    threads = choose_threads(requested, processes)
    if torch.get_num_threads() != threads.count:
        torch.set_num_threads(threads.count)
    return threads
