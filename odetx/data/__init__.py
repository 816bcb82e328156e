"""Dataset registry: later datasets plug in by name."""

from odetx.data import digits
from odetx.data.base import DataInfo, DatasetEntry, Splits
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

__all__ = ["DATASETS", "DataInfo", "DatasetEntry", "Splits", "register_dataset"]
