"""An OS lock on a run directory: one writer at a time, and never a stale lock.

``flock`` belongs to the open file, so the kernel drops it when the process ends,
however it ends (kill -9, power loss of the process, a crash): nothing to clean up.
The file records who holds it, for the message the next process prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import datetime
from pathlib import Path

from odetx.errors import OdetxError

LOCK_NAME = ".odetx.lock"


class RunInUse(OdetxError):
    """Another process writes this run directory."""


class RunLock:
    """``with RunLock(folder): …`` holds the folder's lock or raises :class:`RunInUse`."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunInUse(
                f"{self.path.parent} is in use by {holder}; wait for it to finish or "
                "choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.now().isoformat(timespec="seconds")
        os.write(fd, f"odetx pid {os.getpid()} on {socket.gethostname()} since {started}".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None
