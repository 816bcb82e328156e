"""Readers for the on-disk formats torchvision downloads: IDX (MNIST family) and CIFAR batches.

odetx reads the files itself rather than through ``torchvision.datasets``, which
checks each CIFAR batch against the MD5 of the official release and so refuses
any other set written in the same format (a subset, a re-export, test data).
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odetx.errors import DataError

_IDX_UBYTE = 0x08  # the only element type MNIST and Fashion-MNIST use


def existing(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its ``.gz`` (the form the MNIST mirrors serve), whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (LeCun et al., the MNIST file format).

    The header is two zero bytes, the element type, the number of dimensions,
    then each dimension as a big-endian 32-bit integer; the data follows. The
    magic number of an images file is thus 2051 (3 dims) and of labels 2049.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] == 0:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated or corrupt: the header itself is cut short")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path} is truncated or corrupt: header says {shape}, size disagrees")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_pair(folder: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 1, H, W)`` uint8 and labels ``(N,)`` int64 from two IDX files."""
    paths = [existing(folder, name) for name in (images, labels)]
    if None in paths:
        raise DataError(f"{folder} lacks {images} or {labels}")
    x, y = (read_idx(p) for p in paths)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{folder}: {images} {x.shape} and {labels} {y.shape} do not pair up")
    return x[:, None], y.astype(np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only.

    A pickle can run any code on load; a dataset file should never need to. The
    CIFAR batches hold a dict of bytes, lists and one uint8 array, so everything
    else is refused (the same stance as ``torch.load(weights_only=True)``).
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # arrays pickled by numpy < 2 (the release)
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved it
        return super().find_class(module, name)


def read_cifar_batches(
    folder: Path, names: Sequence[str], label_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels from CIFAR python batches (Krizhevsky 2009).

    Each batch is a pickled dict with ``data``, an ``(n, 3072)`` uint8 array whose
    rows hold the red, green and blue 32x32 planes in turn, and the labels under
    ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100).
    """
    xs, ys = [], []
    for name in names:
        path = existing(folder, name)
        if path is None:
            raise DataError(f"{folder / name} not found")
        try:
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError) as e:
            raise DataError(f"{path} is not a readable CIFAR batch ({e})") from None
        # Batches pickled by Python 2 (the release) and by Python 3 differ in key type.
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path} lacks the 'data' or {label_key!r} entry of a CIFAR batch")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise DataError(
                f"{path}: data {data.shape} and {len(labels)} labels are not CIFAR-shaped"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)
