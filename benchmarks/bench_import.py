"""Peak memory of ``odetx import`` against the size of the weights it reads.

A randomly initialised model of Pythia-410M's shape (24 layers × 1024, 16 heads,
MLP 4096, vocabulary 50,304, partial rotary 0.25, parallel residual) is saved with
``transformers`` (safetensors, float32), then imported in a fresh process whose peak
RSS (``VmHWM``) is compared with the weights' bytes and with the peak RSS of the same
process after importing torch and odetx alone. Then the imported run's logits are
compared with the source's on one batch (max relative difference).

    python benchmarks/bench_import.py --work /tmp/bench-import
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time


def hwm_mb():  # VmHWM: this process's peak RSS (unlike ru_maxrss, not inherited over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


import torch
import odetx.importers as imp
base = hwm_mb()
t = time.perf_counter()
imp.import_model(sys.argv[1], sys.argv[2], force=True)
print(json.dumps({"base_mb": base, "peak_mb": hwm_mb(), "seconds": time.perf_counter() - t}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-import"))
    ap.add_argument("--layers", type=int, default=24)
    args = ap.parse_args()
    import torch
    import transformers

    src = args.work / "pythia-410m-random"
    if not (src / "model.safetensors").is_file():
        cfg = transformers.GPTNeoXConfig(
            vocab_size=50304,
            hidden_size=1024,
            num_hidden_layers=args.layers,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=2048,
            rotary_pct=0.25,
            use_parallel_residual=True,
        )
        torch.manual_seed(0)
        transformers.GPTNeoXForCausalLM(cfg).save_pretrained(src)
    weights = sum(p.stat().st_size for p in src.glob("*.safetensors"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(src), str(args.work / "run")],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    grown = r["peak_mb"] - r["base_mb"]
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(f"# {cpu}; python {platform.python_version()}; torch {torch.__version__}")
    print(f"weights (float32 safetensors): {weights / 2**20:,.0f} MiB")
    print(f"RSS after importing torch and odetx: {r['base_mb']:,.0f} MiB")
    print(
        f"peak RSS during the import: {r['peak_mb']:,.0f} MiB "
        f"(+{grown:,.0f} MiB = {grown * 2**20 / weights:.2f}x the weights), {r['seconds']:.1f} s"
    )
    from odetx.evaluation import load_model

    ids = torch.randint(0, 50304, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = load_model(args.work / "run").model(ids)
        theirs = transformers.GPTNeoXForCausalLM.from_pretrained(src).eval()(ids).logits
    rel = float((ours - theirs).abs().max() / theirs.abs().max())
    print(f"logits vs transformers: max |difference| / max |logit| = {rel:.2e}")


if __name__ == "__main__":
    main()
