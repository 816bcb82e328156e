"""Atomic file writes: the one way odetx puts a file in place.

Every artefact (checkpoint, metrics, config, summary, export) is written to a
hidden temporary file beside its destination, flushed to disk, and renamed over
it, so a reader or a crash never sees half a file. On any failure the temporary
file is removed and the destination keeps its previous content.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); ``mkstemp`` makes
    its files private, so atomically written files are set to this before the rename."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[tuple[IO, Path]]:
    """Yield ``(file, temporary path)``; on a clean exit the file replaces ``path``.

    The body may read the temporary file back (after ``file.flush()``) to check it
    before it is committed; raising anything leaves ``path`` untouched.

    Args:
        path: the destination.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8, universal newlines off).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
        with os.fdopen(fd, mode, **text) as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``."""
    with atomic_write(path, "w") as (f, _):
        f.write(text)


def remove_stale_temps(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left for ``names`` in ``folder``
    when a process died mid-write; call it only where no other writer can be at work."""
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
