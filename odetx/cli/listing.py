"""``odetx list``: what the registries hold, and where each entry comes from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from odetx.cli.display import console
from odetx.data import DATASETS
from odetx.export.formats import FORMATS
from odetx.importers import FAMILIES
from odetx.models import ARCHS, BACKBONES, MLPS, NORMS, POSITIONS, PRESETS, STEMS
from odetx.models.attention import ATTENTIONS
from odetx.models.factory import DATA_KIND
from odetx.registry import Registry
from odetx.solvers import CONTROLLERS, SOLVERS


def _print(
    title: str, registry: Registry[Any], columns: tuple[str, ...], row: Callable[[Any], tuple]
) -> None:
    """One table: a row per entry, its name first and where it comes from last."""
    t = Table(title=title, title_justify="left")
    t.add_column("name", no_wrap=True)
    for col in columns:
        t.add_column(col)
    t.add_column("from")
    for name, entry in registry.items():
        t.add_row(name, *(escape(str(cell)) for cell in row(entry)), registry.source(name))
    show = console
    if not console.is_terminal:  # piped or captured: rows whole, not cut to 80 columns
        wide = console.options.update_width(1000)
        show = Console(width=max(console.width, Measurement.get(console, wide, t).maximum))
    show.print(t)


def _solver(s: Any) -> tuple:
    order = "learned" if s.order is None else s.order
    return order, s.kind, s.stages or "—", s.source, s.reference


def _preset(p: Any) -> tuple:
    size = p.context or p.patch_size or "—"
    return p.backbone, p.depth, p.dim, p.heads, f"{p.mlp_ratio:g}", size, p.description


def _positions(p: Any) -> tuple:
    where = "embeddings" if p.learned else "attention" if p.rotary else "—"
    return where, "rolls" if p.rolls else "recomputes", p.description


def _backbone(cls: type) -> tuple:
    name = next(n for n, c in BACKBONES.items() if c is cls)
    return DATA_KIND.get(name, "—"), f"{cls.__module__}.{cls.__qualname__}"


TABLES: list[tuple[str, Registry[Any], tuple[str, ...], Callable[[Any], tuple]]] = [
    (
        "archs (--arch): how a layer step splits A + M",
        ARCHS,
        ("splitting order", "layer step"),
        lambda a: ("unsplit" if a.order == 0 else a.order, a.description),
    ),
    (
        "solvers (--solver)",
        SOLVERS,
        ("order", "kind", "stages", "integrator", "method"),
        _solver,
    ),
    (
        "datasets (--dataset)",
        DATASETS,
        ("kind", "what", "source"),
        lambda d: (d.kind, d.description, d.source),
    ),
    (
        "presets (--model)",
        PRESETS,
        ("backbone", "depth", "dim", "heads", "mlp ratio", "patch / context", "note"),
        _preset,
    ),
    (
        "image stems (--set model.stem=…)",
        STEMS,
        ("how an image becomes tokens",),
        lambda s: (s.description,),
    ),
    (
        "norms (--set model.norm=…)",
        NORMS,
        ("bias", "default eps", "normalisation"),
        lambda n: ("yes" if n.bias else "no", f"{n.eps:g}", n.description),
    ),
    (
        "MLPs (--set model.mlp=…)",
        MLPS,
        ("fc1 rows", "MLP"),
        lambda m: ("2 x hidden: [gate; up]" if m.gated else "hidden", m.description),
    ),
    (
        "attentions (--set model.attn=…)",
        ATTENTIONS,
        ("generation cache", "attention"),
        lambda a: ("keys and values" if a.cached else "none: rereads the window", a.description),
    ),
    (
        "positions (--set model.pos=…)",
        POSITIONS,
        ("where", "cache past the context", "positions"),
        _positions,
    ),
    (
        "step-size controllers (--per-sample --controller)",
        CONTROLLERS,
        ("α", "β", "smallest factor after an accepted step", "rule"),
        lambda c: (f"{c.alpha:g}", f"{c.beta:g}", f"{c.accept_min:g}", c.description),
    ),
    ("backbones (a preset's)", BACKBONES, ("reads", "module"), _backbone),
    (
        "export formats (odetx export --format)",
        FORMATS,
        ("suffix", "artefact"),
        lambda f: (f.suffix, f.title),
    ),
    ("model families (odetx import)", FAMILIES, ("source models",), lambda f: (f.description,)),
]


def list_cmd() -> None:
    """List the registered archs (splitting schemes), solvers, datasets, presets, stems,
    field components (norms, MLPs, attentions, positions), backbones, export formats and
    the model families odetx import reads, each with where it comes from: built-in, or
    the plugin that added it."""
    for title, registry, columns, row in TABLES:
        _print(title, registry, columns, row)
