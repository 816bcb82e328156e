"""Name -> constructor maps: the single place a new variant is added.

Every entry remembers where it came from: built in (registered while odetx imports), or a
plugin (registered inside :func:`registering`, which :mod:`odetx.origins` opens around
each plugin it loads). ``odetx list`` shows it, a clash names who holds the name, and a
run records the plugins whose entries it uses.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from odetx.errors import ConfigError

T = TypeVar("T")

BUILT_IN = "built-in"

# The plugins whose entries are being registered, innermost last (a plugin may load another).
_loading: list[Any] = []


@contextmanager
def registering(origin: Any) -> Iterator[None]:
    """Entries registered inside the block come from ``origin`` (a plugin: anything with a
    ``name``), not from odetx itself."""
    _loading.append(origin)
    try:
        yield
    finally:
        _loading.pop()


def current_origin() -> Any | None:
    """The plugin registering now, or ``None`` (odetx's own entries)."""
    return _loading[-1] if _loading else None


def holder(origin: Any | None) -> str:
    """Who an origin is, in words: ``built-in`` or ``plugin 'name'``."""
    return BUILT_IN if origin is None else f"plugin {origin.name!r}"


class NameTaken(ValueError):
    """A name registered twice; ``origin`` is whoever holds it (``None``: odetx itself)."""

    def __init__(self, family: str, name: str, origin: Any | None) -> None:
        self.family, self.name, self.origin = family, name, origin
        super().__init__(f"{family} {name!r} is already registered ({holder(origin)})")


class Registry(Generic[T]):
    """A named family of variants (archs, solvers, datasets, presets).

    A registry owns the wording of a failed lookup ("unknown <family> 'x'; choose
    one of: …"): ``registry[name]`` raises it as a ``KeyError``, and
    :meth:`lookup` as a :class:`~odetx.errors.ConfigError` naming the setting.
    A name is registered once: a second registration raises :class:`NameTaken`, so a
    plugin never replaces a built-in entry (or another plugin's).
    """

    # Every registry made (weakly: a test's own registry may go away), for forget().
    _every: ClassVar[list[weakref.ref[Registry[Any]]]] = []

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}
        self._origins: dict[str, Any] = {}  # name -> plugin; absent: built in
        Registry._every.append(weakref.ref(self))

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""

        def add(obj: T) -> T:
            if name in self._items:
                raise NameTaken(self.family, name, self._origins.get(name))
            self._items[name] = obj
            origin = current_origin()
            if origin is not None:
                self._origins[name] = origin
            return obj

        return add if item is None else add(item)

    def origin(self, name: str) -> Any | None:
        """The plugin that registered ``name`` (``None``: built in)."""
        return self._origins.get(name)

    def source(self, name: str) -> str:
        """Where ``name`` comes from, for people: ``built-in`` or the plugin's name."""
        origin = self._origins.get(name)
        return BUILT_IN if origin is None else origin.name

    def discard(self, name: str) -> None:
        """Remove ``name`` (a plugin's entry that failed the checks run after registering)."""
        self._items.pop(name, None)
        self._origins.pop(name, None)

    def forget(self, origin: Any) -> list[str]:
        """Remove the entries ``origin`` registered (a plugin that failed to load)."""
        gone = [name for name, o in self._origins.items() if o == origin]
        for name in gone:
            self.discard(name)
        return gone

    def unknown(self, name: object) -> str:
        """The message for a name this registry does not hold."""
        return f"unknown {self.family} {name!r}; choose one of: {', '.join(self.names())}"

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(self.unknown(name)) from None

    def lookup(self, name: str, key: str) -> T:
        """``self[name]``, or a :class:`ConfigError` on setting ``key`` (a config key or flag)."""
        if name not in self._items:
            raise ConfigError(key, self.unknown(name))
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())


def forget(origin: Any) -> None:
    """Remove every entry ``origin`` registered, in every registry."""
    for ref in list(Registry._every):
        registry = ref()
        if registry is None:
            Registry._every.remove(ref)
        else:
            registry.forget(origin)
