"""Multi-process training on torch.distributed, launched by ``torchrun``.

odetx does not launch nodes itself: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``, and :func:`from_env` joins the group they describe. With
none of them set, everything here is a no-op and training is single-process.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from odetx.errors import ConfigError, Interrupted, TrainingError

# A rank that dies leaves the others waiting in a collective; torchrun tears the
# group down when a worker exits, and this bounds the wait if it cannot.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """Each process of a node takes its own GPU; CPU processes share the host."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64, so counts stay exact)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=_comm_device())
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_env(device: torch.device) -> Dist:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group(backend, timeout=TIMEOUT)
    return d


def local_processes() -> int:
    """Processes of this job on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 1 alone)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank went away."""
    dist_error = getattr(torch.distributed, "DistError", ())
    return isinstance(error, dist_error) or "closed by peer" in str(error)


def shutdown(together: bool = False) -> None:
    """Leave the process group. ``together`` (after a run that ended well) waits for every
    rank first: a rank tearing gloo down while another was still at work was seen to abort
    (``terminate called without an active exception``)."""
    if dist.is_available() and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def exit_finished() -> None:
    """End a rank whose run is written and whose process group is gone, without the
    interpreter's teardown: gloo's threads were seen to abort it there (exit -6,
    ``terminate called without an active exception``) after all work was done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def check_batch(batch_size: int, world_size: int) -> int:
    """The per-process batch: ``train.batch_size`` is global, split evenly over ranks."""
    if batch_size % world_size:
        raise ConfigError(
            "train.batch_size",
            f"{batch_size} does not split evenly over {world_size} processes",
        )
    return batch_size // world_size


def launch(nproc: int, argv: Sequence[str]) -> None:
    """Run ``odetx <argv>`` on ``nproc`` local processes with torch's own launcher
    (what ``torchrun --standalone --nproc_per_node N`` does)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # Each rank's own error line is the message; the launcher's logs would bury it.
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # torchrun's rule, without its banner: share the cores rather than oversubscribe them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"odetx-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "odetx", *argv)
    except SignalException:
        raise Interrupted("") from None  # rank 0 has said where the run stands
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        raise TrainingError(
            f"distributed training stopped: rank {rank} failed (exit {failure.exitcode}); "
            "its error is above"
        ) from None
