"""``odetx list``: what the registries hold."""

from __future__ import annotations

from rich.table import Table

from odetx.cli.display import console
from odetx.data import DATASETS
from odetx.models import ARCHS, PRESETS, STEMS
from odetx.solvers import SOLVERS


def list_cmd() -> None:
    """List the registered archs (splitting schemes), solvers, datasets, presets and stems."""
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
