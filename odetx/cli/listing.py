"""``odetx list``: what the registries hold."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from odetx.cli.display import console
from odetx.data import DATASETS
from odetx.models import ARCHS, MLPS, NORMS, POSITIONS, PRESETS, STEMS
from odetx.solvers import SOLVERS


def list_cmd() -> None:
    """List the registered archs (splitting schemes), solvers, datasets, presets, stems and
    field components (norms, MLPs, positions)."""
    t = Table(title="archs (--arch): how a layer step splits A + M", title_justify="left")
    for col in ("name", "splitting order", "layer step"):
        t.add_column(col)
    for name, s in ARCHS.items():
        t.add_row(name, "unsplit" if s.order == 0 else str(s.order), s.description)
    console.print(t)

    t = Table(title="solvers (--solver)", title_justify="left")
    for col in ("name", "order", "kind", "stages", "from", "method"):
        t.add_column(col)
    for name, s in SOLVERS.items():
        order = "learned" if s.order is None else str(s.order)
        t.add_row(name, order, s.kind, str(s.stages or "—"), s.source, s.reference)
    console.print(t)

    t = Table(title="datasets (--dataset)", title_justify="left")
    for col in ("name", "what", "source"):
        t.add_column(col)
    for name, d in DATASETS.items():
        t.add_row(name, d.description, d.source)
    console.print(t)

    t = Table(title="presets (--model)", title_justify="left")
    t.add_column("name", no_wrap=True)
    for col in ("backbone", "depth", "dim", "heads", "mlp ratio", "patch / context", "note"):
        t.add_column(col)
    for name, p in PRESETS.items():
        t.add_row(
            name,
            p.backbone,
            str(p.depth),
            str(p.dim),
            str(p.heads),
            f"{p.mlp_ratio:g}",
            str(p.context or p.patch_size or "—"),
            p.description,
        )
    console.print(t)
    t = Table(title="image stems (--set model.stem=…)", title_justify="left")
    for col in ("name", "how an image becomes tokens"):
        t.add_column(col)
    for name, s in STEMS.items():
        t.add_row(name, s.description)
    console.print(t)

    t = Table(title="norms (--set model.norm=…)", title_justify="left")
    for col in ("name", "bias", "default eps", "normalisation"):
        t.add_column(col)
    for name, n in NORMS.items():
        t.add_row(name, "yes" if n.bias else "no", f"{n.eps:g}", n.description)
    console.print(t)

    t = Table(title="MLPs (--set model.mlp=…)", title_justify="left")
    for col in ("name", "fc1 rows", "MLP"):
        t.add_column(col)
    for name, m in MLPS.items():
        rows = escape("2 x hidden: [gate; up]") if m.gated else "hidden"
        t.add_row(name, rows, escape(m.description))
    console.print(t)

    t = Table(title="positions (--set model.pos=…)", title_justify="left")
    for col in ("name", "where", "cache past the context", "positions"):
        t.add_column(col)
    for name, p in POSITIONS.items():
        where = "embeddings" if p.learned else "attention" if p.rotary else "—"
        t.add_row(name, where, "rolls" if p.rolls else "recomputes", p.description)
    console.print(t)
