"""Language models: odetx's recipe against a plain PyTorch GPT, training and generation speed.

    OMP_NUM_THREADS=2 python benchmarks/bench_lm.py [--quick] [--repeats N]
        [--only quality throughput generate] [--config configs/lm.yaml] [--set KEY=VALUE ...]

- quality: train ``configs/lm.yaml`` through the library, take its training wall time W,
  then train a plain GPT written below for the same W seconds on the same byte-level
  pydoc-topics training split; both are scored on the same contiguous test windows
  (bits per byte). The trainings run one after another, never together.
- throughput: tokens/s of a training step (fwd + bwd + AdamW), repeats interleaved in
  one process: odetx ``sequential`` against the plain GPT, ``parallel`` and the fused
  parallel layer against ``sequential``.
- generate: tokens/s of ``odetx.evaluation.generate`` with and without the key/value
  cache, and whether both draw the same text for the same seed.

One table is printed; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odetx.config import DataConfig, ModelConfig, SolverConfig, parse_set  # noqa: E402
from odetx.data.base import IGNORE_INDEX, DataInfo  # noqa: E402
from odetx.data.text import from_texts, pydoc_topics, split_by_position  # noqa: E402
from odetx.data.windows import ContiguousWindows  # noqa: E402
from odetx.evaluation import load_model  # noqa: E402
from odetx.evaluation.generate import Generation, Sampling  # noqa: E402
from odetx.resolve import build_config, create_model  # noqa: E402
from odetx.training import Trainer  # noqa: E402

ROWS: list[tuple[str, str, str, str, str]] = []
BYTES = DataInfo(kind="text", num_classes=256, vocab_size=256, max_len=128, unit="byte")
TINY = dict(preset="gpt-tiny", dropout=0.0)  # 4 x 128, 4 heads, MLP 512, context 128


def row(section: str, case: str, value: str, ratio: str = "", target: str = "") -> None:
    ROWS.append((section, case, value, ratio, target))


def spread(values: list[float], fmt: str) -> str:
    """``median (min–max)`` of repeats, or the one value."""
    if len(values) == 1:
        return format(values[0], fmt)
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{format(mid, fmt)} ({format(lo, fmt)}–{format(hi, fmt)})"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


# ---------------------------------------------------------------- the plain GPT


class Block(nn.Module):
    """Pre-LN GPT-2 layer: x + attn(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, C // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, head_dim)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class PlainGPT(nn.Module):
    """Token embedding + learned positions, pre-LN blocks, final LN, head tied to the
    embedding; GPT-2 initialisation (std 0.02, residual projections / sqrt(2 · layers))."""

    def __init__(
        self, vocab: int = 256, depth: int = 4, dim: int = 128, heads: int = 4, context: int = 128
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, 4 * dim) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                residual = name.endswith(("proj.weight", "fc2.weight"))
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth) if residual else 0.02)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tok.weight.t()


def plain_optimizer(model: nn.Module, lr: float) -> torch.optim.AdamW:
    """nanoGPT's AdamW: weight decay 0.1 on matrices and embeddings only, betas (0.9, 0.95)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def train_plain(
    train_ids: Tensor, seconds: float, seed: int, batch: int = 32, lr: float = 1e-3
) -> tuple[nn.Module, int]:
    """The plain GPT trained for ``seconds`` of wall time: 100 warmup steps, then a cosine
    over the elapsed share of the budget down to lr / 10 (nanoGPT's floor). Returns the
    model and the steps taken."""
    torch.manual_seed(seed)
    model = PlainGPT().train()
    opt = plain_optimizer(model, lr)
    gen = torch.Generator().manual_seed(seed)
    context, warmup, floor = 128, 100, lr / 10
    offsets = torch.arange(context + 1)
    step, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        if step < warmup:
            rate = lr * (step + 1) / warmup
        else:
            done = min(1.0, elapsed / seconds)
            rate = floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * done))
        for group in opt.param_groups:
            group["lr"] = rate
        starts = torch.randint(0, len(train_ids) - context, (batch,), generator=gen)
        w = train_ids[starts[:, None] + offsets]  # (batch, context + 1)
        loss = F.cross_entropy(model(w[:, :-1]).flatten(0, 1), w[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
    return model, step


@torch.no_grad()
def bits_per_byte(model: nn.Module, windows: ContiguousWindows) -> float:
    """Mean next-byte cross-entropy in bits over every scored target of ``windows``."""
    model.eval()
    total, n = 0.0, 0
    for x, y in DataLoader(windows, batch_size=64):
        logits = model(x).float().flatten(0, 1)
        total += F.cross_entropy(logits, y.flatten(), reduction="sum").item()
        n += int((y != IGNORE_INDEX).sum())
    return total / n / math.log(2)


# ---------------------------------------------------------------- quality at equal budget


def recipe_config(args, seed: int, out: Path):
    overrides = {**parse_set(args.set), "train.seed": seed, "train.out": str(out)}
    overrides.setdefault("train.device", "cpu")
    return build_config(args.config, overrides)


def bench_quality(args, tmp: Path) -> Path:
    _, files = from_texts(
        DataConfig(name="pydoc-topics"), split_by_position(pydoc_topics()), "pydoc-topics"
    )
    cfg = recipe_config(args, 0, tmp / "probe")
    if cfg.data.name != "pydoc-topics" or cfg.data.vocab != "byte" or cfg.data.context != 128:
        raise SystemExit("the quality section compares byte-level pydoc-topics at context 128")
    test = ContiguousWindows(files["test"], 128)
    ours, plain, diffs, walls, steps = [], [], [], [], []
    run = None
    for r in range(args.repeats):
        run = tmp / f"recipe-{r}"
        before = load()
        trainer = Trainer(recipe_config(args, r, run), run)
        summary = trainer.fit()  # trainer.model now holds best.pt's weights
        wall = summary["wall_time_s"]
        mine = bits_per_byte(trainer.model, test)
        if abs(mine - summary["test"]["bpb"]) > 1e-3:
            raise RuntimeError(f"odetx says {summary['test']['bpb']:.4f} bpb, this script {mine}")
        model, n = train_plain(torch.from_numpy(files["train"].ids().astype("int64")), wall, r)
        theirs = bits_per_byte(model, test)
        ours.append(mine)
        plain.append(theirs)
        diffs.append(theirs - mine)
        walls.append(wall)
        steps.append(n)
        print(
            f"repeat {r}: odetx {mine:.3f} bpb in {wall:.0f} s · plain {theirs:.3f} bpb "
            f"({n} steps) · load {before} -> {load()}",
            flush=True,
        )
    sec = f"test bits/byte at equal wall time W (pydoc-topics, {args.repeats} seeds)"
    t = cfg.train
    row(
        sec,
        f"odetx {Path(args.config).name}: {cfg.model.arch}, batch {t.batch_size}, lr {t.lr:g}, "
        f"{t.epochs} × {cfg.data.train_windows} windows",
        f"{spread(ours, '.3f')} bpb",
        f"W = {spread(walls, '.0f')} s",
        f"< 2.6 {'met' if max(ours) < 2.6 else 'NOT met'}",
    )
    row(
        sec,
        "plain GPT 4×128, batch 32, AdamW 1e-3 (0.9, 0.95), cosine, for W",
        f"{spread(plain, '.3f')} bpb",
        f"{spread([float(s) for s in steps], '.0f')} steps",
    )
    row(
        sec,
        "plain − odetx",
        f"{spread(diffs, '+.3f')} bpb",
        "",
        f"> 0 {'met' if min(diffs) > 0 else 'NOT met'}",
    )
    return run


# ---------------------------------------------------------------- training throughput


def odetx_gpt(**kw) -> nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(**TINY, **kw), SolverConfig("euler"), BYTES)


def train_step(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def interleaved(cases: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds per call of each case, repeats interleaved (A B C A B C …)."""
    for fn in cases.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def bench_throughput(args) -> None:
    batch, reps = 32, 5 if args.quick else 15
    torch.manual_seed(0)
    x = torch.randint(0, 256, (batch, 128))
    y = torch.randint(0, 256, (batch, 128))
    models = {
        "plain GPT (SDPA causal)": PlainGPT(),
        "odetx sequential": odetx_gpt(arch="sequential"),
        "odetx parallel": odetx_gpt(arch="parallel"),
        "odetx parallel fused": odetx_gpt(arch="parallel", shared_norm=True, fused=True),
    }
    before = load()
    t = interleaved({k: train_step(m, x, y) for k, m in models.items()}, reps)
    tokens = batch * 128
    med = {k: statistics.median(v) for k, v in t.items()}

    def faster(name: str, than: str, label: str) -> tuple[float, str]:
        """Speed of ``name`` over ``than``: ratio of medians, and each round's ratio."""
        rounds = [b / a for a, b in zip(t[name], t[than], strict=True)]
        r = med[than] / med[name]
        return r, f"{r:.2f}× {label} (rounds {min(rounds):.2f}–{max(rounds):.2f})"

    sec = f"training tokens/s, gpt-tiny dims, batch {batch} × 128, fwd+bwd+AdamW (load {before})"
    row(sec, "plain GPT (SDPA causal)", f"{tokens / med['plain GPT (SDPA causal)']:,.0f} tok/s")
    r, text = faster("odetx sequential", "plain GPT (SDPA causal)", "plain")
    row(
        sec,
        "odetx sequential (euler, G = D)",
        f"{tokens / med['odetx sequential']:,.0f} tok/s",
        text,
        f"≥ 1× {'met' if r >= 1 else 'NOT met'}",
    )
    for name in ("odetx parallel", "odetx parallel fused"):
        _, text = faster(name, "odetx sequential", "sequential")
        row(sec, name, f"{tokens / med[name]:,.0f} tok/s", text)


# ---------------------------------------------------------------- generation


def brief_checkpoint(tmp: Path) -> Path:
    """A gpt-tiny trained for a few seconds: generation speed does not depend on training."""
    run = tmp / "brief"
    overrides = {
        "data.train_windows": 256,
        "train.epochs": 1,
        "train.out": str(run),
        "train.device": "cpu",
    }
    Trainer(build_config(ROOT / "configs/lm.yaml", overrides), run).fit()
    return run


def bench_generate(args, checkpoint: Path) -> None:
    loaded = load_model(checkpoint)
    prompt = "The "
    lengths = [256] if args.quick else [256, 120]
    reps = 3 if args.quick else 5
    context = loaded.config.model.context
    for cache in (True, False):  # warm-up: first calls allocate and dispatch slowly
        list(Generation(loaded, prompt, Sampling(16), cache=cache).ids())
    for new in lengths:
        texts: dict[bool, list[list[int]]] = {True: [], False: []}
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(reps):  # cached, uncached, cached, …: interleaved
            for cache in (True, False):
                g = Generation(loaded, prompt, Sampling(new, 1.0, 0, seed=r), cache=cache)
                ids = list(g.ids())
                texts[cache].append(ids)
                times[cache].append(g.tokens_per_s)
        same = texts[True] == texts[False]
        full = max(0, len(prompt) + new - context)
        sec = (
            f"generate {new} new tokens after a {len(prompt)}-byte prompt, context {context}"
            f" (window full for the last {full}), temperature 1, batch 1"
        )
        row(sec, "cache off", f"{spread(times[False], ',.0f')} tok/s")
        speedups = [a / b for a, b in zip(times[True], times[False], strict=True)]
        mid = statistics.median(times[True]) / statistics.median(times[False])
        row(
            sec,
            "cache on",
            f"{spread(times[True], ',.0f')} tok/s",
            f"{mid:.2f}× off (rounds {min(speedups):.2f}–{max(speedups):.2f})",
            f"same text for {reps} seeds: {'yes' if same else 'NO'}",
        )


# ---------------------------------------------------------------- main


def machine() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} CPUs"
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repeat, fewer timing rounds")
    p.add_argument("--repeats", type=int, default=None, help="quality repeats (default 2; 1 quick)")
    p.add_argument("--config", default=str(ROOT / "configs/lm.yaml"), help="the odetx recipe")
    p.add_argument("--set", action="append", default=[], help="override a recipe key (KEY=VALUE)")
    p.add_argument("--only", nargs="*", default=["quality", "throughput", "generate"])
    args = p.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 2)
    start_load = load()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_lm-") as name:
        tmp = Path(name)
        run = None
        if "quality" in args.only:
            run = bench_quality(args, tmp)
        if "throughput" in args.only:
            bench_throughput(args)
        if "generate" in args.only:
            bench_generate(args, run or brief_checkpoint(tmp))
    title = (
        f"odetx LM benchmarks — {machine()} · torch {torch.__version__} · "
        f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"
        f" · load avg 1/5 min {start_load} at start, {load()} at end\n"
        f"$ python {' '.join(sys.argv)}\n"
        f"medians (min–max) of repeats · {time.perf_counter() - t0:.0f} s"
    )
    table = Table(title=title, title_justify="left")
    for col in ("benchmark", "case", "value", "ratio", "target"):
        table.add_column(col, overflow="fold")
    last = None
    for sec, *rest in ROWS:
        table.add_row(sec if sec != last else "", *rest)
        last = sec
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
