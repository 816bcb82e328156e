"""Plugins loaded: from installed packages' entry points, modules and ``.py`` files; and the
records a run keeps of them.

A plugin is Python code that adds registry entries through :mod:`odetx.plugins`. Loading
one runs it inside :func:`odetx.registry.registering`, so each entry knows its plugin;
when it fails — an import error, an entry that fails its checks, a name already taken —
every entry it added is taken back and a :class:`PluginError` names the plugin (and the
entry) in one line.

A plugin is known by a :class:`~odetx.config.PluginRef`: a package by its module and its
distribution's version, a file by its content's SHA-256 (two copies of one file are one
plugin). :func:`require` is what loading a run calls with the plugins it recorded: each
is loaded when it can be (the package is installed, the file is where it was and has
the same content), and otherwise refused in one line.

This module sits just above the config: it imports no registry, only the machinery
(:mod:`odetx.registry`) every registry shares.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from pathlib import Path

from odetx.config import PluginRef
from odetx.errors import OdetxError
from odetx.registry import forget, registering

GROUP = "odetx.plugins"  # the entry-point group installed plugins declare


class PluginError(OdetxError):
    """A plugin that cannot be loaded, or a run's plugin that is not here."""

    exit_code = 2
    every_rank = True


class EntryError(ValueError):
    """An entry a plugin adds that fails its checks; the loader names the plugin."""


# Identity (see _key) -> the plugin as loaded, in load order.
_loaded: dict[str, PluginRef] = {}
# Identity -> sys.modules names a plugin brought in, so unload() can drop them.
_modules: dict[str, list[str]] = {}


def _key(ref: PluginRef) -> str:
    """What makes two references one plugin: a file's content, a package's module."""
    if ref.is_file:
        return f"sha256:{ref.sha256}" if ref.sha256 else f"path:{Path(ref.path).resolve()}"
    return f"module:{ref.module}"


def label(ref: PluginRef) -> str:
    """A plugin for a message: ``'x.py' (/abs/x.py)`` or ``'dist' 0.1 (module m)``."""
    if ref.is_file:
        return f"{ref.name!r} ({ref.path})"
    version = f" {ref.version}" if ref.version else ""
    module = f" (module {ref.module})" if ref.module and ref.module != ref.name else ""
    return f"{ref.name!r}{version}{module}"


def loaded() -> list[PluginRef]:
    """The plugins loaded in this process, in load order."""
    return list(_loaded.values())


def file_ref(path: str | Path) -> PluginRef:
    """A file plugin as it is now: absolute path and content hash."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as e:
        raise PluginError(f"plugin {str(path)!r}: cannot read it ({e.strerror or e})") from None
    return PluginRef(p.name, path=str(p.resolve()), sha256=hashlib.sha256(data).hexdigest())


def _distribution(module: str) -> tuple[str, str] | None:
    """``(distribution, version)`` that installs ``module``'s top-level package, if any."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def module_ref(module: str) -> PluginRef:
    """A module plugin, named by the distribution installing it (and its version) if any."""
    dist = _distribution(module.partition(":")[0])
    if dist is None:
        return PluginRef(module, module=module)
    return PluginRef(dist[0], module=module, version=dist[1])


def _where(e: BaseException) -> str:
    """`` (file:line)`` of the innermost frame of ``e`` outside odetx, if any."""
    odetx_dir = str(Path(__file__).resolve().parent)
    frames = [f for f in traceback.extract_tb(e.__traceback__) if odetx_dir not in f.filename]
    if not frames:
        return ""
    return f" ({frames[-1].filename}:{frames[-1].lineno})"


def _reason(e: BaseException) -> str:
    if isinstance(e, EntryError):
        return str(e)
    if isinstance(e, SyntaxError):
        return f"SyntaxError: {e.msg} ({e.filename}:{e.lineno})"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}{_where(e)}"


def _run(ref: PluginRef, body: Callable[..., None], **kw: object) -> PluginRef:
    """Run a plugin's code with its entries attributed to it; all or nothing."""
    key = _key(ref)
    before = set(sys.modules)
    _loaded[key] = ref  # during its own run, so that a plugin importing itself is a no-op
    try:
        with registering(ref):
            body(**kw)
    except Exception as e:
        forget(ref)
        del _loaded[key]
        for name in set(sys.modules) - before:
            del sys.modules[name]
        raise PluginError(f"plugin {label(ref)}: {_reason(e)}") from None
    _modules[key] = sorted(set(sys.modules) - before)
    return ref


def _exec_file(file: PluginRef, data: bytes) -> None:
    # Run exactly the bytes that were hashed, under a module name of its own.
    name = f"odetx_plugin_{Path(file.path).stem}_{file.sha256[:12]}"
    module = types.ModuleType(name)
    module.__file__ = file.path
    sys.modules[name] = module
    exec(compile(data, file.path, "exec"), module.__dict__)


def adopt(ref: PluginRef) -> PluginRef:
    """``ref`` as a loaded plugin: a module that registers entries without being loaded by
    odetx (imported by hand) is attributed and recorded like one."""
    return _loaded.setdefault(_key(ref), ref)


def load_file(path: str | Path) -> PluginRef:
    """Load the plugin file at ``path`` (a no-op when a file of the same content is loaded)."""
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder, not a .py file" if p.is_dir() else "does not exist"
        raise PluginError(f"plugin {str(path)!r}: {what}")
    ref = file_ref(p)
    if _key(ref) in _loaded:
        return _loaded[_key(ref)]
    data = Path(ref.path).read_bytes()
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise PluginError(f"plugin {label(ref)}: the file changed while it was read")
    return _run(ref, _exec_file, file=ref, data=data)


def _import(module: str) -> None:
    name, _, function = module.partition(":")
    target = importlib.import_module(name)
    if function:
        getattr(target, function)()


def load_module(module: str, ref: PluginRef | None = None) -> PluginRef:
    """Import the plugin ``module`` (``module:function`` calls the function too)."""
    ref = ref or module_ref(module)
    if _key(ref) in _loaded:
        return _loaded[_key(ref)]
    name = module.partition(":")[0]
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise PluginError(f"plugin {label(ref)}: no module named {name!r} (is it installed?)")
    return _run(ref, _import, module=module)


def load(spec: str | PluginRef) -> PluginRef:
    """Load a plugin named as ``--plugin`` names it: a ``.py`` file, or a module."""
    ref = PluginRef.parse(spec) if isinstance(spec, str) else spec
    return load_file(ref.path) if ref.is_file else load_module(ref.module or ref.name)


def entry_points() -> list[metadata.EntryPoint]:
    """The installed plugins: entry points of the group ``odetx.plugins``."""
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def _entry_ref(ep: metadata.EntryPoint) -> PluginRef:
    dist = ep.dist
    if dist is None:
        return PluginRef(ep.name, module=ep.value)
    return PluginRef(dist.metadata["Name"] or ep.name, module=ep.value, version=dist.version)


def load_installed() -> list[PluginRef]:
    """Load every installed plugin (the entry points of the group ``odetx.plugins``)."""
    return [load_module(ep.value, _entry_ref(ep)) for ep in entry_points()]


def _find_installed(want: PluginRef) -> PluginRef | None:
    """The installed entry point that provides ``want``'s module, as a reference."""
    for ep in entry_points():
        if ep.value == want.module:
            return _entry_ref(ep)
    return None


def ensure(want: PluginRef, subject: str = "the config", trusted: bool = False) -> PluginRef:
    """The plugin ``want`` names, loaded. A recorded plugin (one with a hash or a version,
    as a run's config holds it) must be the same plugin: otherwise a :class:`PluginError`
    says that ``subject`` needs it and what is missing or different.

    Loading runs code, so a reference from a file odetx did not write for you (a
    checkpoint, a run directory: ``trusted`` False) loads only what you installed as a
    plugin, or a ``.py`` file with the very content the run recorded; any other module
    takes your ``--plugin``. ``trusted``: ``want`` comes from your own config file.
    """
    if want.is_file:
        if want.sha256 is not None:
            return _ensure_file(want, subject)
        if trusted:
            return load_file(want.path)
        raise PluginError(
            f"{subject} names plugin file {want.path} without its hash; pass --plugin FILE"
        )
    key = _key(want)
    if key not in _loaded:
        installed = _find_installed(want)
        if installed is None and not trusted:
            raise PluginError(
                f"{subject} needs plugin {label(want)}, which is not an installed odetx plugin "
                f"here; install it, or pass --plugin {want.module}"
            )
        load_module(want.module, installed or module_ref(want.module))
    have = _loaded[key]
    if want.version is not None and have.version is not None and want.version != have.version:
        raise PluginError(
            f"{subject} needs plugin {want.name!r} {want.version}; {have.version} is loaded "
            "(install the version it was made with)"
        )
    return have


def _ensure_file(want: PluginRef, subject: str) -> PluginRef:
    if _key(want) in _loaded:
        return _loaded[_key(want)]
    needs = f"{subject} needs plugin {want.name!r} (sha256 {want.sha256[:12]}…)"
    path = Path(want.path)
    if path.suffix != ".py" or not path.is_file():
        raise PluginError(
            f"{needs} from {path}, which is not there; pass --plugin with a copy of that file"
        )
    now = file_ref(path)
    if now.sha256 != want.sha256:
        raise PluginError(
            f"{needs}; {path} has changed since (sha256 {now.sha256[:12]}…); pass --plugin "
            "with the file it was made with"
        )
    return load_file(path)


def require(
    refs: Iterable[PluginRef], subject: str = "the config", trusted: bool = False
) -> list[PluginRef]:
    """Load every plugin ``refs`` name (a config's ``plugins:``), as :func:`ensure` does."""
    return [ensure(ref, subject, trusted) for ref in refs]


def unload() -> None:
    """Forget every plugin loaded and the entries they added (tests start clean with it)."""
    for key, ref in reversed(list(_loaded.items())):
        forget(ref)
        for name in _modules.pop(key, []):
            sys.modules.pop(name, None)
    _loaded.clear()
