#!/usr/bin/env python
"""Regenerate docs/results.md: the seed paper's three claims, measured with odetx itself.

Run from the repository root with the virtual environment active::

    OMP_NUM_THREADS=1 python docs/make_results.py

What it does, in order:

1. Runs each study sweep through odetx's own CLI, two processes at a time::

       odetx compare --sweep configs/sweeps/study-listops.yaml
       odetx compare --sweep configs/sweeps/study-digits.yaml   (then study-digits-dopri5.yaml)

   each with ``--csv docs/data/<sweep>.csv --json docs/data/<sweep>.json --plot
   docs/<sweep>.png``. Sweeps resume: complete cells are skipped, so a second run of
   this script only re-tabulates (seconds). The run directories go under
   ``runs/study/`` (git-ignored).
2. Integrates two trained digits models with other solvers, step counts and schemes
   (``odetx compare RUN/best.pt --solver … --steps …``, the inference-time view) and
   keeps its CSV/JSON/plot the same way.
3. Reads every cell's ``summary.json`` (through ``odetx.compare.sweep.load_sweep`` and
   ``odetx.compare.runs.read_run``), pairs runs by seed (same seed = same data order and
   split; only the arm differs) and writes the tables of ``docs/results.md`` and the
   headline figure ``docs/results.png``.

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
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DATA = DOCS / "data"
LOGS = ROOT / "runs" / "study" / "logs"
sys.path.insert(0, str(ROOT))

from odetx.compare.runs import paired, read_run  # noqa: E402
from odetx.compare.sweep import load_sweep  # noqa: E402
from odetx.config import Config, build_config  # noqa: E402

SWEEPS = {
    "study-digits": "configs/sweeps/study-digits.yaml",
    "study-listops": "configs/sweeps/study-listops.yaml",
    "study-digits-dopri5": "configs/sweeps/study-digits-dopri5.yaml",
}
# Two concurrent processes (2 CPU cores); each lane runs its sweeps one after another.
# ListOps is the longest sweep, so it gets a lane of its own.
LANES = [["study-listops"], ["study-digits", "study-digits-dopri5"]]
# The inference-time view: one trained model, integrated with other solvers/steps/schemes.
G1_RUN = "runs/study/digits/groups/groups=1,steps=6,seed=0"
SEQ_RUN = "runs/study/digits/schemes/arch=sequential,seed=0"
INFERENCE = {
    "inference-g1": [
        f"{G1_RUN}/best.pt",
        "--solver",
        "euler",
        "--solver",
        "midpoint",
        "--solver",
        "rk4",
        "--solver",
        "dopri5",
        "--steps",
        "1,2,3,6,12,24,48,96",
        "--rtol",
        "1e-3",
        "--atol",
        "1e-4",
    ],
    "inference-schemes": [
        f"{SEQ_RUN}/best.pt",
        "--solver",
        "euler",
        "--solver",
        "rk4",
        "--arch",
        "sequential",
        "--arch",
        "strang",
        "--arch",
        "parallel",
        "--steps",
        "1,2,4,8,16",
    ],
}
BEGIN, END = "<!-- conclusions:begin -->", "<!-- conclusions:end -->"
PLACEHOLDER = "_(conclusions to be written after reading the numbers below)_"


# ----------------------------------------------------------------------------- running


def odetx(args: list[str], log: Path) -> float:
    """Run ``python -m odetx ARGS`` (output to ``log``); returns the wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.monotonic()
    with log.open("w") as f:
        rc = subprocess.call(
            [sys.executable, "-m", "odetx", *args],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if rc != 0:
        raise SystemExit(f"odetx {' '.join(args)} failed (exit {rc}); see {log}")
    return time.monotonic() - start


def outputs(name: str) -> list[str]:
    return [
        "--csv",
        f"docs/data/{name}.csv",
        "--json",
        f"docs/data/{name}.json",
        "--plot",
        f"docs/{name}.png",
    ]


def run_all() -> dict[str, float]:
    DATA.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}
    errors: list[BaseException] = []

    def lane(names: list[str]) -> None:
        try:
            for name in names:
                walls[name] = odetx(
                    ["compare", "--sweep", SWEEPS[name], *outputs(name)], LOGS / f"{name}.log"
                )
                print(f"{name}: {walls[name]:.0f} s", flush=True)
        except BaseException as e:  # noqa: BLE001 - reported after the join
            errors.append(e)

    threads = [threading.Thread(target=lane, args=(names,)) for names in LANES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for name, args in INFERENCE.items():
        walls[name] = odetx(["compare", *args, *outputs(name)], LOGS / f"{name}.log")
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    return walls


# ----------------------------------------------------------------------------- reading


def collect() -> list[dict]:
    """One record per (sweep, experiment, cell): the cell's grid values and its run's metrics."""
    records = []
    for sweep, path in SWEEPS.items():
        for cell in load_sweep(ROOT / path, ROOT / _out(path)):
            if not (cell.run_dir / "summary.json").is_file():
                continue
            run = read_run(cell.run_dir)
            arm = {k: v for k, v in cell.overrides.items() if k != "train.seed"}
            cfg = run["config"]
            records.append(
                {
                    "sweep": sweep,
                    "dataset": cfg["data.name"],
                    "experiment": cell.experiment,
                    "arm": tuple(sorted(arm.items())),
                    "seed": cell.overrides.get("train.seed", cfg.get("train.seed")),
                    "scheme": cfg["model.arch"],
                    "solver": cfg["solver.method"],
                    "steps": cfg["solver.steps"],
                    "groups": cfg["model.groups"],
                    "depth": cfg["model.depth"],
                    "rtol": cfg.get("solver.rtol"),
                    "epochs": cfg["train.epochs"],
                    "run": str(cell.run_dir.relative_to(ROOT)),
                    **{
                        k: run[k]
                        for k in (
                            "params",
                            "test_acc",
                            "test_acc_last",
                            "best_val_acc",
                            "nfe",
                            "wall_time_s",
                        )
                    },
                }
            )
    return records


def _out(path: str) -> str:
    text = (ROOT / path).read_text()
    return re.search(r"^out:\s*(\S+)", text, re.M).group(1)


def arm_runs(records, dataset, experiment, **match) -> dict[int, dict]:
    """seed -> record for the runs of one arm."""
    out = {}
    for r in records:
        if (
            r["dataset"] == dataset
            and r["experiment"] == experiment
            and all(r[k] == v for k, v in match.items())
        ):
            out[r["seed"]] = r
    return out


def stats(values: list[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def paired_runs(a: dict[int, dict], b: dict[int, dict], key: str = "test_acc") -> dict | None:
    """a − b per common seed (odetx.compare.runs.paired on one metric)."""
    return paired({s: r[key] for s, r in a.items()}, {s: r[key] for s, r in b.items()})


# ----------------------------------------------------------------------------- formatting


def pct(x: float | None, sd: float | None = None, digits: int = 1) -> str:
    if x is None:
        return "—"
    text = f"{100 * x:.{digits}f}"
    return text + (f" ± {100 * sd:.{digits}f}" if sd is not None else "")


def pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def arm_row(runs: dict[int, dict]) -> dict:
    rs = list(runs.values())
    acc, acc_sd = stats([r["test_acc"] for r in rs])
    last, last_sd = stats([r["test_acc_last"] for r in rs])
    nfe, _ = stats([r["nfe"] for r in rs])
    wall, _ = stats([r["wall_time_s"] for r in rs])
    return {
        "acc": acc,
        "acc_sd": acc_sd,
        "last": last,
        "last_sd": last_sd,
        "nfe": nfe,
        "wall": wall,
        "params": rs[0]["params"],
        "n": len(rs),
    }


def paired_cells(p: dict | None) -> list[str]:
    if p is None:
        return ["—"] * 4
    sd = f" ± {100 * p['sd']:.1f}" if p["sd"] is not None else ""
    return [
        " ".join(pp(d) for d in p["diffs"]),
        f"{pp(p['mean'])}{sd}",
        f"{p['a_wins']} / {p['b_wins']} / {p['ties']}",
        f"{p['p']:.2f}",
    ]


PAIRED_HEAD = [
    "per-seed difference (pp, seeds in order)",
    "mean ± sd (pp)",
    "seeds favouring first / second / tie",
    "sign-flip p",
]


def claim1(records, dataset) -> tuple[str, dict]:
    arms = {
        s: arm_runs(records, dataset, "schemes", scheme=s)
        for s in ("sequential", "parallel", "strang")
    }
    arms = {s: a for s, a in arms.items() if a}
    rows = []
    for s, runs in arms.items():
        r = arm_row(runs)
        rows.append(
            [
                f"`{s}`",
                f"{r['params']:,}",
                f"{r['nfe']:g}",
                pct(r["acc"], r["acc_sd"]),
                pct(r["last"], r["last_sd"]),
                f"{r['wall']:.0f}",
                r["n"],
            ]
        )
    text = md_table(
        [
            "scheme",
            "params",
            "NFE",
            "test acc % (best-val epoch)",
            "test acc % (last epoch)",
            "train s / run",
            "seeds",
        ],
        rows,
    )
    pairs = {}
    prow = []
    for a, b in (("parallel", "sequential"), ("strang", "sequential"), ("parallel", "strang")):
        if a in arms and b in arms:
            p = paired_runs(arms[a], arms[b])
            pairs[(a, b)] = p
            prow.append([f"{a} − {b}", *paired_cells(p)])
    text += (
        "\n\nPaired by seed (the two runs of a pair share the seed, hence the data split, "
        "batch order and augmentation stream; only the scheme differs):\n\n"
    )
    text += md_table(["comparison", *PAIRED_HEAD], prow)
    return text, pairs


def claim2(records, dataset, depth) -> tuple[str, list]:
    groups = sorted(
        {r["groups"] for r in records if r["dataset"] == dataset and r["experiment"] == "groups"},
        reverse=True,
    )
    full = arm_runs(records, dataset, "groups", groups=depth)
    rows, points = [], []
    for g in groups:
        runs = arm_runs(records, dataset, "groups", groups=g)
        r = arm_row(runs)
        p = paired_runs(runs, full) if g != depth else None
        rows.append(
            [
                g,
                next(iter(runs.values()))["steps"],
                f"{r['params']:,}",
                f"{r['params'] / arm_row(full)['params']:.2f}",
                f"{r['nfe']:g}",
                pct(r["acc"], r["acc_sd"]),
                *(paired_cells(p)[1:3] if p else ["—", "—"]),
                r["n"],
            ]
        )
        points.append((g, r, p))
    text = md_table(
        [
            "G",
            "steps per group",
            "params",
            "params / G=D",
            "NFE",
            "test acc %",
            f"Δ vs G={depth}, paired (pp)",
            f"seeds: G better / G={depth} better / tie",
            "seeds",
        ],
        rows,
    )
    return text, points


def equal_nfe_cell(q: dict | None, partner: int | None) -> str:
    """``mean ± sd vs euler × N (seeds a / b / t; p)``, blank without an equal-NFE partner."""
    if q is None:
        return ""
    _, mean_sd, seeds, p = paired_cells(q)
    return f"{mean_sd} vs euler × {partner} ({seeds}; p {p})"


# Claim 3's equal-NFE pairs: (solver, steps) -> the euler step count with the same NFE.
EQUAL_NFE = {("midpoint", 3): 6, ("rk4", 2): 8}


def claim3(records) -> tuple[str, list]:
    ds = "digits"
    base = arm_runs(records, ds, "solvers", solver="euler", steps=6)
    arms = []
    for r in records:
        if r["dataset"] == ds and r["experiment"] in ("solvers", "dopri5"):
            key = (r["solver"], r["steps"] if r["solver"] != "dopri5" else None)
            if key not in arms:
                arms.append(key)
    order = {"euler": 0, "midpoint": 1, "rk4": 2, "dopri5": 3}
    arms.sort(key=lambda k: (order.get(k[0], 9), k[1] or 0))
    rows, points = [], []
    for solver, steps in arms:
        if solver == "dopri5":
            runs = arm_runs(records, ds, "dopri5", solver="dopri5")
        else:
            runs = arm_runs(records, ds, "solvers", solver=solver, steps=steps)
        r = arm_row(runs)
        p = paired_runs(runs, base) if (solver, steps) != ("euler", 6) else None
        # The equal-NFE partner: euler with as many steps as this arm's NFE per forward.
        partner = EQUAL_NFE.get((solver, steps))
        partner_runs = (
            arm_runs(records, ds, "solvers", solver="euler", steps=partner) if partner else {}
        )
        q = paired_runs(runs, partner_runs) if partner_runs else None
        rtol = next(iter(runs.values()))["rtol"]
        label = f"`{solver}`" + (f" (rtol = atol = {rtol:g})" if solver == "dopri5" else "")
        rows.append(
            [
                label,
                steps if steps else "adaptive",
                f"{6 / steps:g}" if steps else "—",
                f"{r['nfe']:.3g}",
                pct(r["acc"], r["acc_sd"]),
                *(paired_cells(p)[1:3] if p else ["—", "—"]),
                equal_nfe_cell(q, partner),
                f"{r['wall']:.0f}",
                r["n"],
            ]
        )
        points.append((solver, steps, r, p, q))
    text = md_table(
        [
            "solver",
            "steps",
            "h",
            "NFE (test pass)",
            "test acc %",
            "Δ vs euler × 6, paired (pp)",
            "seeds: this better / euler × 6 better / tie",
            "Δ vs equal-NFE euler, paired (pp; seeds this / euler / tie; sign-flip p)",
            "train s / run",
            "seeds",
        ],
        rows,
    )
    return text, points


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
        rows.append(
            [
                r["scheme"],
                label,
                r["steps"] if r["steps"] is not None else f"rtol {r['rtol']:g}",
                f("h", "{:g}"),
                f("nfe", "{:.3g}"),
                pct(r["acc"]),
                f("delta_acc", "{:+.4f}") if r.get("delta_acc") is None else pp(r["delta_acc"]),
                f("error", "{:.2e}"),
                f("local_order", "{:.2f}"),
                f("order", "{:.2f}"),
                f("expected_order", "{}"),
            ]
        )
    text = md_table(
        [
            "scheme",
            "solver",
            "steps",
            "h",
            "NFE",
            "test acc %",
            "Δ acc (pp)",
            "logit error",
            "local order",
            "fit order",
            "theory",
        ],
        rows,
    )
    # odetx's terminal table shows the trained-with row in italics; this page sets it in bold.
    notes = "\n".join(f"- {n.replace('italic row', 'bold row')}" for n in table["notes"])
    return f"{text}\n\n{notes}"


# ----------------------------------------------------------------------------- plotting

DEPTH = {"digits": 6, "listops": 4}


def p_is_full(groups: int, dataset: str) -> bool:
    return groups == DEPTH[dataset]


def headline_plot(c1: dict, c2: dict, c3_points: list, reference: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    # (1) paired per-seed differences against the sequential layer.
    ax = axes[0]
    ticks, labels = [], []
    x = 0
    for ds, pairs in c1.items():
        for (a, b), p in pairs.items():
            if b != "sequential" or p is None:
                continue
            ys = [100 * d for d in p["diffs"]]
            jitter = [x + 0.06 * (i - (len(ys) - 1) / 2) for i in range(len(ys))]
            ax.scatter(
                jitter, ys, s=22, alpha=0.8, color="tab:blue" if a == "parallel" else "tab:orange"
            )
            ax.errorbar(
                [x + 0.32],
                [100 * p["mean"]],
                yerr=[100 * (p["sd"] or 0)],
                fmt="D",
                color="black",
                capsize=4,
            )
            ticks.append(x)
            labels.append(f"{ds}\n{a} − seq")
            x += 1
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("test accuracy difference (percentage points)")
    ax.set_title(
        "claim 1: scheme vs sequential, paired by seed\n(dots: seeds; ◆: mean ± sd)", fontsize=10
    )
    ax.grid(alpha=0.3, axis="y")
    # (2) parameters against accuracy change, gradual weight sharing.
    ax = axes[1]
    for ds, points in c2.items():
        full = next(r["params"] for g, r, _ in points if p_is_full(g, ds))
        xs = [r["params"] / full for _, r, _ in points]
        ys = [100 * (p["mean"] if p else 0.0) for _, _, p in points]
        es = [100 * (p["sd"] or 0.0) if p else 0.0 for _, _, p in points]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=ds)
        for (g, _, _), xi, yi in zip(points, xs, ys, strict=True):
            ax.annotate(f"G={g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("parameters relative to the unshared model (G = D)")
    ax.set_ylabel("test accuracy − G=D accuracy (pp, paired)")
    ax.set_title("claim 2: weight sharing (parallel, h = 1, equal NFE)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    # (3) accuracy against NFE for the weight-shared block.
    ax = axes[2]
    colours = {
        "euler": "tab:blue",
        "midpoint": "tab:green",
        "rk4": "tab:red",
        "dopri5": "tab:purple",
    }
    seen = set()
    for solver, steps, r, *_ in c3_points:
        ax.errorbar(
            [r["nfe"]],
            [100 * r["acc"]],
            yerr=[100 * (r["acc_sd"] or 0)],
            marker="o",
            capsize=3,
            color=colours.get(solver, "black"),
            label=solver if solver not in seen else None,
        )
        seen.add(solver)
        ax.annotate(
            f"{steps} st" if steps else "adaptive",
            (r["nfe"], 100 * r["acc"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    if reference:
        lo, hi = (
            100 * (reference["acc"] - (reference["acc_sd"] or 0)),
            100 * (reference["acc"] + (reference["acc_sd"] or 0)),
        )
        ax.axhspan(lo, hi, color="grey", alpha=0.15)
        ax.axhline(
            100 * reference["acc"],
            color="grey",
            ls="--",
            lw=1,
            label=f"unshared G = 6, euler × 1 ({reference['params'] / 1e3:.0f}K params)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("NFE per forward (test pass)")
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


def sweep_costs(records) -> str:
    rows = []
    for sweep, path in SWEEPS.items():
        rs = [r for r in records if r["sweep"] == sweep]
        if not rs:
            continue
        runs = {r["run"]: r for r in rs}
        total = sum(r["wall_time_s"] for r in runs.values())
        rows.append(
            [
                f"`{path}`",
                len(rs),
                len(runs),
                f"{total / 60:.1f}",
                f"{min(r['wall_time_s'] for r in runs.values()):.0f}–"
                f"{max(r['wall_time_s'] for r in runs.values()):.0f}",
            ]
        )
    return md_table(
        ["sweep", "cells", "runs", "training minutes (sum over runs)", "s per run (min–max)"], rows
    )


def sweep_config(name: str) -> Config:
    """The resolved config of a study sweep's first cell: the sweep's scale (epochs, data
    sizes) is common to all its cells, so the page states what the sweep file asks for."""
    return load_sweep(ROOT / SWEEPS[name])[0].config


def total_costs(records) -> tuple[int, float]:
    """(runs, process-minutes): training wall time summed over the distinct runs."""
    runs = {r["run"]: r["wall_time_s"] for r in records}
    return len(runs), sum(runs.values()) / 60


def write_page(records: list[dict]) -> None:
    page = DOCS / "results.md"
    kept = conclusions(page)
    c1, c1_text, c2, c2_text = {}, {}, {}, {}
    depth = DEPTH
    for ds in ("digits", "listops"):
        if any(r["dataset"] == ds and r["experiment"] == "schemes" for r in records):
            c1_text[ds], c1[ds] = claim1(records, ds)
        if any(r["dataset"] == ds and r["experiment"] == "groups" for r in records):
            c2_text[ds], c2[ds] = claim2(records, ds, depth[ds])
    full_runs = arm_runs(records, "digits", "schemes", scheme="parallel")
    ref = "—"
    if full_runs:
        full_row = arm_row(full_runs)
        ref = pct(full_row["acc"], full_row["acc_sd"]) + f" % ({full_row['n']} seeds)"
    c3_text, c3 = (
        claim3(records)
        if any(r["experiment"] == "solvers" for r in records)
        else ("_(not run yet)_", [])
    )
    full = arm_runs(records, "digits", "schemes", scheme="parallel")
    headline_plot(c1, c2, c3, arm_row(full) if full else None, DOCS / "results.png")

    import torch

    digits, listops = sweep_config("study-digits"), sweep_config("study-listops")
    default_epochs = build_config(ROOT / "configs/default.yaml").train.epochs
    n_runs, proc_min = total_costs(records)
    cmd = "OMP_NUM_THREADS=1 python docs/make_results.py"
    parts = [
        "# Results: the seed paper's claims, reproduced at CPU scale",
        "",
        "<!-- Generated by docs/make_results.py from the run directories under runs/study/; "
        "edit only the conclusions block (between the conclusions markers), which the script "
        "keeps. -->",
        "",
        "Zhong et al. (2022), *A Neural ODE Interpretation of Transformer Layers*, claim that "
        "(1) running attention and MLP in parallel beats the standard sequential layer; "
        "(2) sharing weights across layers trades parameters for accuracy gradually; and "
        "(3) for image classification, a weight-shared block integrated with a better ODE "
        "solver is more accurate. This page tests the three claims with odetx on two tasks "
        "that run offline on a CPU. Every arm gets the same budget (epochs, schedule, "
        "optimiser, data order per seed); nothing was tuned per arm.",
        "",
        "![headline](results.png)",
        "",
        "*`docs/results.png`: left, claim 1 as per-seed paired differences (a dot above 0 is "
        "a seed where the scheme beat the sequential layer); middle, claim 2 as accuracy "
        "change against parameters; right, claim 3 as accuracy against NFE.*",
        "",
        "## Conclusions",
        "",
        BEGIN,
        kept,
        END,
        "",
        "## Setup and budget",
        "",
        f"- Machine: 2 shared CPU cores ({platform.machine()}), no GPU, torch "
        f"{torch.__version__.split('+')[0]}, Python {platform.python_version()}; every run "
        "single-threaded (`OMP_NUM_THREADS=1`), two runs at a time. Other work shared the "
        "cores part of the time, so wall times are upper bounds.",
        "- **digits** (embedded UCI 8×8 digits, split 1,257 / 181 / 359; one test image = "
        "0.28 pp): `vit-micro` (D = 6, dim 96, 4 heads, MLP ×2, patch 4), the embedded "
        "default recipe (`configs/default.yaml`: AdamW lr 3e-3, warmup 2, cosine, label "
        f"smoothing 0.1, mixup 0.2) for **{digits.train.epochs} epochs** instead of "
        f"{default_epochs}.",
        "- **ListOps** (generated offline, LRA's task definition): "
        f"{listops.data.train_size:,} / {listops.data.val_size:,} / "
        f"{listops.data.test_size:,} expressions of length "
        f"{listops.data.seq_len_min}–{listops.data.seq_len_max}, depth ≤ "
        f"{listops.data.max_depth} (one test example = "
        f"{100 / listops.data.test_size:.2g} pp; always predicting the majority class "
        "scores about 10–20 %); `enc-tiny` (D = 4, dim 64, mean pooling), "
        f"`configs/listops.yaml`'s optimiser for **{listops.train.epochs} epochs**.",
        "- Accuracy is test accuracy at the epoch with the best validation accuracy unless "
        "said otherwise; ± is the sample standard deviation over seeds. Paired comparisons "
        "take, per seed, the difference of two arms that share everything but the arm; the "
        "sign-flip p is the exact two-sided paired permutation test of the mean difference "
        "(with 5 seeds it cannot go below 0.06, with 3 seeds not below 0.25).",
        "- NFE: evaluations of the full field A + M per forward pass (A or M alone count one "
        "half, so `strang` costs 1.5 per layer); for dopri5 it is the count on the final "
        "test pass.",
        "",
        sweep_costs(records),
        "",
        f"All sweeps together: {n_runs} runs, {proc_min:.1f} process-minutes of training "
        "(training wall time summed over runs; two ran at a time, so the study's wall time "
        "is roughly half of that; the measured wall time is in the conclusions' budget line).",
        "",
        "Regenerate everything (trains only what is missing; run directories under "
        "`runs/study/`, git-ignored):",
        "",
        "```bash",
        cmd,
        "# which runs, two at a time:",
        "odetx compare --sweep configs/sweeps/study-digits.yaml "
        "--csv docs/data/study-digits.csv --json docs/data/study-digits.json "
        "--plot docs/study-digits.png",
        "odetx compare --sweep configs/sweeps/study-listops.yaml "
        "--csv docs/data/study-listops.csv --json docs/data/study-listops.json "
        "--plot docs/study-listops.png",
        "odetx compare --sweep configs/sweeps/study-digits-dopri5.yaml "
        "--csv docs/data/study-digits-dopri5.csv --json docs/data/study-digits-dopri5.json "
        "--plot docs/study-digits-dopri5.png",
        *[
            f"odetx compare {' '.join(args)} " + " ".join(outputs(name))
            for name, args in INFERENCE.items()
        ],
        "```",
        "",
        "The tables below are computed from the runs' `summary.json` files; odetx's own "
        "pooled tables are in `docs/data/*.csv|json` and its plots in `docs/study-*.png`, "
        "`docs/inference-*.png`.",
        "",
        "## Claim 1: parallel vs sequential (vs Strang) at equal parameters and budget",
        "",
    ]
    for ds in c1_text:
        parts += [f"### {ds}", "", c1_text[ds], ""]
    parts += [
        "## Claim 2: gradual weight sharing (parallel scheme, step size h = 1)",
        "",
        "G groups each own one layer's weights and integrate over a span of D/G with D/G "
        "Euler steps, so every row has the same NFE as the ordinary model; only the number "
        "of distinct weights changes.",
        "",
    ]
    for ds in c2_text:
        parts += [f"### {ds}", "", c2_text[ds], ""]
    parts += [
        "## Claim 3: a weight-shared block (G = 1) integrated by better solvers (digits)",
        "",
        "One block's weights (parallel scheme) integrated over t ∈ [0, 6]. Equal-steps view: "
        "euler / midpoint / rk4 with 2 steps (h = 3; NFE 2 / 4 / 8) and with 6 steps (h = 1; "
        "NFE 6 / 12 / 24). Equal-NFE view: euler × 6 vs midpoint × 3 (NFE 6) and euler × 8 "
        "vs rk4 × 2 (NFE 8). dopri5 with loose tolerances chooses its own steps. Each arm is "
        f"trained with the solver named, for the same {digits.train.epochs} epochs "
        "(equal in epochs, not in "
        "seconds: a higher NFE costs proportionally more time, shown per run). The "
        "unshared ordinary model (G = 6, parallel, euler × 1, 452K parameters) scores "
        f"{ref} on the same budget.",
        "",
        c3_text,
        "",
        "## The inference-time view: one trained model, other solvers",
        "",
        f"`{G1_RUN}` (the G = 1 block trained with euler × 6), integrated after training "
        "with euler / midpoint / rk4 at 1–96 steps and dopri5 (rtol 1e-3, atol 1e-4); the "
        "trained-with row is bold. `logit error` is the float64 relative distance of the "
        "logits from a fine unsplit rk4 solve; the orders are the fitted slopes of that "
        "error against h.",
        "",
        inference_table("inference-g1"),
        "",
        "![inference](inference-g1.png)",
        "",
        f"`{SEQ_RUN}` (an ordinary sequential model, G = D = 6, euler × 1) integrated with "
        "the three schemes at 1–16 steps per layer: the splitting orders (Lie–Trotter 1, "
        "Strang 2, unsplit = the solver's).",
        "",
        inference_table("inference-schemes"),
        "",
        "![inference schemes](inference-schemes.png)",
        "",
        "## With a GPU: the paper's own setting",
        "",
        "`configs/cifar100-deit-tiny.yaml` is the seed paper's setting (DeiT-Ti on CIFAR-100 "
        "at 32 px, patch 4, 64 tokens, DeiT's optimisation: 300 epochs, AdamW lr 2.5e-4 at "
        "batch 256, mixup 0.8 / CutMix 1.0). Expected cost: 300 epochs × 50k images, about "
        "1–2 GPU-hours per run on one modern GPU with `--amp bf16`; the three claims need "
        "roughly 3 schemes × 5 seeds + 4 sharing levels + 4 solvers ≈ 25–30 runs, i.e. "
        "1–2 GPU-days. Sweep it the same way, e.g. with a sweep file whose `base` is that "
        "recipe (`--set train.epochs=…` to shorten):",
        "",
        "```bash",
        "odetx train -c configs/cifar100-deit-tiny.yaml --data-dir DIR --amp bf16 "
        "--arch sequential",
        "odetx train -c configs/cifar100-deit-tiny.yaml --data-dir DIR --amp bf16 --arch parallel",
        "```",
        "",
        "None of those runs is part of this page.",
        "",
    ]
    page.write_text("\n".join(parts))
    (DATA / "paired.json").write_text(
        json.dumps(
            {
                "claim1": {
                    ds: {f"{a}-{b}": p for (a, b), p in pairs.items()} for ds, pairs in c1.items()
                },
                "claim2": {
                    ds: [{"groups": g, **r, "paired_vs_full": p} for g, r, p in pts]
                    for ds, pts in c2.items()
                },
                "claim3": [
                    {
                        "solver": s,
                        "steps": st,
                        **r,
                        "paired_vs_euler6": p,
                        "paired_vs_equal_nfe_euler": q,
                    }
                    for s, st, r, p, q in c3
                ],
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {page.relative_to(ROOT)}, docs/results.png, docs/data/paired.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--no-run", action="store_true", help="only rewrite docs/results.md from the finished runs"
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    DATA.mkdir(parents=True, exist_ok=True)
    if not args.no_run:
        run_all()
    write_page(collect())


if __name__ == "__main__":
    main()
