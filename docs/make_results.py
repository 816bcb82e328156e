#!/usr/bin/env python
"""Regenerate docs/results.md: the seed paper's claims, measured with odetx itself.

Run from the repository root with the virtual environment active::

    OMP_NUM_THREADS=1 python docs/make_results.py

1. Runs the study sweeps (``odetx compare --sweep configs/sweeps/study-*.yaml``, ``--csv``/
   ``--json`` into docs/data/, ``--plot`` into docs/), two processes at a time; sweeps resume,
   run directories go under ``runs/study/``. ``study-lm`` trains a language model, the others
   classifiers.
2. Integrates two trained digits models with other solvers, step counts and archs
   (``odetx compare RUN/best.pt --solver … --steps …``, the inference-time view).
3. Reads every finished cell (``load_sweep``, ``runs.read_run``), pools each arm's seeds
   (``runs.pool_seeds``), pairs arms by seed (``runs.paired``), fills in the page's prose,
   ``docs/results.template.md``, and writes ``docs/results.md`` and ``docs/results.png``.

Hand-written conclusions sit between ``<!-- conclusions:begin -->`` and ``<!-- conclusions:end
-->`` (the language model's between ``lm-conclusions`` markers, the hand-run variant studies
between ``variants-time``, ``variants-rk`` and ``variants-reg`` markers); this script keeps them,
and the section between ``lm-budget`` markers, written by docs/make_lm_budget.py, as it stands.
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
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS, DATA = ROOT / "docs", ROOT / "docs" / "data"
LOGS = ROOT / "runs" / "study" / "logs"
sys.path.insert(0, str(ROOT))

from odetx.compare.runs import paired, pool_seeds, read_run  # noqa: E402
from odetx.compare.sweep import load_sweep  # noqa: E402
from odetx.resolve import build_config  # noqa: E402

STUDY = ("study-digits", "study-listops", "study-digits-dopri5")  # the classifiers
SWEEPS = {name: f"configs/sweeps/{name}.yaml" for name in (*STUDY, "study-lm")}
LM = "pydoc-topics"  # the language model's dataset (study-lm: experiments archs, groups, capacity)
# Two concurrent processes (2 CPU cores), each running its sweeps in turn (58 + 17, 41 + 68 min).
LANES = [["study-listops", "study-digits-dopri5"], ["study-digits", "study-lm"]]
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
# Claim 3's adaptive arm retrained with dropout held within solves (printed by --held for the
# hand-written variants-reg block): experiment -> row label.
HELD, SWEEPS_HELD = "study-digits-dopri5-held", "configs/sweeps/study-digits-dopri5-held.yaml"
HELD_ARMS = {
    "euler": "`euler` × 6",
    "dopri5": "`dopri5` (rtol = atol = 0.1)",
    "dopri5-reg": "`dopri5`, regularised",
}
PLACEHOLDER = "_(conclusions to be written after reading the numbers below)_"
NOT_RUN = "_(not run yet)_"
# Claim 3's equal-NFE pairs: (solver, steps) -> the euler step count with the same NFE.
EQUAL_NFE = {("midpoint", 3): 6, ("rk4", 2): 8}
COLOURS = {"euler": "tab:blue", "midpoint": "tab:green", "rk4": "tab:red", "dopri5": "tab:purple"}


# ----------------------------------------------------------------------------- running


def compare_args(name: str) -> list[str]:
    """The ``odetx compare`` arguments of a sweep or an inference comparison, outputs included."""
    what = ["--sweep", SWEEPS[name]] if name in SWEEPS else INFERENCE[name].split()
    out = f"--csv docs/data/{name}.csv --json docs/data/{name}.json --plot docs/{name}.png"
    return [*what, *out.split()]


def run(*names: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for name in names:
        start, log = time.monotonic(), LOGS / f"{name}.log"
        cmd = [sys.executable, "-m", "odetx", "compare", *compare_args(name)]
        with log.open("w") as f:
            rc = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
        if rc != 0:
            raise SystemExit(f"odetx {' '.join(cmd[3:])} failed (exit {rc}); see {log}")
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)


def run_all() -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(len(LANES)) as pool:  # an error is raised once both lanes end
        for lane in [pool.submit(run, *names) for names in LANES]:
            lane.result()
    run(*INFERENCE)


# ----------------------------------------------------------------------------- reading, tables


def collect() -> list[tuple[str, str, dict]]:
    """(sweep, experiment, run) for every finished cell of the study sweeps (cwd = ROOT)."""
    return [
        (sweep, cell.experiment, read_run(cell.run_dir))
        for sweep, path in SWEEPS.items()
        for cell in load_sweep(path)
        if (cell.run_dir / "summary.json").is_file()
    ]


# A metric in the tables: read_run key (+ "_last"), row names, scale, digits, unit, higher is better
Metric = namedtuple("Metric", "key names scale digits unit label higher")
ACC = Metric("test_acc", ("acc", "last"), 100, 1, "pp", "test acc %", True)
BPB = Metric("test_bpb", ("bpb", "bpb_last"), 1, 3, "bits per byte", "test bits per byte", False)


def arms(cells, dataset: str, *experiments: str, m: Metric = ACC) -> list[dict]:
    """The arms of ``experiments`` on ``dataset`` (seeds pooled): ``cfg`` (the first run's flat
    config), ``seeds`` (seed -> run), ``row`` (means and seed sds, as in docs/data/paired.json)."""
    picked = [
        (e, r) for _, e, r in cells if e in experiments and r["config"]["data.name"] == dataset
    ]
    by_path = {r["run"]: r for _, r in picked}
    out = []
    for pooled in pool_seeds([r for _, r in picked], [e for e, _ in picked]):
        runs = [by_path[p] for p in pooled["runs"]]
        row = {}
        for name, key in zip(m.names, (m.key, f"{m.key}_last"), strict=True):
            row |= {name: pooled[key], f"{name}_sd": pooled.get(f"{key}_std")}
        row |= {"nfe": pooled["nfe"], "wall": pooled["wall_time_s"], "params": runs[0]["params"]}
        seeds = {r["config"]["train.seed"]: r for r in runs}
        out.append({"cfg": runs[0]["config"], "seeds": seeds, "row": row | {"n": len(runs)}})
    return out


def compare(a: dict | None, b: dict | None, m: Metric = ACC) -> dict | None:
    """Metric of arm ``a`` − arm ``b`` per common seed (``runs.paired``); None if one is missing."""
    by_seed = [{s: r[m.key] for s, r in x["seeds"].items()} for x in (a, b) if x]
    return paired(*by_seed) if len(by_seed) == 2 else None


def fmt(x: float | None, sd: float | None = None, m: Metric = ACC) -> str:
    if x is None:
        return "—"
    text = f"{m.scale * x:.{m.digits}f}"
    return text + (f" ± {m.scale * sd:.{m.digits}f}" if sd is not None else "")


def signed(x: float, m: Metric = ACC) -> str:
    return f"{m.scale * x:+.{m.digits}f}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def paired_cells(p: dict | None, m: Metric = ACC) -> list[str]:
    if p is None:
        return ["—"] * 4
    sd = f" ± {m.scale * p['sd']:.{m.digits}f}" if p["sd"] is not None else ""
    a, b = (p["a_wins"], p["b_wins"]) if m.higher else (p["b_wins"], p["a_wins"])
    diffs, mean = " ".join(signed(d, m) for d in p["diffs"]), f"{signed(p['mean'], m)}{sd}"
    return [diffs, mean, f"{a} / {b} / {p['ties']}", f"{p['p']:.2f}"]


def claim1(cells, ds: str, exp: str = "schemes", m: Metric = ACC) -> tuple[str, dict]:
    found = {a["cfg"]["model.arch"]: a for a in arms(cells, ds, exp, m=m)}
    found = {s: found[s] for s in ("sequential", "parallel", "strang") if s in found}
    rows, pairs, prows = [], {}, []
    for s, arm in found.items():
        r = arm["row"]
        best, last = (fmt(r[n], r[f"{n}_sd"], m) for n in m.names)
        rows.append([f"`{s}`", f"{r['params']:,}", f"{r['nfe']:g}", best, last, f"{r['wall']:.0f}"])
        rows[-1].append(r["n"])
    head = ["arch", "params", "NFE", f"{m.label} (best-val epoch)", f"{m.label} (last epoch)"]
    text = md_table([*head, "train s / run", "seeds"], rows)
    for a, b in (("parallel", "sequential"), ("strang", "sequential"), ("parallel", "strang")):
        if a in found and b in found:
            pairs[(a, b)] = compare(found[a], found[b], m)
            prows.append([f"{a} − {b}", *paired_cells(pairs[(a, b)], m)])
    text += (
        "\n\nPaired by seed (the two runs of a pair share the seed, hence the data split, "
        "batch order and augmentation stream; only the arch differs):\n\n"
    )
    head = ["comparison", f"per-seed difference ({m.unit}, seeds in order)"]
    head += [f"mean ± sd ({m.unit})", "seeds favouring first / second / tie", "sign-flip p"]
    return text + md_table(head, prows), pairs


def claim2(cells, ds: str, m: Metric = ACC, extra: str = "") -> tuple[str, list, int]:
    # the groups arms (G = D first), then ``extra``'s (a narrower model), each paired with G = D
    found = sorted(arms(cells, ds, "groups", m=m), key=lambda a: -a["cfg"]["model.groups"])
    depth = found[0]["cfg"]["model.depth"]
    full = next((a for a in found if a["cfg"]["model.groups"] == depth), None)
    if full is None:
        return f"_(G = {depth} not run yet)_", [], depth
    found += arms(cells, ds, extra, m=m) if extra else []
    rows, points, p_col = [], [], not m.higher
    for arm in found:
        g, r, dim = arm["cfg"]["model.groups"], arm["row"], arm["cfg"]["model.dim"]
        g = g if dim == full["cfg"]["model.dim"] else f"{g}, dim {dim}"
        p = compare(arm, full, m) if arm is not full else None
        ratio = f"{r['params'] / full['row']['params']:.2f}"
        rows.append([g, arm["cfg"]["solver.steps"], f"{r['params']:,}", ratio, f"{r['nfe']:g}"])
        best = fmt(r[m.names[0]], r[f"{m.names[0]}_sd"], m)
        rows[-1] += [best, *paired_cells(p, m)[1 : 3 + p_col], r["n"]]
        points.append((g, r, p))
    head = ["G", "steps per group", "params", "params / G=D", "NFE", m.label]
    head += [f"Δ vs G={depth}, paired ({m.unit})", f"seeds: G better / G={depth} better / tie"]
    return md_table([*head, *["sign-flip p"] * p_col, "seeds"], rows), points, depth


def claim3(cells) -> tuple[str, list]:
    order = {"euler": 0, "midpoint": 1, "rk4": 2, "dopri5": 3}
    found = {}  # (solver, steps or None for dopri5) -> arm
    for a in arms(cells, "digits", "solvers", "dopri5"):
        solver = a["cfg"]["solver.method"]
        found[(solver, a["cfg"]["solver.steps"] if solver != "dopri5" else None)] = a
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
        rows[-1] += [fmt(r["acc"], r["acc_sd"]), *paired_cells(p)[1:3]]
        _, mean_sd, seeds, p_q = paired_cells(q)
        rows[-1].append(f"{mean_sd} vs euler × {partner} ({seeds}; p {p_q})" if q else "")
        rows[-1] += [f"{r['wall']:.0f}", r["n"]]
        points.append((solver, steps, r, p, q))
    head = ["solver", "steps", "h", "NFE (test pass)", "test acc %", "Δ vs euler × 6, paired (pp)"]
    nfe_head = "Δ vs equal-NFE euler, paired (pp; seeds this / euler / tie; sign-flip p)"
    head += ["seeds: this better / euler × 6 better / tie", nfe_head, "train s / run", "seeds"]
    return md_table(head, rows), points


def inference_table(name: str) -> str:
    path = DATA / f"{name}.json"
    if not path.is_file():
        return NOT_RUN
    table, rows = json.loads(path.read_text()), []
    for r in table["rows"]:

        def f(key, fmt, r=r):
            return fmt.format(r[key]) if r.get(key) is not None else "—"

        label = f"**{r['solver']}**" if r.get("trained") else r["solver"]
        steps = r["steps"] if r["steps"] is not None else f"rtol {r['rtol']:g}"
        delta = signed(r["delta_acc"]) if r.get("delta_acc") is not None else "—"
        arch = r["arch"] if "arch" in r else r["scheme"]  # "scheme": JSON from before the rename
        rows.append([arch, label, steps, f("h", "{:g}"), f("nfe", "{:.3g}"), fmt(r["acc"])])
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


def conclusions(page: Path, tag: str = "conclusions") -> str:
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    text = page.read_text() if page.is_file() else ""
    if begin in text and end in text:
        return text[text.index(begin) + len(begin) : text.index(end)].strip("\n")
    return PLACEHOLDER


def sweep_costs(cells, names) -> str:
    rows = []
    for sweep, path in ((n, SWEEPS[n]) for n in names):
        n_cells = sum(s == sweep for s, _, _ in cells)
        walls = {r["run"]: r["wall_time_s"] for s, _, r in cells if s == sweep}.values()
        if walls:
            span = f"{min(walls):.0f}–{max(walls):.0f}"
            rows.append([f"`{path}`", n_cells, len(walls), f"{sum(walls) / 60:.1f}", span])
    head = ["sweep", "cells", "runs", "training minutes (sum over runs)", "s per run (min–max)"]
    return md_table(head, rows)


def cpus_line(cells: list[tuple[str, str, dict]]) -> str:
    """The CPUs the runs record (bit-exact reruns need the same kind), for the setup line."""
    cpus = sorted({r["cpu"] for _, _, r in cells if r.get("cpu")})
    missing = sum(1 for _, _, r in cells if not r.get("cpu"))
    text = "; ".join(cpus) if cpus else "CPU not recorded by these runs"
    if cpus and missing:
        text += f"; {missing} run(s) predate the record"
    return text


def write_page(cells: list[tuple[str, str, dict]]) -> None:
    import torch

    page = DOCS / "results.md"
    has = {(e, r["config"]["data.name"]) for _, e, r in cells}  # (experiment, dataset) with runs
    c1, c1_text, c2, c2_text, depths = {}, {}, {}, {}, {}
    for ds in ("digits", "listops"):
        if ("schemes", ds) in has:
            c1_text[ds], c1[ds] = claim1(cells, ds)
        if ("groups", ds) in has:
            c2_text[ds], c2[ds], depths[ds] = claim2(cells, ds)
    # The language model: claims 1-2 in bits per byte; claim 2's table ends with the narrower model.
    lm1_text, lm1 = claim1(cells, LM, "archs", BPB) if ("archs", LM) in has else (NOT_RUN, {})
    lm2_text, lm2, _ = (
        claim2(cells, LM, BPB, "capacity") if ("groups", LM) in has else (NOT_RUN, [], 0)
    )
    full = [
        a["row"] for a in arms(cells, "digits", "schemes") if a["cfg"]["model.arch"] == "parallel"
    ]
    ref = fmt(full[0]["acc"], full[0]["acc_sd"]) + f" % ({full[0]['n']} seeds)" if full else "—"
    c3_text, c3 = claim3(cells) if any(e == "solvers" for _, e, _ in cells) else (NOT_RUN, [])
    headline_plot(c1, c2, depths, c3, full[0] if full else None, DOCS / "results.png")

    def sections(texts: dict[str, str]) -> str:
        return "".join(f"### {ds}\n\n{text}\n\n" for ds, text in texts.items())

    listops = load_sweep(SWEEPS["study-listops"])[0].config  # a sweep's scale: any cell's
    lm = {c.experiment: c.config for c in load_sweep(SWEEPS["study-lm"])}  # {lm[archs].…}
    runs = {r["run"]: r["wall_time_s"] for s, _, r in cells if s in STUDY}  # the classifiers'
    names = [*SWEEPS, *INFERENCE]
    text = (DOCS / "results.template.md").read_text().partition("\n")[2]  # line 1: a note
    page_text = text.format(
        conclusions=conclusions(page),
        machine=platform.machine(),
        cpus=cpus_line(cells),
        torch=torch.__version__.split("+")[0],
        python=platform.python_version(),
        digits=load_sweep(SWEEPS["study-digits"])[0].config,
        default_epochs=build_config(ROOT / "configs/default.yaml").train.epochs,
        listops=listops,
        example_pp=100 / listops.data.test_size,
        sweep_costs=sweep_costs(cells, STUDY),
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
        lm_conclusions=conclusions(page, "lm-conclusions"),
        lm=lm,
        lm_costs=sweep_costs(cells, ["study-lm"]),
        lm_claim1=lm1_text,
        lm_claim2=lm2_text,
        **{f"variants_{k}": conclusions(page, f"variants-{k}") for k in ("time", "rk", "reg")},
        lm_budget=conclusions(page, "lm-budget"),
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


def dopri5_held() -> str:
    """Claim 3's dopri5 arm retrained with dropout held within solves, and its regularised
    arm, each paired by seed with the euler × 6 block of the same sweep (markdown)."""
    cells = [
        (HELD, cell.experiment, read_run(cell.run_dir))
        for cell in load_sweep(SWEEPS_HELD)
        if (cell.run_dir / "summary.json").is_file()
    ]
    found = {e: next(iter(arms(cells, "digits", e)), None) for e in HELD_ARMS}
    rows = []
    for name, label in HELD_ARMS.items():
        arm = found[name]
        if arm is None:
            rows.append([label, *["—"] * 8])
            continue
        r = arm["row"]
        versus = [found["euler"], found["dopri5"]] if name == "dopri5-reg" else [found["euler"]]
        deltas = []
        for other in versus if name != "euler" else []:
            diffs, mean_sd, seeds, p = paired_cells(compare(arm, other))
            deltas.append(f"{mean_sd} ({diffs}; {seeds}; p {p})")
        nfe = " / ".join(f"{x['nfe']:g}" for _, x in sorted(arm["seeds"].items()))
        rows.append([label, f"{r['nfe']:.3g} ({nfe})", fmt(r["acc"], r["acc_sd"])])
        rows[-1] += [deltas[0] if deltas else "", deltas[1] if len(deltas) > 1 else ""]
        rows[-1] += [f"{r['wall']:.0f}", r["n"]]
    head = ["arm", "test NFE (per seed)", "test acc %", "Δ vs euler × 6, paired (pp)"]
    head += ["Δ vs dopri5, paired (pp)", "train s / run", "seeds"]
    return md_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only rewrite the page from the runs")
    parser.add_argument(
        "--held",
        action="store_true",
        help="print claim 3's dopri5 arms retrained with dropout held (study-digits-dopri5-held)",
    )
    args = parser.parse_args()
    os.chdir(ROOT)  # the sweeps' out folders are relative to the repository root
    if args.held:
        print(dopri5_held())
        return
    DATA.mkdir(parents=True, exist_ok=True)
    if not args.no_run:
        run_all()
    write_page(collect())


if __name__ == "__main__":
    main()
