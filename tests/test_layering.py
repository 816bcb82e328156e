"""Imports inside ``odetx`` point one way: no module imports one from a higher layer.

Every module is parsed with ``ast`` (imports inside functions count too). Modules of one
top-level subpackage may import each other; across subpackages, a layer may import its own
or lower layers, except that neither evaluation nor export may import training.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "odetx"

# Lowest first. "odetx" is the package's __init__ alone, not everything below it.
LAYERS = [
    {"odetx.errors", "odetx.registry", "odetx.io", "odetx"},
    {"odetx.config", "odetx.origins"},
    {"odetx.solvers", "odetx.data", "odetx.runtime"},
    {"odetx.models"},
    {"odetx.resolve", "odetx.artefacts"},
    {"odetx.evaluation", "odetx.importers"},
    {"odetx.training"},
    {"odetx.compare", "odetx.export", "odetx.analysis"},
    {"odetx.plugins"},  # the public face of every registry, for plugins (never imported here)
    {"odetx.cli", "odetx.__main__"},
]
# (importer, imported) pairs refused even though the layers would allow them.
FORBIDDEN = {("odetx.evaluation", "odetx.training"), ("odetx.export", "odetx.training")}


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def top(name: str) -> str:
    """The unit a module belongs to: ``odetx.x`` for anything under ``odetx/x``."""
    return ".".join(name.split(".")[:2])


def layer_of(name: str) -> int | None:
    unit = top(name)
    return next((i for i, units in enumerate(LAYERS) if unit in units), None)


def imported(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Every ``odetx`` module the source imports, anywhere in it; ``from X import y`` counts
    as importing ``X.y`` when that is a module."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    return {t for t in found if t == "odetx" or t.startswith("odetx.")}


def violations(mods: dict[str, Path]) -> list[str]:
    known = set(mods)
    out = []
    for name, path in mods.items():
        for target in sorted(imported(path.read_text(), name, path.name == "__init__.py", known)):
            if top(target) == top(name):
                continue  # within one subpackage
            mine, theirs = layer_of(name), layer_of(target)
            if theirs is not None and mine is not None and theirs > mine:
                out.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
            elif (top(name), top(target)) in FORBIDDEN:
                out.append(f"{name} imports {target}")
    return out


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if layer_of(name) is None]
    assert unplaced == [], "place these in LAYERS"


def test_the_scan_sees_imports_inside_functions_and_from_imports():
    """The checker itself, on the real package: edges known to exist are found."""
    mods = modules()
    cli = imported(mods["odetx.cli.app"].read_text(), "odetx.cli.app", False, set(mods))
    # At the top of cli/app.py, and (odetx.cli.train) inside its command registration.
    assert {"odetx", "odetx.errors", "odetx.cli.display", "odetx.cli.train"} <= cli
    source = "import os\ndef f():\n    from odetx.training import Trainer\n"
    assert imported(source, "odetx.evaluation.x", False, set(mods)) == {"odetx.training"}
    source = "from odetx import io, errors\nfrom .loop import evaluate\n"
    assert imported(source, "odetx.evaluation.x", False, set(mods)) == {
        "odetx",
        "odetx.io",
        "odetx.errors",
        "odetx.evaluation.loop",
    }


def test_the_checker_flags_an_upward_and_a_forbidden_import(tmp_path):
    """The checker itself, on a package written here: the rules it must enforce."""
    root = tmp_path / "odetx"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "config.py": "from odetx.errors import ConfigError\n",
        "models/__init__.py": "def f():\n    from odetx.training import Trainer\n",
        "training/__init__.py": "from odetx.models import f\n",
        "evaluation/__init__.py": "from odetx.training import Trainer\n",
        "export/core.py": "import odetx.training.loop\nfrom odetx.export import check\n",
        "export/check.py": "",
        "compare/__init__.py": "from odetx.export import core\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert sorted(violations(modules(root))) == [
        "odetx.evaluation (layer 5) imports odetx.training (layer 6)",
        "odetx.export.core imports odetx.training.loop",
        "odetx.models (layer 3) imports odetx.training (layer 6)",
    ]


def test_no_module_imports_from_a_higher_layer():
    assert violations(modules()) == []


@pytest.mark.parametrize("importer", ["odetx.evaluation", "odetx.export"])
def test_evaluation_and_export_never_import_training(importer):
    """Evaluating or exporting a checkpoint must not need the training loop."""
    mods = modules()
    for name, path in mods.items():
        if top(name) == importer:
            found = imported(path.read_text(), name, path.name == "__init__.py", set(mods))
            assert not any(top(t) == "odetx.training" for t in found), name
