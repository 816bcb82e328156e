"""The digits split sizes, counted by hand from the class sizes, and as the docs state them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from odetx.data.digits import read_raw, stratified_split

ROOT = Path(__file__).resolve().parents[1]
# Images per class in the UCI 8x8 set; per class round(20 %) go to test, round(10 %) to val.
CLASS_SIZES = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
TEST = [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
VAL = [18, 18, 18, 18, 18, 18, 18, 18, 17, 18]


def test_the_split_has_the_hand_counted_sizes_and_the_docs_say_them():
    _, labels = read_raw()
    assert np.bincount(labels).tolist() == CLASS_SIZES
    idx = stratified_split(labels)
    sizes = {k: len(v) for k, v in idx.items()}
    assert sizes == {"train": 1797 - sum(TEST) - sum(VAL), "val": sum(VAL), "test": sum(TEST)}
    stated = f"{sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,}"
    assert stated == "1,259 / 179 / 359"
    for doc in ("README.md", "docs/results.md", "docs/results.template.md"):
        assert stated in (ROOT / doc).read_text(), doc
