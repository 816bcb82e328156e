#!/usr/bin/env python
"""Regenerate docs/results.md: the seed paper's three claims, measured with odetx itself.

Run from the repository root with the virtual environment active::

    OMP_NUM_THREADS=1 python docs/make_results.py

1. Runs each study sweep (``odetx compare --sweep configs/sweeps/study-*.yaml``, with
   ``--csv``/``--json`` into docs/data/ and ``--plot`` into docs/), two processes at a
   time. Sweeps resume (complete cells are skipped); run directories go under ``runs/study/``.
2. Integrates two trained digits models with other solvers, step counts and archs
   (``odetx compare RUN/best.pt --solver … --steps …``, the inference-time view).
3. Reads every finished cell (``odetx.compare.sweep.load_sweep``, ``runs.read_run``),
   pools each arm's seeds (``runs.pool_seeds``), pairs arms by seed (same seed = same data
   order and split; ``runs.paired``), fills the numbers and tables into the page's prose,
   ``docs/results.template.md``, and writes ``docs/results.md`` and ``docs/results.png``.

The conclusions in docs/results.md are hand-written after reading the numbers; they
live between the ``<!-- conclusions:begin -->`` and ``<!-- conclusions:end -->``
markers, which this script keeps as they are (everything else is regenerated).
``--no-run`` skips steps 1-2 and only rewrites the page from the finished runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, DATA = ROOT / "docs", ROOT / "docs" / "data"
LOGS = ROOT / "runs" / "study" / "logs"
sys.path.insert(0, str(ROOT))

from odetx.compare.runs import paired, pool_seeds, read_run  # noqa: E402
from odetx.compare.sweep import load_sweep  # noqa: E402
from odetx.resolve import build_config  # noqa: E402

STUDY = ("study-digits", "study-listops", "study-digits-dopri5")
SWEEPS = {name: f"configs/sweeps/{name}.yaml" for name in STUDY}
# Two concurrent processes (2 CPU cores); each lane runs its sweeps one after another.
# ListOps is the longest sweep, so it gets a lane of its own.
LANES = [["study-listops"], ["study-digits", "study-digits-dopri5"]]
# The inference-time view: one trained model, integrated with other solvers/steps/archs.
# "schemes" (the sweep experiment, inference-schemes) stays: names of the study's data.
G1_RUN = "runs/study/digits/groups/groups=1,steps=6,seed=0"
SEQ_RUN = "runs/study/digits/schemes/arch=sequential,seed=0"
INFERENCE = {
    "inference-g1": f"{G1_RUN}/best.pt --solver euler --solver midpoint --solver rk4 "
    "--solver dopri5 --steps 1,2,3,6,12,24,48,96 --rtol 1e-3 --atol 1e-4",
    "inference-schemes": f"{SEQ_RUN}/best.pt --solver euler --solver rk4 --arch sequential "
    "--arch strang --arch parallel --steps 1,2,4,8,16",
}
BEGIN, END = "<!-- conclusions:begin -->", "<!-- conclusions:end -->"
PLACEHOLDER = "_(conclusions to be written after reading the numbers below)_"
# Claim 3's equal-NFE pairs: (solver, steps) -> the euler step count with the same NFE.
EQUAL_NFE = {("midpoint", 3): 6, ("rk4", 2): 8}
COLOURS = {"euler": "tab:blue", "midpoint": "tab:green", "rk4": "tab:red", "dopri5": "tab:purple"}


# ----------------------------------------------------------------------------- running


def odetx(args: list[str], log: Path) -> float:
    """Run ``python -m odetx ARGS`` (output to ``log``); returns the wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.monotonic()
    with log.open("w") as f:
        cmd = [sys.executable, "-m", "odetx", *args]
        rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        raise SystemExit(f"odetx {' '.join(args)} failed (exit {rc}); see {log}")
    return time.monotonic() - start


def compare_args(name: str) -> list[str]:
    """The ``odetx compare`` arguments of a sweep or an inference comparison, outputs included."""
    what = ["--sweep", SWEEPS[name]] if name in SWEEPS else INFERENCE[name].split()
    out = f"--csv docs/data/{name}.csv --json docs/data/{name}.json --plot docs/{name}.png"
    return [*what, *out.split()]


def run(*names: str) -> None:
    for name in names:
        wall = odetx(["compare", *compare_args(name)], LOGS / f"{name}.log")
        print(f"{name}: {wall:.0f} s", flush=True)


def run_all() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(len(LANES)) as pool:  # an error is raised once both lanes end
        for lane in [pool.submit(run, *names) for names in LANES]:
            lane.result()
    run(*INFERENCE)


# ----------------------------------------------------------------------------- reading


def collect() -> list[tuple[str, str, dict]]:
    """(sweep, experiment, run) for every finished cell of the study sweeps (cwd = ROOT)."""
    return [
        (sweep, cell.experiment, read_run(cell.run_dir))
        for sweep, path in SWEEPS.items()
        for cell in load_sweep(path)
        if (cell.run_dir / "summary.json").is_file()
    ]


def arms(cells, dataset: str, *experiments: str) -> list[dict]:
    """The arms of ``experiments`` on ``dataset``, seeds pooled by ``pool_seeds``.

    Each arm holds ``cfg`` (its first run's flattened config), ``seeds`` (seed -> run) and
    ``row`` (the means and seed sds the page shows, as written to docs/data/paired.json).
    """
    picked = [
        (e, r) for _, e, r in cells if e in experiments and r["config"]["data.name"] == dataset
    ]
    by_path = {r["run"]: r for _, r in picked}
    out = []
    for pooled in pool_seeds([r for _, r in picked], [e for e, _ in picked]):
        runs = [by_path[p] for p in pooled["runs"]]
        row = {}
        for name, key in (("acc", "test_acc"), ("last", "test_acc_last")):
            row |= {name: pooled[key], f"{name}_sd": pooled.get(f"{key}_std")}
        row |= {"nfe": pooled["nfe"], "wall": pooled["wall_time_s"], "params": runs[0]["params"]}
        seeds = {r["config"]["train.seed"]: r for r in runs}
        out.append({"cfg": runs[0]["config"], "seeds": seeds, "row": row | {"n": len(runs)}})
    return out


def compare(a: dict | None, b: dict | None) -> dict | None:
    """Test accuracy of arm ``a`` − arm ``b`` per common seed (``odetx.compare.runs.paired``);
    ``None`` when either arm is missing."""
    by_seed = [{s: r["test_acc"] for s, r in x["seeds"].items()} for x in (a, b) if x]
    return paired(*by_seed) if len(by_seed) == 2 else None


# ----------------------------------------------------------------------------- formatting


def pct(x: float | None, sd: float | None = None, digits: int = 1) -> str:
    if x is None:
        return "—"
    text = f"{100 * x:.{digits}f}"
    return text + (f" ± {100 * sd:.{digits}f}" if sd is not None else "")


def pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def paired_cells(p: dict | None) -> list[str]:
    if p is None:
        return ["—"] * 4
    sd = f" ± {100 * p['sd']:.1f}" if p["sd"] is not None else ""
    wins = f"{p['a_wins']} / {p['b_wins']} / {p['ties']}"
    return [" ".join(pp(d) for d in p["diffs"]), f"{pp(p['mean'])}{sd}", wins, f"{p['p']:.2f}"]


def claim1(cells, ds: str) -> tuple[str, dict]:
    found = {a["cfg"]["model.arch"]: a for a in arms(cells, ds, "schemes")}
    found = {s: found[s] for s in ("sequential", "parallel", "strang") if s in found}
    rows = []
    for s, arm in found.items():
        r = arm["row"]
        acc, last = pct(r["acc"], r["acc_sd"]), pct(r["last"], r["last_sd"])
        rows.append([f"`{s}`", f"{r['params']:,}", f"{r['nfe']:g}", acc, last, f"{r['wall']:.0f}"])
        rows[-1].append(r["n"])
    head = ["arch", "params", "NFE", "test acc % (best-val epoch)", "test acc % (last epoch)"]
    text = md_table([*head, "train s / run", "seeds"], rows)
    pairs, prows = {}, []
    for a, b in (("parallel", "sequential"), ("strang", "sequential"), ("parallel", "strang")):
        if a in found and b in found:
            pairs[(a, b)] = compare(found[a], found[b])
            prows.append([f"{a} − {b}", *paired_cells(pairs[(a, b)])])
    text += (
        "\n\nPaired by seed (the two runs of a pair share the seed, hence the data split, "
        "batch order and augmentation stream; only the arch differs):\n\n"
    )
    head = ["comparison", "per-seed difference (pp, seeds in order)", "mean ± sd (pp)"]
    head += ["seeds favouring first / second / tie", "sign-flip p"]
    return text + md_table(head, prows), pairs


def claim2(cells, ds: str) -> tuple[str, list, int]:
    found = sorted(arms(cells, ds, "groups"), key=lambda a: a["cfg"]["model.groups"], reverse=True)
    depth = found[0]["cfg"]["model.depth"]
    full = next(a for a in found if a["cfg"]["model.groups"] == depth)
    rows, points = [], []
    for arm in found:
        g, r = arm["cfg"]["model.groups"], arm["row"]
        p = compare(arm, full) if g != depth else None
        ratio = f"{r['params'] / full['row']['params']:.2f}"
        rows.append([g, arm["cfg"]["solver.steps"], f"{r['params']:,}", ratio, f"{r['nfe']:g}"])
        rows[-1] += [pct(r["acc"], r["acc_sd"]), *paired_cells(p)[1:3], r["n"]]
        points.append((g, r, p))
    head = ["G", "steps per group", "params", "params / G=D", "NFE", "test acc %"]
    head += [f"Δ vs G={depth}, paired (pp)", f"seeds: G better / G={depth} better / tie", "seeds"]
    return md_table(head, rows), points, depth


def claim3(cells) -> tuple[str, list]:
    order = {"euler": 0, "midpoint": 1, "rk4": 2, "dopri5": 3}

    def key(arm: dict) -> tuple[str, int | None]:
        solver = arm["cfg"]["solver.method"]
        return solver, arm["cfg"]["solver.steps"] if solver != "dopri5" else None

    found = {key(a): a for a in arms(cells, "digits", "solvers", "dopri5")}
    rows, points = [], []
    for solver, steps in sorted(found, key=lambda k: (order.get(k[0], 9), k[1] or 0)):
        arm = found[(solver, steps)]
        r = arm["row"]
        p = compare(arm, found.get(("euler", 6))) if (solver, steps) != ("euler", 6) else None
        # The equal-NFE partner: euler with as many steps as this arm's NFE per forward.
        partner = EQUAL_NFE.get((solver, steps))
        q = compare(arm, found.get(("euler", partner))) if partner else None
        rtol = f" (rtol = atol = {arm['cfg'].get('solver.rtol'):g})" if solver == "dopri5" else ""
        h = f"{6 / steps:g}" if steps else "—"
        rows.append([f"`{solver}`{rtol}", steps or "adaptive", h, f"{r['nfe']:.3g}"])
        rows[-1] += [pct(r["acc"], r["acc_sd"]), *paired_cells(p)[1:3]]
        _, mean_sd, seeds, p_q = paired_cells(q)
        rows[-1].append(f"{mean_sd} vs euler × {partner} ({seeds}; p {p_q})" if q else "")
        rows[-1] += [f"{r['wall']:.0f}", r["n"]]
        points.append((solver, steps, r, p, q))
    head = ["solver", "steps", "h", "NFE (test pass)", "test acc %", "Δ vs euler × 6, paired (pp)"]
    nfe_head = "Δ vs equal-NFE euler, paired (pp; seeds this / euler / tie; sign-flip p)"
    head += ["seeds: this better / euler × 6 better / tie", nfe_head, "train s / run", "seeds"]
    return md_table(head, rows), points


def row_arch(row: dict) -> str:
    # compare rows say "arch"; docs/data/inference-*.json written before the rename say "scheme"
    return row["arch"] if "arch" in row else row["scheme"]


def inference_table(name: str) -> str:
    path = DATA / f"{name}.json"
    if not path.is_file():
        return "_(not run yet)_"
    table = json.loads(path.read_text())
    rows = []
    for r in table["rows"]:

        def f(key, fmt, r=r):
            return fmt.format(r[key]) if r.get(key) is not None else "—"

        label = f"**{r['solver']}**" if r.get("trained") else r["solver"]
        steps = r["steps"] if r["steps"] is not None else f"rtol {r['rtol']:g}"
        delta = pp(r["delta_acc"]) if r.get("delta_acc") is not None else "—"
        rows.append([row_arch(r), label, steps, f("h", "{:g}"), f("nfe", "{:.3g}"), pct(r["acc"])])
        rows[-1] += [delta, f("error", "{:.2e}"), f("local_order", "{:.2f}")]
        rows[-1] += [f("order", "{:.2f}"), f("expected_order", "{}")]
    head = ["arch", "solver", "steps", "h", "NFE", "test acc %", "Δ acc (pp)", "logit error"]
    text = md_table([*head, "local order", "fit order", "theory"], rows)
    # odetx's terminal table shows the trained-with row in italics; this page sets it in bold.
    notes = "\n".join(f"- {n.replace('italic row', 'bold row')}" for n in table["notes"])
    return f"{text}\n\n{notes}"


# ----------------------------------------------------------------------------- plotting


def headline_plot(c1, c2, depths, c3_points, reference: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    # (1) paired per-seed differences against the sequential layer.
    ax, ticks, labels = axes[0], [], []
    for ds, pairs in c1.items():
        for (a, b), p in pairs.items():
            if b != "sequential" or p is None:
                continue
            x, ys = len(ticks), [100 * d for d in p["diffs"]]
            jitter = [x + 0.06 * (i - (len(ys) - 1) / 2) for i in range(len(ys))]
            colour = "tab:blue" if a == "parallel" else "tab:orange"
            ax.scatter(jitter, ys, s=22, alpha=0.8, color=colour)
            mean, sd = [100 * p["mean"]], [100 * (p["sd"] or 0)]
            ax.errorbar([x + 0.32], mean, yerr=sd, fmt="D", color="black", capsize=4)
            ticks.append(x)
            labels.append(f"{ds}\n{a} − seq")
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("test accuracy difference (percentage points)")
    title = "claim 1: arch vs sequential, paired by seed\n(dots: seeds; ◆: mean ± sd)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    # (2) parameters against accuracy change, gradual weight sharing.
    ax = axes[1]
    for ds, points in c2.items():
        full = next(r["params"] for g, r, _ in points if g == depths[ds])
        xs = [r["params"] / full for _, r, _ in points]
        ys = [100 * (p["mean"] if p else 0.0) for _, _, p in points]
        es = [100 * (p["sd"] or 0.0) if p else 0.0 for _, _, p in points]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=ds)
        for (g, _, _), xi, yi in zip(points, xs, ys, strict=True):
            ax.annotate(f"G={g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=1)
    ax.set(xscale="log", xlabel="parameters relative to the unshared model (G = D)")
    ax.set_ylabel("test accuracy − G=D accuracy (pp, paired)")
    ax.set_title("claim 2: weight sharing (parallel, h = 1, equal NFE)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    # (3) accuracy against NFE for the weight-shared block.
    ax, seen = axes[2], set()
    for solver, steps, r, *_ in c3_points:
        x, y, colour = r["nfe"], 100 * r["acc"], COLOURS.get(solver, "black")
        label = solver if solver not in seen else None
        sd = [100 * (r["acc_sd"] or 0)]
        ax.errorbar([x], [y], yerr=sd, marker="o", capsize=3, color=colour, label=label)
        seen.add(solver)
        text = f"{steps} st" if steps else "adaptive"
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if reference:
        acc, sd = reference["acc"], reference["acc_sd"] or 0
        ax.axhspan(100 * (acc - sd), 100 * (acc + sd), color="grey", alpha=0.15)
        label = f"unshared G = 6, euler × 1 ({reference['params'] / 1e3:.0f}K params)"
        ax.axhline(100 * acc, color="grey", ls="--", lw=1, label=label)
    ax.set(xscale="log", xlabel="NFE per forward (test pass)")
    ax.set_ylabel("digits test accuracy % (mean ± sd)")
    params = f" ({c3_points[0][2]['params'] / 1e3:.0f}K params)" if c3_points else ""
    ax.set_title(f"claim 3: G = 1 block{params}, solvers (digits)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- page


def conclusions(page: Path) -> str:
    if page.is_file():
        text = page.read_text()
        if BEGIN in text and END in text:
            return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n")
    return PLACEHOLDER


def sweep_costs(cells) -> str:
    rows = []
    for sweep, path in SWEEPS.items():
        n_cells = sum(s == sweep for s, _, _ in cells)
        walls = {r["run"]: r["wall_time_s"] for s, _, r in cells if s == sweep}.values()
        if walls:
            span = f"{min(walls):.0f}–{max(walls):.0f}"
            rows.append([f"`{path}`", n_cells, len(walls), f"{sum(walls) / 60:.1f}", span])
    head = ["sweep", "cells", "runs", "training minutes (sum over runs)", "s per run (min–max)"]
    return md_table(head, rows)


def write_page(cells: list[tuple[str, str, dict]]) -> None:
    import torch

    page = DOCS / "results.md"
    c1, c1_text, c2, c2_text, depths = {}, {}, {}, {}, {}
    for ds in ("digits", "listops"):
        if any(e == "schemes" and r["config"]["data.name"] == ds for _, e, r in cells):
            c1_text[ds], c1[ds] = claim1(cells, ds)
        if any(e == "groups" and r["config"]["data.name"] == ds for _, e, r in cells):
            c2_text[ds], c2[ds], depths[ds] = claim2(cells, ds)
    full = [
        a["row"] for a in arms(cells, "digits", "schemes") if a["cfg"]["model.arch"] == "parallel"
    ]
    ref = pct(full[0]["acc"], full[0]["acc_sd"]) + f" % ({full[0]['n']} seeds)" if full else "—"
    c3_text, c3 = (
        claim3(cells) if any(e == "solvers" for _, e, _ in cells) else ("_(not run yet)_", [])
    )
    headline_plot(c1, c2, depths, c3, full[0] if full else None, DOCS / "results.png")

    def sections(texts: dict[str, str]) -> str:
        return "".join(f"### {ds}\n\n{text}\n\n" for ds, text in texts.items())

    listops = load_sweep(SWEEPS["study-listops"])[0].config  # a sweep's scale: any cell's
    runs = {r["run"]: r["wall_time_s"] for _, _, r in cells}
    names = [*SWEEPS, *INFERENCE]
    text = (DOCS / "results.template.md").read_text().partition("\n")[2]  # line 1: a note
    page_text = text.format(
        conclusions=conclusions(page),
        machine=platform.machine(),
        torch=torch.__version__.split("+")[0],
        python=platform.python_version(),
        digits=load_sweep(SWEEPS["study-digits"])[0].config,
        default_epochs=build_config(ROOT / "configs/default.yaml").train.epochs,
        listops=listops,
        example_pp=100 / listops.data.test_size,
        sweep_costs=sweep_costs(cells),
        n_runs=len(runs),
        proc_min=sum(runs.values()) / 60,
        commands="\n".join("odetx compare " + " ".join(compare_args(n)) for n in names),
        claim1=sections(c1_text),
        claim2=sections(c2_text),
        claim3=c3_text,
        reference=ref,
        g1_run=G1_RUN,
        seq_run=SEQ_RUN,
        inference_g1=inference_table("inference-g1"),
        inference_archs=inference_table("inference-schemes"),
    )
    page.write_text(page_text)
    record = {
        "claim1": {ds: {f"{a}-{b}": p for (a, b), p in pairs.items()} for ds, pairs in c1.items()},
        "claim2": {
            ds: [{"groups": g, **r, "paired_vs_full": p} for g, r, p in pts]
            for ds, pts in c2.items()
        },
        "claim3": [
            {"solver": s, "steps": st, **r, "paired_vs_euler6": p, "paired_vs_equal_nfe_euler": q}
            for s, st, r, p, q in c3
        ],
    }
    (DATA / "paired.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {page.relative_to(ROOT)}, docs/results.png, docs/data/paired.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--no-run", action="store_true", help="only rewrite docs/results.md from the finished runs"
    )
    args = parser.parse_args()
    os.chdir(ROOT)  # the sweeps' out folders are relative to the repository root
    DATA.mkdir(parents=True, exist_ok=True)
    if not args.no_run:
        run_all()
    write_page(collect())


if __name__ == "__main__":
    main()
