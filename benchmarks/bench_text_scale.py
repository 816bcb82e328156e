"""Memory and time to the first training step against corpus size, and the cost of
preparing a corpus with BPE against ``tokenizers``' own batch encoding (the floor).

    python benchmarks/bench_text_scale.py --sizes 30,300,2000 --work /tmp/scale
    python benchmarks/bench_text_scale.py --sizes 300 --prepare bpe --work /tmp/scale

Each measurement is a fresh process (``--child``): ``odetx train -c configs/lm.yaml
--dataset text|tokens --data-dir DIR --epochs 1 --set data.train_windows=64``, timed
from the process's start to the end of its first optimiser step; peak RSS is the
process's ``VmHWM``. Corpora are written by ``benchmarks/make_corpus.py``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before anything is imported: the process's start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """This process's peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's over exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_train(dataset: str, data_dir: str, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    from odetx.resolve import build_config
    from odetx.training import Trainer
    from odetx.training.reporting import NullReporter

    class FirstStep(NullReporter):
        def batch(self, done, stats):
            # The first optimiser step is done: report and stop (validating a corpus of
            # gigabytes is not what is measured).
            print(json.dumps({"first_step_s": time.perf_counter() - T0, "peak_rss_mb": rss_mb()}))
            sys.stdout.flush()
            os._exit(0)

    overrides = {
        "data.name": dataset,
        "data.root": data_dir,
        "train.epochs": 1,
        "data.train_windows": 64,
        "train.out": out,
        "train.device": "cpu",
        "train.threads": 2,
    }
    cfg = build_config(ROOT / "configs/lm.yaml", overrides)
    Trainer(cfg, out, reporter=FirstStep(), force=True).fit()


def child_floor(source: str, tokenizer_json: str) -> None:
    """tokenizers' encode_batch over the corpus's lines, read whole: the speed floor."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    text = Path(source, "input.txt").read_text("utf-8")
    start = time.perf_counter()
    lines = text.splitlines(keepends=True)
    n = 0
    for i in range(0, len(lines), 100_000):
        n += sum(
            len(e.ids)
            for e in tok.encode_batch_fast(lines[i : i + 100_000], add_special_tokens=False)
        )
    print(
        json.dumps({"encode_s": time.perf_counter() - start, "tokens": n, "peak_rss_mb": rss_mb()})
    )


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command, through GNU time."""
    start = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    rss = next(
        int(line.split()[-1]) for line in out.stderr.splitlines() if "Maximum resident" in line
    )
    return wall, rss / 1024


def train_row(args, mb: float, dataset: str, folder: Path, label: str) -> None:
    """One table row: ``--repeats`` fresh training processes on ``folder``, as ranges."""
    results = [
        run_child("train", dataset, str(folder), str(args.work / "run"))
        for _ in range(args.repeats)
    ]
    first = [r["first_step_s"] for r in results]
    rss = [r["peak_rss_mb"] for r in results]
    print(
        f"| {mb:g} MB | {label} | {min(first):.1f}–{max(first):.1f} | "
        f"{min(rss):.0f}–{max(rss):.0f} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30,300", help="corpus sizes in MB, comma-separated")
    ap.add_argument("--work", type=Path, default=Path("/tmp/odetx-scale"))
    ap.add_argument("--prepare", default="", help="also time odetx data text with this tokenizer")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        {"train": child_train, "floor": child_floor}[kind](*rest)
        return
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(f"# {cpu}, {len(os.sched_getaffinity(0))} cores, python {platform.python_version()}")
    print("| corpus | dataset | time to first step (s) | peak RSS (MB) |")
    print("|---|---|---|---|")
    for mb in [float(s) for s in args.sizes.split(",")]:
        corpus = args.work / f"corpus{mb:g}"
        if not (corpus / "input.txt").is_file():
            subprocess.run(
                [
                    sys.executable,
                    ROOT / "benchmarks/make_corpus.py",
                    "--mb",
                    str(mb),
                    "--out",
                    corpus,
                ],
                check=True,
                capture_output=True,
            )
        train_row(args, mb, "text", corpus, "text (bytes, memory-mapped)")
        if args.prepare:
            prepared = args.work / f"tokens{mb:g}-{args.prepare}"
            cmd = [
                "odetx",
                "data",
                "text",
                str(corpus),
                "--out",
                str(prepared),
                "--force",
                "--tokenizer",
                args.prepare,
                "--vocab-size",
                str(args.vocab_size),
            ]
            wall, prss = timed(cmd)
            print(
                f"|   | prepare with {args.prepare}: {wall:.0f} s wall, "
                f"peak RSS {prss:.0f} MB | | |"
            )
            if (prepared / "tokenizer.json").is_file():
                floor = run_child("floor", str(corpus), str(prepared / "tokenizer.json"))
                print(
                    f"|   | tokenizers' encode_batch alone (floor, text in memory): "
                    f"{floor['encode_s']:.0f} s, peak RSS {floor['peak_rss_mb']:.0f} MB | | |"
                )
            train_row(args, mb, "tokens", prepared, f"tokens ({args.prepare})")


if __name__ == "__main__":
    main()
