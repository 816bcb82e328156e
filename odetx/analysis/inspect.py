"""``odetx inspect`` as one library call: the ODE reading of a trained model along depth.

Loads a checkpoint (with optional solver overrides), takes the first ``n`` examples of a
split, captures the ODE stack's input tokens, follows the trajectory the solver
produces and measures it (:mod:`odetx.analysis.flow`), per sample point, per group and
over the whole depth; writes the CSV and plot asked for.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from odetx.analysis import flow
from odetx.errors import ConfigError
from odetx.evaluation import eval_loader, load_model, load_split
from odetx.io import atomic_write
from odetx.solvers.persample import per_sample_nfe

# The inputs ``inspect`` lists as needing the most field evaluations (per-sample solvers).
HARDEST = 8

POINT_KEYS = [
    "group", "step", "substep", "t", "which", "state_norm", "attn_norm", "mlp_norm",
    "field_norm", "cosine", "kinetic", "jacobian_norm", "local_error",
]  # fmt: skip
MEANS = ["state_norm", "attn_norm", "mlp_norm", "field_norm", "cosine", "kinetic",
         "jacobian_norm", "local_error"]  # fmt: skip


class _Captured(Exception):
    """Raised by the hook that takes the stack's input, so the rest of the model never runs."""


def stack_input(model: torch.nn.Module, inputs: tuple) -> tuple[torch.Tensor, Any]:
    """The tokens (and padding mask) the backbone feeds its ODE stack, from the backbone's
    own embedding: a hook on the stack takes them and stops the forward there."""
    seen: dict[str, tuple] = {}

    def hook(module, args):
        seen["args"] = args
        raise _Captured

    handle = model.stack.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(*inputs)
    except _Captured:
        pass
    finally:
        handle.remove()
    args = seen["args"]
    return args[0], args[1] if len(args) > 1 else None


@dataclass
class Inspection:
    """What ``odetx inspect`` reports; ``points`` are rows of :data:`POINT_KEYS`."""

    meta: dict[str, Any]
    points: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    overall: dict[str, Any]
    tracks: list[torch.Tensor] = field(default_factory=list, repr=False)  # example 0, per point
    # The examples that took the most field evaluations, most first (per-sample solvers),
    # and the images among the inputs (image models), for the plot.
    hardest: list[dict[str, Any]] = field(default_factory=list)
    images: torch.Tensor | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta,
            "points": self.points,
            "per_group": self.groups,
            "overall": self.overall,
            "hardest": self.hardest,
        }

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, POINT_KEYS, lineterminator="\n")
        writer.writeheader()
        for row in self.points:
            writer.writerow({k: "" if row[k] is None else row[k] for k in POINT_KEYS})
        return out.getvalue()


def _means(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    out = {}
    for k in MEANS:
        vals = [r[k] for r in rows if r[k] is not None]
        out[f"mean_{k}"] = sum(vals) / len(vals) if vals else None
    return out


def inspect_stack(
    blocks: list[torch.nn.Module],
    solver,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    iters: int = 20,
) -> Inspection:
    """Measure the trajectory of ``x`` through ``blocks`` (see :mod:`odetx.analysis.flow`)."""
    points = flow.trajectory(blocks, solver, x, mask)
    w = flow.real(mask, x)
    rows, tracks = [], []
    step_start: dict[int, torch.Tensor] = {}
    for p in points:
        block = blocks[p.group]
        stats = flow.field_stats(block.field, p.t, p.x, mask)
        row = {
            "group": p.group, "step": p.step, "substep": p.substep, "t": p.t,
            "which": p.which,
            "state_norm": flow.token_mean(p.x.norm(dim=-1), w),
            "attn_norm": stats.attn, "mlp_norm": stats.mlp, "field_norm": stats.both,
            "cosine": stats.cosine, "kinetic": stats.kinetic,
            "jacobian_norm": None, "local_error": None,
        }  # fmt: skip
        if p.which != "start" and p.step_end:
            n = p.step - 1
            start = step_start[p.group]
            whole, _ = flow.step_map(block, solver, n, mask)
            row["jacobian_norm"] = float(flow.spectral_norm(whole, start, mask, iters).mean())
            row["local_error"] = float(flow.local_error(block, solver, n, start, mask).mean())
        if p.step_end:
            step_start[p.group] = p.x
        rows.append(row)
        tracks.append(p.x[0].detach())
    groups = []
    starts = [p.x for p in points if p.which == "start"]
    for g, block in enumerate(blocks):
        t0, t1 = float(block.t0), float(block.t1)
        sigma = flow.spectral_norm(lambda y, b=block: b(y, mask), starts[g], mask, iters)
        groups.append(
            {"group": g, "t0": t0, "t1": t1,
             "ftle": float(sigma.log().mean()) / (t1 - t0),
             **_means([r for r in rows if r["group"] == g])}
        )  # fmt: skip

    def whole_stack(y: torch.Tensor) -> torch.Tensor:
        for b in blocks:
            y = b(y, mask)
        return y

    T = float(blocks[-1].t1) - float(blocks[0].t0)
    sigma = flow.spectral_norm(whole_stack, x, mask, iters)
    overall = {"t0": float(blocks[0].t0), "t1": float(blocks[-1].t1),
               "ftle": float(sigma.log().mean()) / T, **_means(rows)}  # fmt: skip
    return Inspection({}, rows, groups, overall, tracks)


@torch.no_grad()
def hardest(model: torch.nn.Module, inputs: tuple, labels: torch.Tensor) -> list[dict[str, Any]]:
    """The :data:`HARDEST` examples that took the most field evaluations, most first:
    ``index`` (in the split), ``nfe``, ``label``, ``predicted`` and ``correct`` (a language
    model's window has no one label: ``predicted``/``correct`` are then None)."""
    logits = model(*inputs)
    nfe = per_sample_nfe(model.stack, logits.shape[0])
    order = sorted(range(len(nfe)), key=lambda i: (-float(nfe[i]), i))[:HARDEST]
    out = []
    for i in order:
        row: dict[str, Any] = {"index": i, "nfe": float(nfe[i])}
        if logits.ndim == 2:
            pred, label = int(logits[i].argmax()), int(labels[i])
            row |= {"label": label, "predicted": pred, "correct": pred == label}
        else:
            row |= {"label": None, "predicted": None, "correct": None}
        out.append(row)
    return out


def _check_output(flag: str, path: Path | None) -> None:
    if path is not None and not Path(path).parent.is_dir():
        raise ConfigError(flag, f"the folder of {path} does not exist")


def inspect_checkpoint(
    checkpoint: str | Path,
    split: str = "test",
    n: int = 16,
    solver_overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
    device: str = "cpu",
    csv_path: Path | None = None,
    plot_path: Path | None = None,
    iters: int = 20,
) -> Inspection:
    """The ODE reading of ``checkpoint`` on the first ``n`` examples of ``split``.

    Raises:
        ConfigError: a bad split, ``n``, output path, device or solver override.
        CheckpointError: a missing, corrupt or untrusted checkpoint.
        DataError: the dataset's files are missing.
        SolverError: an adaptive solve over its step budget.
    """
    from odetx.data import check_split

    check_split(split)
    if n <= 0:
        raise ConfigError("--n", f"must be a positive number of examples, got {n}")
    _check_output("--csv", csv_path)
    _check_output("--plot", plot_path)
    if plot_path is not None:
        from odetx.compare.plot import require_matplotlib

        require_matplotlib()
    loaded = load_model(checkpoint, solver_overrides, device)
    data = load_split(loaded, split, data_root)
    subset = Subset(data, range(min(n, len(data))))
    batch = next(iter(eval_loader(loaded, subset, len(subset))))
    *inputs, _ = (t.to(loaded.device) for t in batch)
    x, mask = stack_input(loaded.model, tuple(inputs))
    result = inspect_stack(list(loaded.model.stack.blocks), loaded.solver, x, mask, iters)
    if loaded.solver.per_sample:
        result.hardest = hardest(loaded.model, tuple(inputs), batch[-1].to(loaded.device))
        if loaded.info.kind == "image":
            result.images = inputs[0].detach().cpu()
    cfg = loaded.config
    result.meta = {
        "checkpoint": str(loaded.path),
        "model": cfg.model.preset,
        "dataset": cfg.data.name,
        "split": split,
        "examples": len(subset),
        "tokens": int(flow.real(mask, x).sum()),
        "arch": cfg.model.arch,
        "depth": cfg.model.depth,
        "groups": cfg.model.groups,
        "solver": loaded.solver.method,
        "steps": loaded.solver.steps,
        "rtol": loaded.solver.rtol,
        "atol": loaded.solver.atol,
        "trained_solver": loaded.trained_solver.method,
        "trained_steps": loaded.trained_solver.steps,
        "solver_overridden": loaded.overridden,
        "per_sample": loaded.solver.per_sample,
        "fine_solver": f"{flow.FINE.method} x {flow.FINE.steps}",
        "power_iterations": iters,
    }
    if not all(math.isfinite(v) for v in (result.overall["ftle"],)):
        result.overall["ftle"] = None
    if csv_path is not None:
        with atomic_write(csv_path, "w") as (f, _):
            f.write(result.csv_text())
    if plot_path is not None:
        from odetx.analysis.plot import plot

        plot(result, plot_path)
    return result
