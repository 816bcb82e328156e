"""``folder``: your own images, one folder per class.

``DIR/train/<class>/<images>``, and optionally ``DIR/val/<class>/…`` and
``DIR/test/<class>/…`` with the same class folders. Class names are the folder
names, sorted; they are the labels' order, and they travel in the resolved config
(``data.classes``), the checkpoint and every export, so ``predict`` names them.
Without ``val/`` a fixed, seeded 10% of ``train/`` (at most 5,000) validates, as for
the other image sets; without ``test/`` there is no test split, and ``eval`` and
the training summary say so.

**Start-up** lists file names only (suffixes :data:`~odetx.data.decode.SUFFIXES`,
hidden files skipped). What the files decide is fixed once, when the config is
resolved (:func:`settle`), from a seeded sample of :data:`SAMPLE` training images:
``data.image_size`` (the larger side of the most common size), ``data.channels``
(1 when most sampled images are grey, whatever their format stores, else 3) and
``data.mean`` / ``data.std`` (per channel); each is measured only when left unset,
and the resolved config records them, so a checkpoint alone preprocesses as its
run did. Nothing else is decoded before training.

**Items** are decoded in ``__getitem__``, so DataLoader workers (``data.num_workers``)
do the work, with :func:`odetx.data.decode.read_image` (the decoder ``predict``
uses), then augmented for training as the other image sets are (random crop
after zero padding of a 16th of the side, the ``data.randaugment`` policy, random
erasing; no mirror flips: a flipped glyph may be another class) and normalised.

**A file that does not decode** is found when it is first read: it is named once on
stderr and left out (its item is ``None``, which the loaders' collate drops), and a
flag in shared memory, seen by every worker and the main process, keeps it out of
later epochs and counts it for ``summary.json``. Listing-time checks would need
every file opened, which a folder of 100k images cannot afford at start-up. Under
``data.strict`` the first such file stops the run instead (one line, exit code 2).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from odetx.data.augment import random_erasing
from odetx.data.base import DataInfo, Splits
from odetx.data.decode import SUFFIXES, decode, is_grey, luma, read_file, read_image
from odetx.data.images import SPLIT_SEED, augmentation, validation_split
from odetx.errors import ConfigError, DataError, DataInputError

SAMPLE = 256  # training images decoded when the config is resolved, for size, mode and statistics
MAX_SIDE = 4096
LAYOUT = "DIR/train/<class>/<images> (and optionally val/ and test/ alike)"
FOLDER_KEYS = ("image_size", "channels", "classes", "mean", "std")


@dataclass(frozen=True)
class Listing:
    """The image files of one split folder: paths relative to it, and their labels."""

    folder: Path
    classes: tuple[str, ...]
    paths: np.ndarray  # bytes (os.fsencode): no Python object per file, so forked workers share it
    labels: np.ndarray  # int64, index into ``classes``


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _images_below(folder: Path) -> list[str]:
    """Image files under ``folder`` (any depth), relative to it, sorted."""
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _visible(d)]
        rel = os.path.relpath(top, folder)
        for f in files:
            if _visible(f) and os.path.splitext(f)[1].lower() in SUFFIXES:
                found.append(f if rel == "." else os.path.join(rel, f))
    return sorted(found)


def list_split(folder: Path) -> Listing:
    """Every class folder of ``folder`` and the images in it.

    Raises:
        DataInputError: no class folder, or a class folder with no images.
    """
    try:
        classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and _visible(e.name))
    except OSError as e:
        raise DataInputError(f"{folder} cannot be read ({e.strerror or e})") from None
    if not classes:
        raise DataInputError(f"{folder} holds no class folders; expected {LAYOUT}")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = _images_below(folder / name)
        if not files:
            raise DataInputError(
                f"{folder / name} holds no images ({', '.join(SUFFIXES)}); every class "
                "folder needs at least one"
            )
        paths += [os.path.join(name, f) for f in files]
        labels += [label] * len(files)
    encoded = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
    return Listing(folder, tuple(classes), encoded, np.array(labels, dtype=np.int64))


def data_root(cfg) -> Path:
    if cfg.root is None:
        raise DataInputError(f"the folder dataset reads your images: pass --data-dir ({LAYOUT})")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataInputError(f"{root}: no such folder ({LAYOUT})")
    if not (root / "train").is_dir():
        raise DataInputError(f"{root} has no train/ folder; expected {LAYOUT}")
    return root


def scan(root: Path) -> dict[str, Listing | None]:
    """The listing of each split folder ``root`` holds (``None`` for an absent val/ or test/).

    Raises:
        DataInputError: a bad layout (see :func:`list_split`), fewer than two classes, or
            val/ or test/ with other class folders than train/.
    """
    out: dict[str, Listing | None] = {"train": list_split(root / "train")}
    classes = out["train"].classes
    if len(classes) < 2:
        raise DataInputError(
            f"{root / 'train'} has one class folder ({classes[0]}); a classifier needs two or more"
        )
    for split in ("val", "test"):
        out[split] = list_split(root / split) if (root / split).is_dir() else None
        if out[split] is not None and out[split].classes != classes:
            theirs = set(out[split].classes)
            lacks = ", ".join(c for c in classes if c not in theirs)
            extra = ", ".join(c for c in out[split].classes if c not in set(classes))
            parts = [f"lacks {lacks}" if lacks else "", f"adds {extra}" if extra else ""]
            raise DataInputError(
                f"{root / split} has other class folders than {root / 'train'}: it "
                f"{' and '.join(p for p in parts if p)}"
            )
    return out


# ---------------------------------------------------------------- settling the config


def check_keys(cfg) -> None:
    """Refuse the folder-only keys on other datasets, and folder values out of range."""
    if cfg.name != "folder":
        for key in FOLDER_KEYS:
            if getattr(cfg, key):
                raise ConfigError(f"data.{key}", f"applies to the folder dataset, not {cfg.name}")
        return
    if not 0 <= cfg.image_size <= MAX_SIDE:
        raise ConfigError("data.image_size", f"must lie in 1..{MAX_SIDE} (0: from the images)")
    if cfg.channels not in (0, 1, 3):
        raise ConfigError("data.channels", f"must be 1 (grey) or 3 (RGB), got {cfg.channels}")
    if cfg.classes and (len(set(cfg.classes)) != len(cfg.classes) or len(cfg.classes) < 2):
        raise ConfigError("data.classes", "must name two or more distinct classes")
    for key in ("mean", "std"):
        values = getattr(cfg, key)
        if values and cfg.channels and len(values) != cfg.channels:
            raise ConfigError(
                f"data.{key}", f"has {len(values)} values for {cfg.channels} channel(s)"
            )
        if not all(math.isfinite(v) and (key == "mean" or v > 0) for v in values):
            what = "finite numbers" if key == "mean" else "positive finite numbers"
            raise ConfigError(f"data.{key}", f"must be {what}, got {list(values)}")


def settled(cfg) -> bool:
    return all(getattr(cfg, key) for key in FOLDER_KEYS)


def _sample(listing: Listing, has_val: bool) -> np.ndarray:
    """A seeded sample of up to :data:`SAMPLE` training-split files (carved val excluded)."""
    index = np.arange(len(listing.labels))
    if not has_val:
        index = validation_split(len(index))[0]
    rng = np.random.default_rng(SPLIT_SEED)
    return np.sort(rng.choice(index, size=min(SAMPLE, len(index)), replace=False))


def measure(listing: Listing, pick: np.ndarray, cfg) -> dict:
    """The keys ``cfg`` leaves unset, from the images ``pick`` selects (decoded in full colour;
    statistics at their own size, each image weighing the same)."""
    sizes: Counter[tuple[int, int]] = Counter()
    grey = decoded = 0
    colour, plain = np.zeros((2, 3)), np.zeros((2, 1))  # per-image E[x] and E[x^2], summed
    for j in pick:
        path = listing.folder / os.fsdecode(listing.paths[j])
        try:
            x = decode(read_file(path), 3)
        except DataError as e:
            if cfg.strict:
                raise DataInputError(f"{path}: {e} (data.strict)") from None
            continue  # named when training first reads it
        decoded += 1
        sizes[tuple(x.shape[1:])] += 1
        grey += is_grey(x)
        for sums, y in ((colour, x), (plain, luma(x))):
            y = y.double().flatten(1)
            sums += torch.stack([y.mean(1), (y * y).mean(1)]).numpy()
    if not decoded:
        raise DataInputError(f"none of the {len(pick)} images sampled in {listing.folder} decodes")
    channels = cfg.channels or (1 if 2 * grey > decoded else 3)  # a tie keeps colour
    sums = (plain if channels == 1 else colour) / decoded
    mean = sums[0]
    std = np.sqrt(np.maximum(sums[1] - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)  # a constant channel: leave its scale alone
    height, width = sizes.most_common(1)[0][0]
    return {
        "image_size": cfg.image_size or max(height, width),
        "channels": channels,
        "mean": cfg.mean or tuple(round(float(v), 6) for v in mean),
        "std": cfg.std or tuple(round(float(v), 6) for v in std),
    }


def settle(cfg):
    """``cfg`` with the class names, image size, channels and statistics the files decide
    (each only where unset); a settled config is returned as it is, reading nothing.

    Raises:
        ConfigError: a folder key out of range.
        DataInputError: a missing or badly laid out folder, or classes that differ from
            ``data.classes``.
    """
    check_keys(cfg)
    if settled(cfg):
        return cfg
    root = data_root(cfg)
    splits = scan(root)
    train = splits["train"]
    if cfg.classes and tuple(cfg.classes) != train.classes:
        raise DataInputError(_other_classes(root, train.classes, cfg.classes))
    out = dataclasses.replace(cfg, classes=train.classes)
    if not (cfg.image_size and cfg.channels and cfg.mean and cfg.std):
        found = measure(train, _sample(train, splits["val"] is not None), cfg)
        out = dataclasses.replace(out, **found)
    check_keys(out)
    return out


def _other_classes(root: Path, found: tuple[str, ...], expected) -> str:
    return (
        f"{root / 'train'} has the class folders {', '.join(found)}; the model's classes are "
        f"{', '.join(expected)}"
    )


def info(cfg) -> DataInfo:
    if not settled(cfg):
        cfg = settle(cfg)
    return DataInfo(
        kind="image",
        num_classes=len(cfg.classes),
        image_size=cfg.image_size,
        in_chans=cfg.channels,
        classes=tuple(cfg.classes),
    )


# ---------------------------------------------------------------- reading


class Files:
    """One split folder's files, shared by the datasets that index it (train and the val
    carved from it), with a flag per file that does not decode, in shared memory."""

    def __init__(self, listing: Listing) -> None:
        self.folder, self.paths, self.labels = listing.folder, listing.paths, listing.labels
        self.failed = torch.zeros(len(self.paths), dtype=torch.uint8).share_memory_()

    def path(self, j: int) -> Path:
        return self.folder / os.fsdecode(self.paths[j])

    def undecodable(self) -> list[str]:
        return [str(self.path(int(j))) for j in torch.nonzero(self.failed).flatten()]


def crop_padding(size: int) -> int:
    """Zero padding before the random crop: a 16th of the side, rounded up (2 px at 28)."""
    return -(-size // 16)


class FolderImages(Dataset):
    """Items ``(normalised float image (C, S, S), label)`` decoded from ``files`` on demand;
    ``None`` for a file that does not decode (see the module's docstring)."""

    def __init__(self, files: Files, index: np.ndarray, cfg, augment: bool) -> None:
        self.files, self.index = files, index
        self.size, self.channels, self.strict = cfg.image_size, cfg.channels, cfg.strict
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(cfg.std, dtype=torch.float32).view(-1, 1, 1)
        pad = crop_padding(self.size)
        self.augment = augmentation(self.size, pad, False, cfg.randaugment) if augment else None
        self.erase = random_erasing(cfg.random_erasing) if augment else None

    def __len__(self) -> int:
        return len(self.index)

    def undecodable(self) -> list[str]:
        """Files of this split's folder found not to decode so far (by any process)."""
        return self.files.undecodable()

    def __getitem__(self, i: int) -> tuple[Tensor, int] | None:
        j = int(self.index[i])
        if self.files.failed[j]:
            return None
        path = self.files.path(j)
        try:
            x = read_image(path, self.channels, self.size)
        except DataError as e:
            if self.strict:
                raise DataInputError(
                    f"{path}: {e} (data.strict: remove the file, or set data.strict=false "
                    "to leave such files out)"
                ) from None
            self.files.failed[j] = 1
            print(f"warning: {path}: {e}; left out", file=sys.stderr, flush=True)
            return None
        if self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean) / self.std
        if self.erase is not None:
            x = self.erase(x)
        return x, int(self.files.labels[j])


def load(cfg) -> Splits:
    """The splits of the folder ``data.root``; its classes must be the config's."""
    cfg = settle(cfg)
    root = data_root(cfg)
    splits = scan(root)
    if splits["train"].classes != tuple(cfg.classes):
        raise DataInputError(_other_classes(root, splits["train"].classes, cfg.classes))
    train_files = Files(splits["train"])
    if splits["val"] is None:
        train_idx, val_idx = validation_split(len(train_files.paths))
        val = FolderImages(train_files, val_idx, cfg, augment=False)
    else:
        train_idx = np.arange(len(train_files.paths))
        val_files = Files(splits["val"])
        val = FolderImages(val_files, np.arange(len(val_files.paths)), cfg, augment=False)
    train = FolderImages(train_files, train_idx, cfg, augment=cfg.augment)
    if splits["test"] is None:
        missing = (
            f"there is no test split: {root} has no test/ folder (evaluate --split val, or "
            "give --data-dir a folder that holds test/<class>/ images)"
        )
        return Splits(train, val, None, missing)
    test_files = Files(splits["test"])
    test = FolderImages(test_files, np.arange(len(test_files.paths)), cfg, augment=False)
    return Splits(train, val, test)
