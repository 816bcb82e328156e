"""Name -> constructor maps: the single place a new variant is added."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from odetx.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named family of variants (archs, solvers, datasets, presets).

    A registry owns the wording of a failed lookup ("unknown <family> 'x'; choose
    one of: …"): ``registry[name]`` raises it as a ``KeyError``, and
    :meth:`lookup` as a :class:`~odetx.errors.ConfigError` naming the setting.
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""

        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add if item is None else add(item)

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
