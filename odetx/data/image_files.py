"""Readers for the on-disk formats torchvision downloads: IDX (MNIST family) and CIFAR batches.

odetx reads the files itself rather than through ``torchvision.datasets``, which
checks each CIFAR batch against the MD5 of the official release and so refuses
any other set written in the same format (a subset, a re-export, test data).
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odetx.errors import DataError

_IDX_UBYTE = 0x08  # the only element type MNIST and Fashion-MNIST use
_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_IDX_MAX_DIMS = 3  # images (N, H, W) and labels (N,)
PIXELS = 3 * 32 * 32  # one CIFAR image: three 32x32 colour planes


def existing(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its ``.gz`` (the form the MNIST mirrors serve), whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _detail(e: BaseException, limit: int = 120) -> str:
    """An exception as a short single line: its message, or its type when it has none."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The largest file of the image sets read here (MNIST's training images) is 47 MB.
MAX_DECOMPRESSED = 4 << 30


def _file_bytes(path: Path) -> bytes:
    """The bytes of ``path``, decompressed if it ends in ``.gz``; a DataError if either fails."""
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            data = f.read(MAX_DECOMPRESSED + 1)
        if len(data) > MAX_DECOMPRESSED:  # no image set here is near it: a gzip bomb
            raise DataError(f"{path} decompresses to more than {MAX_DECOMPRESSED >> 30} GiB")
        return data
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path} is not a readable gzip file ({_detail(e)})") from None
    except OSError as e:
        raise DataError(f"{path} cannot be read ({_detail(e)})") from None


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array (LeCun et al., the MNIST file format).

    The header is two zero bytes, the element type, the number of dimensions,
    then each dimension as a big-endian 32-bit integer; the data follows. The
    magic number of an images file is thus 2051 (3 dims) and of labels 2049.
    Anything else (another element type, a size the header does not account for,
    a corrupt ``.gz``) is a :class:`DataError` naming the file.
    """
    raw = _file_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != _IDX_UBYTE:
        kind = _IDX_TYPES.get(raw[2], "unknown")
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (element type 0x{raw[2]:02x}, {kind}; "
            f"MNIST files use 0x{_IDX_UBYTE:02x})"
        )
    ndim = raw[3]
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise DataError(
            f"{path} is not an MNIST-style IDX file: it declares {ndim} dimensions "
            "(images have 3, labels 1)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated or corrupt: the header itself is cut short")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = math.prod(shape)  # Python ints: dimensions up to 2**32 - 1 cannot overflow
    if len(raw) != header + size:
        raise DataError(
            f"{path} is truncated or corrupt: the header says {shape}, {size:,} bytes of "
            f"data, and the file holds {len(raw) - header:,}"
        )
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


def _plain_dtype(*args):
    """``numpy.dtype(*args)``, refusing dtypes that hold Python objects."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("refusing an array of Python objects")
    return dtype


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays of numbers only.

    A pickle can run any code on load; a dataset file should never need to. The
    CIFAR batches hold a dict of bytes, lists and one uint8 array, so everything
    else is refused (the same stance as ``torch.load(weights_only=True)``), arrays
    of Python objects included.
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
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved it
        return super().find_class(module, name)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _load_batch(path: Path) -> dict:
    """The pickled dict in ``path`` (keys as str), or a DataError saying why not."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # hostile bytes can make the unpickler raise anything at all
        raise DataError(f"{path} is not a readable CIFAR batch ({_detail(e)})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds {_describe(batch)}, not a CIFAR batch (a dict)")
    # Batches pickled by Python 2 (the release) and by Python 3 differ in key type.
    return {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _batch_pixels(path: Path, data: object) -> np.ndarray:
    """``data`` as ``(n, 3, 32, 32)`` uint8, or a DataError naming the file."""
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu":
        raise DataError(f"{path}: 'data' is {_describe(data)}, expected a uint8 array")
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(
            f"{path}: 'data' has shape {data.shape}, expected (n, {PIXELS}) (rows of "
            "three 32x32 colour planes)"
        )
    if data.dtype != np.uint8 and data.size and (data.min() < 0 or data.max() > 255):
        raise DataError(f"{path}: 'data' holds values outside 0..255")
    return data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)


def _batch_labels(path: Path, labels: object, key: str, num_classes: int | None) -> np.ndarray:
    """``labels`` (a list of ints or a 1-D integer array) as int64, or a DataError."""
    top = num_classes if num_classes is not None else 2**31
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    elif isinstance(labels, (list, tuple)):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
    else:
        ok = False
    if not ok:
        raise DataError(f"{path}: {key!r} is {_describe(labels)}, expected a list of integers")
    low, high = (labels.min(), labels.max()) if isinstance(labels, np.ndarray) else (0, 0)
    if isinstance(labels, (list, tuple)) and labels:
        low, high = min(labels), max(labels)
    if len(labels) and (low < 0 or high >= top):
        raise DataError(f"{path}: {key!r} holds labels outside 0..{top - 1}")
    return np.asarray(labels, dtype=np.int64)


def read_cifar_batches(
    folder: Path, names: Sequence[str], label_key: str, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels from CIFAR python batches (Krizhevsky 2009).

    Each batch is a pickled dict with ``data``, an ``(n, 3072)`` uint8 array whose
    rows hold the red, green and blue 32x32 planes in turn, and the labels under
    ``label_key`` (``labels`` for CIFAR-10, ``fine_labels`` for CIFAR-100), each
    below ``num_classes`` when given. A file of any other structure is a
    :class:`DataError` naming it.
    """
    xs, ys = [], []
    for name in names:
        path = existing(folder, name)
        if path is None:
            raise DataError(f"{folder / name} not found")
        batch = _load_batch(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path} lacks the 'data' or {label_key!r} entry of a CIFAR batch")
        data = _batch_pixels(path, batch["data"])
        labels = _batch_labels(path, batch[label_key], label_key, num_classes)
        if len(data) != len(labels):
            raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
        xs.append(data)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)
