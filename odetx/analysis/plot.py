"""Curves of an inspection along depth, and token trajectories on their first two
principal components (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path

import torch

from odetx.compare.plot import require_matplotlib
from odetx.io import atomic_write

PANELS = [
    ("per-token L2 norm", [("state_norm", "state ‖x‖")]),
    (
        "per-token L2 norm",
        [("attn_norm", "‖A‖"), ("mlp_norm", "‖M‖"), ("field_norm", "‖A + M‖")],
    ),
    ("cosine(A, M)", [("cosine", "cos(A, M)")]),
    ("kinetic energy ‖A + M‖² per token", [("kinetic", "kinetic")]),
    ("σ_max of the step map's Jacobian", [("jacobian_norm", "σ_max")]),
    ("relative local error (log)", [("local_error", "vs fine solve")]),
]


def plot(result, path: str | Path) -> None:
    plt = require_matplotlib()
    m = result.meta
    shown = result.hardest if result.images is not None else []
    rows_of_plots = 3 if shown else 2
    fig, axes = plt.subplots(rows_of_plots, 4, figsize=(20, 4.25 * rows_of_plots))
    flat = axes.flatten()
    for ax, item in zip(flat[8:], shown, strict=False):  # the inputs that took the most steps
        image = result.images[item["index"]]  # (C, H, W), normalised
        shown_image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0) / 4 + 0.5
        ax.imshow(shown_image.clamp(0, 1) if image.shape[0] != 1 else shown_image, cmap="gray")
        verdict = "right" if item["correct"] else "wrong"
        ax.set_title(
            f"#{item['index']}: NFE {item['nfe']:g}, label {item['label']}, "
            f"predicted {item['predicted']} ({verdict})",
            fontsize=9,
        )
        ax.axis("off")
    for ax in flat[8 + len(shown) :]:
        ax.axis("off")
    rows = result.points
    for ax, (ylabel, series) in zip(flat, PANELS, strict=False):
        for key, label in series:
            pts = [(r["t"], r[key]) for r in rows if r[key] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label)
        if "log" in ylabel:
            ax.set_yscale("log")
        for g in result.groups[1:]:
            ax.axvline(g["t0"], color="grey", alpha=0.3, lw=0.8)
        ax.set_xlabel("depth t (layers)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = flat[6]
    ax.bar([g["group"] for g in result.groups], [g["ftle"] for g in result.groups])
    ax.set_xlabel("group")
    ax.set_ylabel("finite-time Lyapunov exponent (1/layer)")
    ax.set_title(f"overall FTLE {result.overall['ftle']:.3g}" if result.overall["ftle"] else "")
    ax = flat[7]
    track = torch.stack(result.tracks).float()  # (points, N, d): example 0
    tokens = min(track.shape[1], 16)
    flat_states = track[:, :tokens].reshape(-1, track.shape[-1])
    centred = flat_states - flat_states.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    proj = (centred @ v[:2].T).reshape(track.shape[0], tokens, 2)
    for i in range(tokens):
        ax.plot(proj[:, i, 0], proj[:, i, 1], lw=0.8)
        ax.plot(proj[0, i, 0], proj[0, i, 1], "k.", ms=4)
    ax.set_xlabel("PC 1 of token states")
    ax.set_ylabel("PC 2 of token states")
    ax.set_title(f"trajectories of {tokens} tokens of example 0 (dot: t = 0)")
    solver = f"{m['solver']} ({m['steps']} step{'s' if m['steps'] != 1 else ''}/group)"
    fig.suptitle(
        f"{m['model']} · arch {m['arch']} · D={m['depth']} G={m['groups']} · {solver} · "
        f"{m['dataset']} {m['split']}, {m['examples']} examples · {m['checkpoint']}",
        fontsize=11,
    )
    fig.tight_layout()
    with atomic_write(path) as (f, _):
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
