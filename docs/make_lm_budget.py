#!/usr/bin/env python
"""docs/results.md's section "Language model at the recipe's budget", from the study's runs.

Run from the repository root with the virtual environment active, while the study trains
(``docs/study_lanes.py configs/sweeps/study-lm-budget.yaml --lanes 2 …``) or after::

    python docs/make_lm_budget.py            # write the section, plot and data; print the summary
    python docs/make_lm_budget.py --check    # only print how many cells have finished

It trains nothing. It reads every finished cell of ``configs/sweeps/study-lm-budget.yaml``
(``load_sweep``, ``runs.read_run`` and the run's ``metrics.csv``; a cell without
``summary.json`` is a missing seed), pools each arm's seeds and pairs arms by seed with
docs/make_results.py's helpers, and writes

- the section, into docs/results.md between ``<!-- lm-budget:begin -->`` and
  ``<!-- lm-budget:end -->`` (the first time, before "## Variants from later papers"), keeping
  the hand-written text between the ``lm-budget-conclusions`` markers inside it (make_results.py
  keeps the whole block when it regenerates the page);
- docs/study-lm-budget-curves.png: validation bits per byte against training tokens, mean ± sd
  over seeds, one panel per comparison;
- docs/data/study-lm-budget.json and .csv: one record per cell, its learning curve included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "docs")]

from make_results import (  # noqa: E402
    BPB,
    DATA,
    DOCS,
    arms,
    claim1,
    claim2,
    compare,
    conclusions,
    cpus_line,
    fmt,
    md_table,
    paired_cells,
    signed,
)

from odetx.artefacts import RunDir  # noqa: E402
from odetx.compare.runs import RunError, paired, read_run  # noqa: E402
from odetx.compare.sweep import load_sweep, setting_of  # noqa: E402

NAME = "study-lm-budget"
SWEEP = f"configs/sweeps/{NAME}.yaml"
EARLIER = "configs/sweeps/study-lm.yaml"  # the language-model study of the section before
LANES = (
    f"python docs/study_lanes.py {SWEEP} --lanes 2 "
    "--first archs,groups,capacity "
    "--first solvers:midpoint/2,time:film/1,modern:sequential/4/1,modern:parallel/4/1 "
    "--first solvers:rk4/1,time:basis/2,rk --first solvers:euler/1,solvers:midpoint/1,modern"
)
BEGIN, END = "<!-- lm-budget:begin -->", "<!-- lm-budget:end -->"
BEFORE = "## Variants from later papers"  # the section goes in front of this one the first time
# Arm name -> (experiment, the config values that pick it out of that experiment).
ARMS = {
    "sequential": ("archs", {"model.arch": "sequential"}),
    "parallel": ("archs", {"model.arch": "parallel"}),  # G = 4
    "strang": ("archs", {"model.arch": "strang"}),
    "G = 2": ("groups", {"model.groups": 2}),
    "G = 1": ("groups", {"model.groups": 1}),  # euler × 4
    "dim 64": ("capacity", {}),
    "midpoint × 2": ("solvers", {"solver.method": "midpoint", "solver.steps": 2}),
    "rk4 × 1": ("solvers", {"solver.method": "rk4", "solver.steps": 1}),
    "euler × 1": ("solvers", {"solver.method": "euler", "solver.steps": 1}),
    "midpoint × 1": ("solvers", {"solver.method": "midpoint", "solver.steps": 1}),
    "G = 1 film": ("time", {"model.time": "film"}),
    "G = 1 basis K = 2": ("time", {"model.time": "basis"}),
    "heun × 2": ("rk", {"solver.method": "heun"}),
    "rk2-learned × 2": ("rk", {"solver.method": "rk2-learned"}),
    "modern sequential": ("modern", {"model.arch": "sequential"}),
    "modern parallel": ("modern", {"model.arch": "parallel", "model.groups": 4}),
    "modern strang": ("modern", {"model.arch": "strang"}),
    "modern G = 1": ("modern", {"model.arch": "parallel", "model.groups": 1}),
}
COUNTERPART = {f"modern {a}": a for a in ("sequential", "parallel", "strang", "G = 1")}
# Section key -> (experiments it reports, arms, paired comparisons a − b, plot panel title).
SECTIONS = {
    "claim1": (
        ["archs"],
        ["sequential", "parallel", "strang"],
        [("parallel", "sequential"), ("strang", "sequential"), ("parallel", "strang")],
        "claim 1: archs (G = 4, euler × 1)",
    ),
    "claim2": (
        ["groups", "capacity"],
        ["parallel", "G = 2", "G = 1", "dim 64"],
        [("G = 2", "parallel"), ("G = 1", "parallel"), ("dim 64", "parallel")],
        "claim 2: sharing (parallel = G = 4) and dim 64",
    ),
    "claim3": (
        ["solvers"],
        ["G = 1", "midpoint × 2", "rk4 × 1", "euler × 1", "midpoint × 1"],
        [
            ("midpoint × 2", "G = 1"),
            ("rk4 × 1", "G = 1"),
            ("rk4 × 1", "midpoint × 2"),
            ("midpoint × 1", "euler × 1"),
            ("rk4 × 1", "euler × 1"),
            ("rk4 × 1", "midpoint × 1"),
        ],
        "claim 3: the G = 1 block's solvers (G = 1 = euler × 4)",
    ),
    "time": (
        ["time"],
        ["G = 2", "G = 1", "G = 1 film", "G = 1 basis K = 2"],
        [
            ("G = 1 film", "G = 1"),
            ("G = 1 basis K = 2", "G = 1"),
            ("G = 1 film", "G = 2"),
            ("G = 1 basis K = 2", "G = 2"),
        ],
        "time-dependent shared blocks (euler × 4)",
    ),
    "rk": (
        ["rk"],
        ["G = 1", "heun × 2", "rk2-learned × 2"],
        [("rk2-learned × 2", "heun × 2"), ("rk2-learned × 2", "G = 1"), ("heun × 2", "G = 1")],
        "learned RK at NFE 4 (G = 1 = euler × 4)",
    ),
    "modern": (
        ["modern"],
        ["modern sequential", "modern parallel", "modern strang", "modern G = 1"],
        [
            ("modern parallel", "modern sequential"),
            ("modern strang", "modern sequential"),
            ("modern parallel", "modern strang"),
            *COUNTERPART.items(),
            ("modern G = 1", "modern parallel"),
        ],
        "modern field (dashed: its GPT-2-field counterpart)",
    ),
}
HEADINGS = {
    "claim1": (
        "Claim 1: sequential vs parallel vs Strang",
        "Experiment `archs`: G = D = 4, euler × 1 (NFE 4; Strang 6).",
    ),
    "claim2": (
        "Claim 2: gradual weight sharing, and the capacity row",
        "Parallel, h = 1, so NFE 4 in every row: G = 4 is claim 1's parallel arm, G = 2 and 1 are "
        "experiment `groups`; the last row (experiment `capacity`) is the unshared model at dim "
        "64, with about as few parameters as G = 1.",
    ),
    "claim3": (
        "Claim 3: the shared block (G = 1) with better solvers",
        "Parallel, G = 1 (experiment `solvers`; euler × 4 is claim 2's G = 1 arm). At equal NFE "
        "4: euler × 4, midpoint × 2, rk4 × 1; at equal steps (1): euler, midpoint, rk4 × 1.",
    ),
    "time": (
        "Time-dependent shared blocks",
        "Experiment `time`: the G = 1 block made a function of depth time, by FiLM of its norms "
        "(`film`) or by K = 2 Legendre weight terms (`basis`, the parameters of G = 2), "
        "euler × 4 (NFE 4), against the plain G = 1 and G = 2 blocks (claim 2).",
    ),
    "rk": (
        "Learned Runge–Kutta at equal NFE",
        "Experiment `rk`: G = 1, two steps of a learned two-stage scheme (`rk2-learned`) or of "
        "Heun's, NFE 4 each, and both against euler × 4 (claim 2's G = 1).",
    ),
    "modern": (
        "The modern field: RMSNorm, SwiGLU, rotary positions",
        "Experiment `modern`: claims 1 and 2 with the modern layer; same budget and G = 4 arms "
        "as above, plus G = 1 × 4.",
    ),
}
PAIR_HEAD = [
    "comparison",
    f"per-seed difference ({BPB.unit}, seeds in order)",
    f"mean ± sd ({BPB.unit})",
    "seeds favouring first / second / tie",
    "sign-flip p",
]
RULE = (
    "Verdict: **ends better** when the best-validation difference favours the same arm on every "
    "paired seed (all but one when there are 4 or more), **starts faster** when only the epoch-1 "
    "difference does so (the early lead is within the seed noise at the end), **no clear "
    "difference** otherwise, and **too few seeds** below 3 paired seeds."
)


# ----------------------------------------------------------------------------- reading


def arm_of(experiment: str, flat: dict) -> str | None:
    """The arm a cell or pooled arm of ``experiment`` belongs to (its flat config)."""
    for name, (exp, match) in ARMS.items():
        if exp == experiment and all(flat.get(k) == v for k, v in match.items()):
            return name
    return None


def collect(out: str | None = None) -> list[tuple]:
    """(cell, arm, run or None) for every cell of the sweep (cwd = ROOT). A finished run also
    holds ``curve`` (validation bits per byte per epoch) and its summary's torch and threads."""
    rows = []
    for cell in load_sweep(SWEEP, out):
        run = None
        if (cell.run_dir / "summary.json").is_file():
            try:
                run = read_run(cell.run_dir)
            except RunError as e:  # e.g. a summary being written: counted as missing
                print(f"skipped {cell.run_dir}: {e.reason}", file=sys.stderr)
        if run is not None:
            metrics = RunDir(cell.run_dir).read_metrics()
            run["curve"] = [float(r["val_bpb"]) if r.get("val_bpb") else None for r in metrics]
            summary = json.loads((cell.run_dir / "summary.json").read_text(encoding="utf-8"))
            run |= {k: summary.get(k) for k in ("torch", "threads", "best_epoch")}
        rows.append((cell, arm_of(cell.experiment, setting_of(cell.config)), run))
    return rows


def pooled(cells: list[tuple], dataset: str) -> dict[str, dict]:
    """Arm name -> its seeds pooled (``make_results.arms``), for arms with a finished seed."""
    found = {}
    for exp in dict.fromkeys(e for e, _ in ARMS.values()):
        for arm in arms(cells, dataset, exp, m=BPB):
            name = arm_of(exp, arm["cfg"])
            if name is not None:
                found[name] = arm
    return found


# ----------------------------------------------------------------------------- tables


def arms_table(found: dict, names: list[str]) -> str:
    rows = []
    for name in names:
        arm = found.get(name)
        if arm is None:
            rows.append([f"`{name}`", *["—"] * 6, 0])
            continue
        r, cfg = arm["row"], arm["cfg"]
        best, last = (fmt(r[n], r[f"{n}_sd"], BPB) for n in BPB.names)
        steps = f"{cfg['solver.method']} × {cfg['solver.steps']}"
        rows.append([f"`{name}`", steps, f"{r['params']:,}", f"{r['nfe']:g}", best, last])
        rows[-1] += [f"{r['wall']:.0f}", r["n"]]
    head = ["arm", "solver × steps per group", "params", "NFE"]
    head += [f"{BPB.label} (best-val epoch)", f"{BPB.label} (last epoch)", "train s / run", "seeds"]
    return md_table(head, rows)


def pairs_table(found: dict, pairs: list[tuple[str, str]]) -> tuple[str, dict]:
    out, rows = {}, []
    for a, b in pairs:
        out[f"{a} − {b}"] = p = compare(found.get(a), found.get(b), BPB)
        rows.append([f"{a} − {b}", *paired_cells(p, BPB)])
    return md_table(PAIR_HEAD, rows), out


def missing(names: list[str], seeds: dict) -> str:
    """A note naming each arm's unfinished seeds (an arm under 2 seeds has no sd)."""
    parts = []
    for name in names:
        want, done = seeds.get(name, ([], []))
        left = [str(s) for s in want if s not in done]
        if left:
            few = {0: " (none finished)", 1: " (1 seed: no sd)"}.get(len(done), "")
            parts.append(f"`{name}` seed {', '.join(left)}{few}")
    return f"\n\n_Not finished yet: {'; '.join(parts)}._" if parts else ""


def at(curve: list, when: int | None) -> float | None:
    """Validation bits per byte after epoch ``when`` (from 1), or the best (``None``)."""
    values = [v for v in curve if v is not None]
    if when is None:
        return min(values) if values else None
    return curve[when - 1] if len(curve) >= when else None


def verdict(a: str, b: str, early: dict, end: dict) -> str:
    n = len(end["diffs"])
    if n < 3:
        return f"too few seeds ({n})"

    def leader(p: dict) -> str | None:
        need = n - (n >= 4)
        return a if p["b_wins"] >= need else b if p["a_wins"] >= need else None

    first, last = leader(early), leader(end)
    if last:
        turned = f" ({first} led at epoch 1)" if first not in (None, last) else ""
        return f"ends better: {last}{turned}"
    return f"starts faster: {first}" if first else "no clear difference"


def verdicts(found: dict, epochs: int) -> tuple[str, list]:
    """Paired validation differences after epoch 1, at the midpoint and at the best epoch."""
    mid, rows, record = max(1, epochs // 2), [], []
    for _, _, pairs, _ in SECTIONS.values():
        for a, b in pairs:
            arm_a, arm_b = found.get(a), found.get(b)
            if arm_a is None or arm_b is None:
                continue
            ps = []
            for when in (1, mid, None):
                by_seed = [
                    {s: v for s, r in x["seeds"].items() if (v := at(r["curve"], when)) is not None}
                    for x in (arm_a, arm_b)
                ]
                ps.append(paired(*by_seed))
            if None in ps:
                continue
            cells = [f"{signed(p['mean'], BPB)} ({p['b_wins']} / {p['a_wins']})" for p in ps]
            rows.append([f"{a} − {b}", len(ps[-1]["diffs"]), *cells, verdict(a, b, ps[0], ps[-1])])
            record.append({"a": a, "b": b, "epoch1": ps[0], f"epoch{mid}": ps[1], "best": ps[2]})
    if not rows:
        return "_(no comparison has a finished seed on both sides yet)_", record
    head = ["comparison", "seeds", "after epoch 1", f"after epoch {mid}", "best validation"]
    note = (
        f"Paired mean difference of validation {BPB.unit} (first − second; below zero favours "
        "the first), with the seeds favouring first / second in brackets.\n\n"
    )
    return note + md_table([*head, "verdict"], rows) + f"\n\n{RULE}", record


def minutes(walls: list[float]) -> str:
    return f"{sum(walls) / 60:.1f}" if walls else "—"


def costs(rows: list[tuple]) -> str:
    table, total = [], []
    for exp in dict.fromkeys(c.experiment for c, _, _ in rows):
        mine = [(c, r) for c, _, r in rows if c.experiment == exp]
        walls = [r["wall_time_s"] for c, r in mine if r and not c.shared and r["wall_time_s"]]
        total += walls
        span = f"{min(walls):.0f}–{max(walls):.0f}" if walls else "—"
        table.append([f"`{exp}`", len(mine), len(walls), minutes(walls), span])
    span = f"{min(total):.0f}–{max(total):.0f}" if total else "—"
    table.append(["all", len(rows), len(total), minutes(total), span])
    head = ["experiment", "cells", "runs finished", "process-minutes", "s per run (min–max)"]
    return md_table(head, table)


# ----------------------------------------------------------------------------- section


def train_bytes(cfg) -> int | None:
    """Bytes in the training split (pydoc-topics only: the text ships with Python)."""
    if cfg.data.name != "pydoc-topics":
        return None
    from odetx.data.text import pydoc_topics, split_by_position

    return len(split_by_position(pydoc_topics())["train"].encode())


def setting(rows: list[tuple], cells: list[tuple]) -> str:
    cfg = next(c.config for c, _, _ in rows if c.experiment == "archs")
    mod = next((c.config.model for c, _, _ in rows if c.experiment == "modern"), None)
    m, d, t = cfg.model, cfg.data, cfg.train
    n_tokens = tokens(cfg)
    n_bytes = train_bytes(cfg)
    passes = f", {n_tokens / n_bytes:.1f} passes over the {n_bytes:,}-byte training split"
    passes = passes if n_bytes else ""
    runs = [r for _, _, r in cells]
    torch = ", ".join(sorted({r["torch"].split("+")[0] for r in runs if r.get("torch")})) or "—"
    threads = sorted({r["threads"] for r in runs if r.get("threads")})
    threads = "1 thread" if threads == [1] else f"{'/'.join(map(str, threads)) or '—'} threads"
    lines = [
        f"- **Model**: `{m.preset}`: D = {m.depth}, dim {m.dim}, {m.heads} heads, MLP "
        f"×{m.mlp_ratio:g} (`{m.mlp}`), `{m.norm}`, `{m.pos}` positions, context {m.context} "
        f"bytes, causal attention, output head {'tied to' if m.tie_head else 'apart from'} the "
        f"byte embedding, dropout {m.dropout:g}; Euler, one step per layer (h = 1) unless an arm "
        "says otherwise.",
        f"- **Data**: `{d.name}`, {d.vocab} tokens, split 90 / 5 / 5 by position; validation and "
        "test are read as consecutive windows that score every byte once.",
        f"- **Budget, the same for every arm**: {t.epochs} epochs × {d.train_windows:,} windows × "
        f"{d.context} bytes = {n_tokens / 1e6:.1f}M training tokens{passes}; batch {t.batch_size}, "
        f"`{t.optimizer}` lr {t.lr:g}, {t.warmup_epochs:g} warmup epochs, cosine to "
        f"{t.min_lr_ratio:g} × lr, weight decay {t.weight_decay:g}, gradient clip {t.grad_clip:g}"
        ". Test bits per byte at the epoch with the best validation loss, and at the last epoch.",
        "- **Seeds** 0–4 per arm (`train.seed`: initialisation and batch order; the windows each "
        "epoch draws are the same for every run), so a paired difference isolates the arm.",
        f"- **Machine**: {cpus_line(cells)}; torch {torch}; {threads} per run, "
        f"two runs at a time (`{LANES}`).",
    ]
    if mod is not None:
        lines.insert(
            1,
            f"- **Modern field** (experiment `modern`): `{mod.norm}`, `{mod.mlp}` at "
            f"{mod.mlp_ratio:g} × dim hidden (its parameters about match GELU ×{m.mlp_ratio:g}), "
            f"`{mod.pos}` positions.",
        )
    return "\n".join(lines)


def section_texts(cells: list[tuple], found: dict, seeds: dict, dataset: str) -> tuple[dict, dict]:
    """Section key -> markdown, and the paired test comparisons each one makes."""
    done = {e for _, e, _ in cells}
    texts, record = {}, {}
    for key, (exps, names, pairs, _) in SECTIONS.items():
        if not done & set(exps):
            which = ", ".join(f"`{e}`" for e in exps)
            texts[key] = f"_(not run: no cell of experiment {which} has finished yet)_"
            continue
        if key == "claim1":
            text, ps = claim1(cells, dataset, "archs", BPB)
            record[key] = {f"{a} − {b}": p for (a, b), p in ps.items()}
        elif key == "claim2":  # G = 4 is archs' parallel arm: make_results.claim2 reads "groups"
            g4 = [(s, "groups", r) for s, e, r in cells if arm_of(e, r["config"]) == "parallel"]
            text, record[key] = "_(G = 4 and G = 2, 1 not finished yet)_", {}
            if g4 or "groups" in done:
                text, points, _ = claim2([*cells, *g4], dataset, BPB, "capacity")
                record[key] = {f"G = {g} − G = 4": p for g, _, p in points if p}
        elif key == "modern":
            text, record[key] = modern(cells, found, dataset)
        elif key == "claim3":  # equal NFE (the first three pairs), then equal steps
            (nfe, a), (steps, b) = pairs_table(found, pairs[:3]), pairs_table(found, pairs[3:])
            text = arms_table(found, names) + "\n\nEqual NFE (4), paired by seed:\n\n" + nfe
            text += "\n\nEqual steps (1 per group), paired by seed:\n\n" + steps
            record[key] = a | b
        else:
            table, record[key] = pairs_table(found, pairs)
            text = arms_table(found, names) + "\n\nPaired by seed:\n\n" + table
        texts[key] = text + missing(names, seeds)
    return texts, record


def modern(cells: list[tuple], found: dict, dataset: str) -> tuple[str, dict]:
    """Claim 1 within the modern field, each modern arm against its GPT-2-field counterpart,
    and claim 2 within the modern field (G = 1 × 4 against parallel G = 4)."""
    ours = [(s, e, r) for s, e, r in cells if e == "modern"]
    archs = [c for c in ours if arm_of("modern", c[2]["config"]) != "modern G = 1"]
    text, record = "", {}
    if archs:
        text, ps = claim1(archs, dataset, "modern", BPB)
        record |= {f"modern {a} − modern {b}": p for (a, b), p in ps.items()}
    table, against = pairs_table(found, list(COUNTERPART.items()))
    record |= against
    text += "\n\nEach modern arm against the same arm in the GPT-2 field (LayerNorm, GELU ×4, "
    text += "learned positions), paired by seed:\n\n" + table
    shared = [(s, "groups", r) for s, e, r in ours if r["config"]["model.arch"] == "parallel"]
    if shared:
        table, points, _ = claim2(shared, dataset, BPB)
        record |= {f"modern G = {g} − modern G = 4": p for g, _, p in points if p}
        text += "\n\nClaim 2 in the modern field (parallel, h = 1):\n\n" + table
    return text.strip(), record


def tokens(cfg) -> int:
    return cfg.train.epochs * cfg.data.train_windows * cfg.data.context


def section(rows, cells, found, seeds, page: Path) -> tuple[str, dict, list]:
    dataset = rows[0][0].config.data.name
    before = tokens(load_sweep(EARLIER)[0].config)  # the study above: every cell's budget
    texts, record = section_texts(cells, found, seeds, dataset)
    epochs = rows[0][0].config.train.epochs
    verdict_text, verdict_rows = verdicts(found, epochs)
    parts = [
        "## Language model at the recipe's budget",
        "<!-- Generated by docs/make_lm_budget.py from the run directories under "
        "runs/study/lm-budget/; edit only the block between the lm-budget-conclusions markers, "
        "which the script keeps. -->",
        "The study above stops every model within its first pass over the text. This one trains "
        f"at `configs/lm.yaml`'s own budget, {tokens(rows[0][0].config) / before:.3g} times the "
        "training tokens, for claims 1–3, the "
        "time-dependent and learned Runge–Kutta variants, and the modern field "
        f"(`{SWEEP}`). The metric is test **bits per byte** (lower is better), so a paired "
        "difference *a − b* **below zero favours a**.",
        "<!-- lm-budget-conclusions:begin -->\n"
        + conclusions(page, "lm-budget-conclusions")
        + "\n<!-- lm-budget-conclusions:end -->",
        "Setting:",
        setting(rows, cells),
        costs(rows),
    ]
    for key, text in texts.items():
        title, intro = HEADINGS[key]
        parts += [f"### {title}", intro, text]
    parts += [
        "### Starts faster or ends better?",
        verdict_text,
        "![language model at the recipe's budget: learning curves](study-lm-budget-curves.png)",
        "*`docs/study-lm-budget-curves.png`: validation bits per byte against training tokens, "
        "mean ± sd over the finished seeds of each arm; epoch 1 lies above each frame, and the "
        "inset zooms on the second half of training.*",
    ]
    return "\n\n".join(parts), record, verdict_rows


def splice(page: Path, text: str) -> None:
    """Put ``text`` between the lm-budget markers (first time: before the variants section)."""
    old = page.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    elif BEFORE in old:
        new = old.replace(BEFORE, f"{block}\n\n{BEFORE}", 1)
    else:
        raise SystemExit(f"{page}: no lm-budget markers and no {BEFORE!r} to put them before")
    page.write_text(new, encoding="utf-8")


# ----------------------------------------------------------------------------- plot, data


def plot(found: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 10))
    for ax, (key, (_, names, _, title)) in zip(axes.flat, SECTIONS.items(), strict=True):
        zoom = ax.inset_axes([0.45, 0.45, 0.53, 0.52])
        lines = [(n, f"C{i}", "-") for i, n in enumerate(names)]
        if key == "modern":
            lines += [(COUNTERPART[n], f"C{i}", "--") for i, n in enumerate(names) if n in found]
        frame, inset = [], []
        for name, colour, style in lines:
            arm = found.get(name)
            if arm is None:
                continue
            curves = [r["curve"] for r in arm["seeds"].values()]
            n_ep = min(len(c) for c in curves)
            per_epoch = arm["cfg"]["data.train_windows"] * arm["cfg"]["data.context"] / 1e6
            xs = [per_epoch * (e + 1) for e in range(n_ep)]
            vals = [[c[e] for c in curves if c[e] is not None] for e in range(n_ep)]
            mean = [statistics.fmean(v) for v in vals]
            sd = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in vals]
            lo = [m - s for m, s in zip(mean, sd, strict=True)]
            hi = [m + s for m, s in zip(mean, sd, strict=True)]
            label = f"{name} ({len(curves)})" if style == "-" else None
            for a in (ax, zoom):
                a.plot(xs, mean, style, color=colour, lw=1.4, marker=".", label=label)
                if style == "-" and len(curves) > 1:
                    a.fill_between(xs, lo, hi, color=colour, alpha=0.18, lw=0)
            skip, half = min(1, n_ep - 1), max(0, n_ep // 2 - 1)  # epoch 1; the first half
            frame += lo[skip:] + hi[skip:]
            inset += lo[half:] + hi[half:]
            zoom.set_xlim(xs[half] - 0.1 * per_epoch, xs[-1] + 0.1 * per_epoch)
        if not frame:
            ax.text(0.5, 0.5, "not run yet", ha="center", transform=ax.transAxes)
            zoom.remove()
        else:
            for a, ys in ((ax, frame), (zoom, inset)):
                pad = 0.05 * (max(ys) - min(ys)) or 0.01
                a.set_ylim(min(ys) - pad, max(ys) + pad)
            zoom.tick_params(labelsize=7)
            zoom.grid(alpha=0.3)
            ax.indicate_inset_zoom(zoom, edgecolor="grey")
            ax.legend(fontsize=7, loc="lower left", title="arm (seeds)", title_fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set(xlabel="training tokens (millions)", ylabel="validation bits per byte")
        ax.grid(alpha=0.3)
    fig.suptitle(
        "Language model at the recipe's budget: validation bits per byte, mean ± sd over seeds "
        "(epoch 1 above the frame)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_data(rows: list[tuple], record: dict, verdict_rows: list) -> None:
    cells = []
    for cell, arm, run in rows:
        r = run or {}
        cells.append(
            {
                "experiment": cell.experiment,
                "arm": arm,
                "overrides": cell.overrides,
                "seed": cell.config.train.seed,
                "run": str(cell.run_dir),
                "shared": cell.shared,
                "finished": run is not None,
                "test_bpb": r.get("test_bpb"),
                "test_bpb_last": r.get("test_bpb_last"),
                "best_epoch": r.get("best_epoch"),
                "params": r.get("params"),
                "nfe": r.get("nfe"),
                "wall_time_s": r.get("wall_time_s"),
                "cpu": r.get("cpu"),
                "val_bpb": r.get("curve"),
            }
        )
    data = {"sweep": SWEEP, "cells": cells, "paired_test_bpb": record, "validation": verdict_rows}
    (DATA / f"{NAME}.json").write_text(json.dumps(data, indent=1) + "\n")
    epochs = max((len(c["val_bpb"] or []) for c in cells), default=0)
    head = ["experiment", "arm", "seed", "overrides", "run", "shared", "finished", "test_bpb"]
    head += ["test_bpb_last", "best_epoch", "params", "nfe", "wall_time_s"]
    with (DATA / f"{NAME}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*head, *(f"val_bpb_{e + 1}" for e in range(epochs))])
        for c in cells:
            o = ";".join(f"{k}={v}" for k, v in c["overrides"].items())
            curve = c["val_bpb"] or []
            row = [c[k] if k != "overrides" else o for k in head]
            w.writerow([*("" if v is None else v for v in row), *curve])


# ----------------------------------------------------------------------------- main


def summary(rows: list[tuple]) -> str:
    lines = [f"{SWEEP}: {sum(r is not None for *_, r in rows)} / {len(rows)} cells finished"]
    for exp in dict.fromkeys(c.experiment for c, _, _ in rows):
        mine = [r for c, _, r in rows if c.experiment == exp]
        lines.append(f"  {exp:<9} {sum(r is not None for r in mine):>2} / {len(mine)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only print the cells finished")
    parser.add_argument("--out", help="the sweep's run folder, if not its own out")
    args = parser.parse_args()
    os.chdir(ROOT)  # the sweep's out folder is relative to the repository root
    rows = collect(args.out)
    print(summary(rows))
    if args.check:
        return
    cells = [(NAME, c.experiment, r) for c, _, r in rows if r is not None]
    seeds: dict[str, tuple[list, list]] = {}  # arm -> (its seeds, the finished ones)
    for cell, arm, run in rows:
        want, done = seeds.setdefault(arm, ([], []))
        want.append(cell.config.train.seed)
        done += [cell.config.train.seed] if run is not None else []
    found = pooled(cells, rows[0][0].config.data.name)
    page = DOCS / "results.md"
    text, record, verdict_rows = section(rows, cells, found, seeds, page)
    splice(page, text)
    plot(found, DOCS / f"{NAME}-curves.png")
    DATA.mkdir(parents=True, exist_ok=True)
    write_data(rows, record, verdict_rows)
    print(f"wrote {page.relative_to(ROOT)}, docs/{NAME}-curves.png, docs/data/{NAME}.json, .csv")


if __name__ == "__main__":
    main()
