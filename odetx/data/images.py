"""Image datasets in torchvision's on-disk layout: MNIST, Fashion-MNIST, CIFAR-10/100.

Files are read from ``data.root`` (``--data-dir``, default ``./data``) where
``torchvision.datasets`` would put them, and fetched with torchvision only when
``data.download`` (``--download``) is set. The validation split is carved from
the official training set with a fixed seed; the test split is the official
test set. Training augmentation is the usual small-image recipe (random crop
after zero padding, He et al. 2016; mirror flips for the CIFARs only, as a
flipped digit is another glyph or none), optionally followed by a RandAugment or
TrivialAugment policy and random erasing (:mod:`odetx.data.augment`); it never
touches val or test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from odetx.data.augment import parse_policy, policy_transform, random_erasing
from odetx.data.base import DataInfo, Splits
from odetx.data.image_files import existing, read_cifar_batches, read_idx_pair
from odetx.errors import ConfigError, DataError
from odetx.registry import Registry

DEFAULT_ROOT = "data"  # torchvision's customary root, relative to the working directory
SPLIT_SEED = 0  # fixed so every run, whatever its train.seed, validates on the same images
VAL_FRACTION, VAL_CAP = 0.1, 5_000  # 5,000 of 60,000 (MNIST) or 50,000 (CIFAR) training images

Reader = Callable[[Path, tuple[str, ...]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ImageSpec:
    """One image dataset: where its files live, how to read them, how to normalise.

    Args:
        folder: under ``data.root``, as ``torchvision.datasets`` lays it out.
        read: ``(folder, files) -> (uint8 images (N, C, H, W), int64 labels (N,))``.
        mean, std: per-channel statistics of the training images in [0, 1].
        crop_padding: zero padding before the random crop back to full size.
        torchvision_class: the ``torchvision.datasets`` class that downloads the files.
    """

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    read: Reader
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    crop_padding: int
    torchvision_class: str
    description: str
    source: str


IMAGE_DATASETS: Registry[ImageSpec] = Registry("image dataset")


def _idx(folder: Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    return read_idx_pair(folder, *files)


def _mnist_family(name: str, folder: str, mean: float, std: float, **text: str) -> ImageSpec:
    return ImageSpec(
        name,
        f"{folder}/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        _idx,
        10,
        1,
        28,
        (mean,),
        (std,),
        flip=False,
        crop_padding=2,
        torchvision_class=folder,
        **text,
    )


# Statistics: MNIST's are the ones the PyTorch examples use; the others are the
# per-channel mean and standard deviation over each official training set.
IMAGE_DATASETS.register(
    "mnist",
    _mnist_family(
        "mnist",
        "MNIST",
        0.1307,
        0.3081,
        description="MNIST handwritten digits (LeCun et al. 1998), 28x28 grey, 60k/10k, 10 classes",
        source="torchvision layout: ROOT/MNIST/raw/ (IDX files, .gz accepted)",
    ),
)
IMAGE_DATASETS.register(
    "fashion-mnist",
    _mnist_family(
        "fashion-mnist",
        "FashionMNIST",
        0.2860,
        0.3530,
        description="Fashion-MNIST clothing (Xiao et al. 2017), 28x28 grey, 60k/10k, 10 classes",
        source="torchvision layout: ROOT/FashionMNIST/raw/ (IDX files, .gz accepted)",
    ),
)
IMAGE_DATASETS.register(
    "cifar10",
    ImageSpec(
        "cifar10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        functools.partial(read_cifar_batches, label_key="labels", num_classes=10),
        10,
        3,
        32,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        flip=True,
        crop_padding=4,
        torchvision_class="CIFAR10",
        description="CIFAR-10 (Krizhevsky 2009), 32x32 colour, 50k/10k, 10 classes",
        source="torchvision layout: ROOT/cifar-10-batches-py/ (python batches)",
    ),
)
IMAGE_DATASETS.register(
    "cifar100",
    ImageSpec(
        "cifar100",
        "cifar-100-python",
        ("train",),
        ("test",),
        functools.partial(read_cifar_batches, label_key="fine_labels", num_classes=100),
        100,
        3,
        32,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        flip=True,
        crop_padding=4,
        torchvision_class="CIFAR100",
        description="CIFAR-100 (Krizhevsky 2009), 32x32 colour, 50k/10k, 100 fine classes",
        source="torchvision layout: ROOT/cifar-100-python/ (python batches)",
    ),
)


def info(spec: ImageSpec, cfg=None) -> DataInfo:
    return DataInfo(
        kind="image",
        num_classes=spec.num_classes,
        image_size=spec.image_size,
        in_chans=spec.in_chans,
    )


def train_augmentation(spec: ImageSpec, policy: str = "off") -> Callable[[Tensor], Tensor]:
    """:func:`augmentation` with ``spec``'s size, padding and flips, on uint8 pixels."""
    return augmentation(spec.image_size, spec.crop_padding, spec.flip, policy)


def augmentation(
    size: int, padding: int, flip: bool, policy: str = "off"
) -> Callable[[Tensor], Tensor]:
    """Random crop of the zero-padded image (and a mirror flip where it keeps the class),
    then the ``data.randaugment`` policy; ``(C, size, size)`` pixels, uint8 or float in [0, 1]."""
    from torchvision.transforms import v2

    steps = [v2.RandomCrop(size, padding=padding)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    chosen = policy_transform(policy)
    if chosen is not None:
        steps.append(chosen)
    return v2.Compose(steps)


class ImageDataset(Dataset):
    """Items ``(normalised float image (C, H, W), label)`` from a shared uint8 array.

    Splits index one array rather than copying it (CIFAR's training set is
    150 MB as uint8, four times that as float).
    """

    def __init__(
        self,
        spec: ImageSpec,
        images: Tensor,
        labels: Tensor,
        index: Tensor,
        augment: bool,
        policy: str = "off",
        erasing: float = 0.0,
    ) -> None:
        self.images, self.labels, self.index = images, labels, index
        self.augment = train_augmentation(spec, policy) if augment else None
        # Erasing fills its box with noise of the normalised pixels' scale, so it runs last.
        self.erase = random_erasing(erasing) if augment else None
        self.mean = torch.tensor(spec.mean).view(-1, 1, 1)
        self.std = torch.tensor(spec.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = self.index[i]
        x = self.images[j]  # (C, H, W) uint8
        if self.augment is not None:
            x = self.augment(x)
        x = (x.float() / 255.0 - self.mean) / self.std
        if self.erase is not None:
            x = self.erase(x)
        return x, self.labels[j]


def validation_split(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` of a training set of ``n``: a seeded permutation cut at
    10% (at most 5,000) for validation; both sorted."""
    n_val = min(VAL_CAP, max(1, round(n * VAL_FRACTION)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def missing_files(spec: ImageSpec, root: Path) -> list[str]:
    folder = root / spec.folder
    return [name for name in spec.train_files + spec.test_files if existing(folder, name) is None]


def fetch(spec: ImageSpec, root: Path) -> None:
    """Download with torchvision (train and test files alike) into ``root``."""
    import torchvision.datasets as tvd

    try:
        getattr(tvd, spec.torchvision_class)(str(root), train=True, download=True)
    except Exception as e:  # network, disk and checksum failures all surface differently
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{spec.name}: download into {root} failed ({first})") from None


def load(spec: ImageSpec, cfg) -> Splits:
    """Read (downloading first if asked and needed) and split ``spec``'s files."""
    root = Path(cfg.root if cfg.root is not None else DEFAULT_ROOT)
    if missing_files(spec, root) and cfg.download:
        fetch(spec, root)
    missing = missing_files(spec, root)
    if missing:
        raise DataError(
            f"{spec.name}: {', '.join(missing)} not found in {root / spec.folder}; pass "
            f"--download to fetch them, or point --data-dir at the folder that holds "
            f"{spec.folder}/"
        )
    folder = root / spec.folder
    parts = [spec.read(folder, files) for files in (spec.train_files, spec.test_files)]
    shape = (spec.in_chans, spec.image_size, spec.image_size)
    for (images, labels), files in zip(parts, (spec.train_files, spec.test_files), strict=True):
        if len(labels) == 0 or images.shape[1:] != shape:
            raise DataError(
                f"{folder}: {len(labels)} images of shape {images.shape[1:]} in "
                f"{', '.join(files)}, expected {shape} for {spec.name}"
            )
        if labels.min() < 0 or labels.max() >= spec.num_classes:
            raise DataError(
                f"{folder}: labels outside 0..{spec.num_classes - 1} in {', '.join(files)}"
            )
    # np.array copies: IDX arrays are read-only views of the file's bytes.
    (train_x, train_y), (test_x, test_y) = (
        (torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))) for x, y in parts
    )
    train_idx, val_idx = (torch.from_numpy(i) for i in validation_split(len(train_y)))
    return Splits(
        ImageDataset(
            spec,
            train_x,
            train_y,
            train_idx,
            cfg.augment,
            cfg.randaugment,
            cfg.random_erasing,
        ),
        ImageDataset(spec, train_x, train_y, val_idx, augment=False),
        ImageDataset(spec, test_x, test_y, torch.arange(len(test_y)), augment=False),
    )


def check_augmentation(cfg) -> None:
    """Refuse a ``data.randaugment`` policy or ``data.random_erasing`` that cannot apply:
    an unknown policy, or a dataset that is not one of these image sets (digits are never
    augmented; token ids have no pixels)."""
    parse_policy(cfg.randaugment)
    asked = [
        key
        for key, on in (
            ("data.randaugment", cfg.randaugment != "off"),
            ("data.random_erasing", cfg.random_erasing > 0),
        )
        if on
    ]
    augmented = [*IMAGE_DATASETS.names(), "folder"]  # image folders reuse this augmentation
    if asked and cfg.name not in augmented:
        raise ConfigError(
            asked[0],
            f"applies to the image datasets read from files ({', '.join(augmented)}), "
            f"not {cfg.name}",
        )
