"""One registry helper for everything looked up by name: codecs, labelers, degradations, shapes,
generators, tasks (big_vision's habit: small factories registered by name; twice is an error).

    CODECS = Registry("codec")

    @CODECS.register("depth")
    class DepthCodec: ...

    CODECS.get("depth")(**params)     # unknown names raise naming the known ones
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object (a factory, a class, a function or a plain record), registered once."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # what a name stands for, in error messages ("codec", "labeler", ...)
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`."""

        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> T:
        """Register `obj` under `name`; a second registration of a name raises ValueError."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object registered as `name`; ValueError naming the known names otherwise."""
        try:
            return self._items[name]
        except (KeyError, TypeError) as err:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {self.names()}") from err

    def build(self, name: str, **params: Any) -> Any:
        """Call the factory registered as `name` with `params`; bad parameters are a ValueError."""
        factory = self.get(name)
        try:
            return factory(**params)  # type: ignore[operator]
        except TypeError as err:
            raise ValueError(f"{self.kind} {name!r}: bad parameters {sorted(params)}: {err}") from err

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)
