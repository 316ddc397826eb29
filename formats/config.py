"""One config layer: plain dicts (what Hydra resolves to, or JSON) -> checked dataclasses.

`from_dict(Schema, data, where)` converts and checks in one place: unknown keys are an error
naming the allowed ones, lists become tuples where the field is a tuple, nested dataclass fields
are built recursively, and a value the dataclass rejects (its `__post_init__` raising
ValueError / TypeError) becomes one `ConfigError` that names the key. Core packages use it for
their own configs (model, scene spec, stage settings); `pipelines/` only hands it the resolved
Hydra dict. No Hydra, no Ray here.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")
_SCOPED = re.compile(r"^[\w./\[\]-]+: ")


class ConfigError(ValueError):
    """A bad config key or value, reported in one line that names the key, before any work starts."""


def from_dict(schema: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `schema` from the mapping `data`.

    Args:
        schema: a dataclass type.
        data: a mapping of field name -> value (None means all defaults).
        where: the dotted config path of `data` ("render", "tune.model"), for messages.

    Raises:
        ConfigError: unknown keys, a missing required key, a value of the wrong shape, or a value
            the dataclass itself rejects; the message names the key and the allowed set.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or schema.__name__} must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {_keys(where)}keys {unknown}; allowed: {sorted(fields)}")
    hints = _hints(schema)
    # `settings: null` in YAML means "the defaults" for a nested config block, not None
    data = {k: v for k, v in data.items() if not (v is None and _is_dataclass_type(hints.get(k)))}
    kwargs = {name: convert(hints.get(name), value, _join(where, name)) for name, value in data.items()}
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{_keys(where)}missing required keys {missing}")
    try:
        return schema(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        # a message that already names its scope ("train: steps must be ...") is not prefixed twice
        prefix = f"{where}: " if where and not _SCOPED.match(str(err)) else ""
        raise ConfigError(f"{prefix}{err}") from err


def convert(hint: Any, value: Any, where: str) -> Any:
    """`value` shaped as the type hint says: lists -> tuples for tuple fields, dicts -> nested dataclasses."""
    if value is None or hint is None:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return convert(args[0], value, where) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    if (hint is tuple or origin is tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else None
        return tuple(convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if (hint is tuple or origin is tuple) and isinstance(value, str):
        return (value,)  # a single value stands for a one-element list (`data=outputs/eval`)
    return value


def _hints(schema: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(schema)
    except Exception:  # a forward reference that does not resolve: convert by value only
        return {f.name: (tuple if isinstance(f.default, tuple) else None) for f in dataclasses.fields(schema)}


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _keys(where: str) -> str:
    return f"{where} " if where else ""
