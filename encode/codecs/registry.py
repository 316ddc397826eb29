"""Codec registry: `register` a class under its name, `get(name, **params)` builds one."""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from formats.registry import Registry


@runtime_checkable
class Codec(Protocol):
    """A target kind <-> RGB image mapping (pure numpy, no I/O)."""

    name: str
    version: int

    @property
    def params(self) -> dict[str, Any]: ...

    def encode(self, target: np.ndarray) -> np.ndarray: ...

    def decode(self, rgb: np.ndarray) -> np.ndarray: ...


CODECS: Registry[Callable[..., Codec]] = Registry("codec")


def register(name: str) -> Callable[[type], type]:
    """Class decorator: register a codec factory under `name` (twice is an error)."""
    return CODECS.register(name)


def names() -> list[str]:
    """The registered codec names, sorted."""
    return CODECS.names()


def get(name: str, **params: Any) -> Codec:
    """Build codec `name` with `params` (the same dict its `.params` reports)."""
    return CODECS.build(name, **params)


def spec(codec: Codec) -> dict[str, Any]:
    """The JSON description stored with every sample: name, version, params."""
    return {"name": codec.name, "version": codec.version, "params": codec.params}


def from_spec(desc: dict[str, Any]) -> Codec:
    """Rebuild a codec from `spec(...)`; a version mismatch is an error, not a silent misdecode."""
    codec = get(desc["name"], **desc.get("params", {}))
    if int(desc.get("version", codec.version)) != codec.version:
        raise ValueError(
            f"codec {desc['name']!r}: data was written with version {desc['version']}, "
            f"this code implements version {codec.version}"
        )
    return codec


@functools.lru_cache(maxsize=64)
def _from_spec_json(spec_json: str) -> Codec:
    return from_spec(json.loads(spec_json))


def cached_from_spec(desc: dict[str, Any]) -> Codec:
    """`from_spec`, built once per distinct spec (codecs are immutable; their tables are cached too).
    What per-sample callers use: training's loss mask, evaluation's decode."""
    return _from_spec_json(json.dumps(desc, sort_keys=True))
