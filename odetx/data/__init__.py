"""Dataset registry: later datasets plug in by name."""

import functools

from odetx.data import digits, images, listops, parity
from odetx.data.base import SPLITS, DataInfo, DatasetEntry, Splits, check_split
from odetx.registry import Registry

DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    return DATASETS.register(entry.name, entry)


register_dataset(
    DatasetEntry(
        "digits",
        digits.info,
        digits.load,
        "UCI 8x8 handwritten digits, 1,797 images, 10 classes (embedded)",
        "embedded in the package (CC BY 4.0)",
    )
)
for _name, _spec in images.IMAGE_DATASETS.items():
    register_dataset(
        DatasetEntry(
            _name,
            functools.partial(images.info, _spec),
            functools.partial(images.load, _spec),
            _spec.description,
            _spec.source,
            download=True,
        )
    )
register_dataset(
    DatasetEntry(
        "listops",
        listops.info,
        listops.load,
        "ListOps nested MIN/MAX/MED/SM expressions (LRA, Tay et al. 2021), 10 classes",
        "--data-dir with LRA's basic_{train,val,test}.tsv, else generated offline from data.seed",
    )
)
register_dataset(
    DatasetEntry(
        "parity",
        parity.info,
        parity.load,
        "parity of variable-length bit strings, 2 classes",
        "generated offline from data.seed",
    )
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "DataInfo",
    "DatasetEntry",
    "Splits",
    "check_split",
    "register_dataset",
]
