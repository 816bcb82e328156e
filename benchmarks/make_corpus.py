"""Write a large UTF-8 corpus offline, for the text-at-scale benchmarks.

Real text that every Python install has: CPython's pydoc topics and the Python
sources of the standard library and of the installed packages (English prose,
docstrings and code; at most ``POOL_BYTES`` of them), their paragraphs shuffled with a
seed and repeated until the size asked for, written in the ``text`` layout (one
``input.txt``, split 90/5/5 by odetx).

    python benchmarks/make_corpus.py --mb 300 --out /tmp/corpus300
"""

from __future__ import annotations

import argparse
import random
import sysconfig
from pathlib import Path
from pydoc_data.topics import topics

POOL_BYTES = 200_000_000  # distinct text: a corpus larger than this repeats it, shuffled


def paragraphs() -> list[str]:
    out = [p for k in sorted(topics) for p in topics[k].split("\n\n") if p.strip()]
    size = sum(len(p) for p in out)
    paths = sysconfig.get_paths()
    for root in (paths["stdlib"], paths["purelib"]):
        for path in sorted(Path(root).rglob("*.py")):
            try:
                text = path.read_text("utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out.extend(p for p in text.split("\n\n") if p.strip())
            size += len(text)
            if size > POOL_BYTES:
                return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, required=True, help="size in MB (10^6 bytes)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pool = paragraphs()
    rng = random.Random(args.seed)
    target = int(args.mb * 1e6)
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    with (args.out / "input.txt").open("w", encoding="utf-8") as f:
        while written < target:
            rng.shuffle(pool)
            for p in pool:
                data = p + "\n\n"
                f.write(data)
                written += len(data.encode("utf-8"))
                if written >= target:
                    break
    print(f"wrote {args.out / 'input.txt'}: {written:,} bytes from {len(pool):,} paragraphs")


if __name__ == "__main__":
    main()
