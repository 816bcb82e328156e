"""Dataset registry: later datasets plug in by name."""

import functools

from odetx.data import digits, folder, images, listops, parity, text, tokens
from odetx.data.base import SPLITS, DataInfo, DatasetEntry, Splits, check_split
from odetx.registry import Registry

DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    return DATASETS.register(entry.name, entry)


register_dataset(
    DatasetEntry(
        "digits",
        "image",
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
            "image",
            functools.partial(images.info, _spec),
            functools.partial(images.load, _spec),
            _spec.description,
            _spec.source,
            download=True,
        )
    )
register_dataset(
    DatasetEntry(
        "folder",
        "image",
        folder.info,
        folder.load,
        "your images, one folder per class (PNG, JPEG, GIF, WebP; any size, grey or colour)",
        "--data-dir DIR with train/<class>/ images, and optionally val/ and test/ alike",
        settle=folder.settle,
    )
)
register_dataset(
    DatasetEntry(
        "listops",
        "tokens",
        listops.info,
        listops.load,
        "ListOps nested MIN/MAX/MED/SM expressions (LRA, Tay et al. 2021), 10 classes",
        "--data-dir with LRA's basic_{train,val,test}.tsv, else generated offline from data.seed",
        settle=listops.settle,
    )
)
register_dataset(
    DatasetEntry(
        "parity",
        "tokens",
        parity.info,
        parity.load,
        "parity of variable-length bit strings, 2 classes",
        "generated offline from data.seed",
    )
)

register_dataset(
    DatasetEntry(
        "text",
        "text",
        text.files_info,
        text.files_load,
        "your UTF-8 text for language modelling (bytes, memory-mapped; or characters)",
        "--data-dir with train.txt, val.txt, test.txt, or input.txt split 90/5/5",
    )
)
register_dataset(
    DatasetEntry(
        "tokens",
        "text",
        tokens.info,
        tokens.load,
        "a corpus tokenised by odetx data text (byte, char, BPE, tokenizer.json, tiktoken)",
        "--data-dir with the folder odetx data text wrote (memory-mapped token files)",
    )
)
register_dataset(
    DatasetEntry(
        "pydoc-topics",
        "text",
        text.pydoc_info,
        text.pydoc_load,
        "CPython's pydoc reference text (~465 kB of English) for language modelling",
        "shipped with Python as pydoc_data.topics (PSF License); split 90/5/5",
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
