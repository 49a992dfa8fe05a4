"""Documented, bounded configuration fields: the one validation mechanism of the project.

A config is a frozen dataclass whose fields are declared with
``option(default, doc, lo=..., hi=..., choices=...)``; ``parse_section`` checks a TOML table
against it (unknown keys, types, ranges) and raises
``InputError("<section>.<key> = <value>: must be ...")`` on the first bad field. Scenarios,
agent configs and Grid'5000 experiment configs all use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Collection, Mapping
from typing import Any

from dvms.errors import InputError

__all__ = ["Section", "check_fields", "option", "parse_section", "plain", "toml_value"]


def option(
    default: Any,
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A documented, bounded dataclass field."""
    meta: dict[str, Any] = {"doc": doc, "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}
    meta["choices"] = choices
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Section:
    """Mixin: ``to_dict`` in field order (tuples → lists, nested sections → tables)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = plain(getattr(self, f.name))
        return out


def plain(value: Any) -> Any:
    """A config value as TOML-ready data (tuples → lists, sections → tables)."""
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _allowed(meta: Mapping[str, Any], kind: str) -> str:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        left = "(" if meta.get("lo_open") else "["
        right = ")" if meta.get("hi_open") else "]"
        return f"{kind} in {left}{_num(lo)}, {_num(hi)}{right}"
    if lo is not None:
        return f"{kind} {'>' if meta.get('lo_open') else '>='} {_num(lo)}"
    if hi is not None:
        return f"{kind} {'<' if meta.get('hi_open') else '<='} {_num(hi)}"
    return kind


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integers a config field may hold at most (whatever its own range)."""


def _short(value: Any) -> str:
    """``repr(value)``, cut to one readable piece (a 400-digit integer, say)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"{'-' if value < 0 else ''}<an integer of {len(str(abs(value)))} digits>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(value: Any) -> bool:
    """Is ``value`` a number a field may hold (a finite float, an int within int64)?"""
    if isinstance(value, int):
        return INT_MIN <= value <= INT_MAX
    return not isinstance(value, float) or math.isfinite(value)


def _convert(name: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    def bad(what: str) -> InputError:
        return InputError(f"{name} = {_short(value)}: must be {what}")

    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int or tp is float:
        kind = "an integer" if tp is int else "a number"
        ok = isinstance(value, int) if tp is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or not _finite(value):
            raise bad(_allowed(meta, kind))
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            raise bad(_allowed(meta, kind))
        if hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
            raise bad(_allowed(meta, kind))
        return float(value) if tp is float else value
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise bad("one of " + ", ".join(repr(c) for c in choices))
        return value
    args = typing.get_args(tp)
    if type(None) in args and len(args) == 2:  # X | None: TOML has no null, so an X
        return _convert(name, value, next(a for a in args if a is not type(None)), meta)
    if origin is tuple and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise bad("a list of tables")
        item_cls = typing.cast(type[Any], args[0])
        return tuple(parse_section(f"{name}[{i}]", item_cls, v) for i, v in enumerate(value))
    if str in args and any(typing.get_origin(a) is tuple for a in args):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise bad("a preset name or a non-empty list of site names")
    # another package's config type we do not model: its constructor validates it
    _screen(name, value)
    return tuple(value) if isinstance(value, list) else value


def parse_section(
    section: str, cls: type[Any], table: Any, *, skip: Collection[str] = ()
) -> Any:
    """Build ``cls`` from a TOML table, naming the first bad field in an ``InputError``.

    ``section`` "" names fields without a prefix (a document's top level); keys in ``skip``
    are left to the caller (sub-tables it parses itself)."""
    if not isinstance(table, Mapping):
        raise InputError(f"[{section}]: must be a table, got {table!r}")
    table = {k: v for k, v in table.items() if k not in skip}
    from_table = getattr(cls, "from_table", None)
    if from_table is not None:  # a class that checks its own fields: numbers screened first
        for key, value in table.items():
            _screen(_dotted(section, key), value)
        return from_table(table)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None or not f.init:
            allowed = ", ".join(n for n, x in fields.items() if x.init)
            raise InputError(f"{_dotted(section, key)}: unknown key; allowed: {allowed}")
        values[key] = _convert(_dotted(section, key), value, hints[key], f.metadata)
    try:
        return cls(**values)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"[{section}]: {exc}") from None


def _screen(name: str, value: Any) -> None:
    """Refuse non-finite floats and integers beyond int64 anywhere in a value."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _screen(f"{name}.{key}", item)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _screen(f"{name}[{i}]", item)
    elif not isinstance(value, bool) and not _finite(value):
        raise InputError(
            f"{name} = {_short(value)}: must be a finite number (integers within ±2**63)"
        )


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def toml_value(value: Any) -> str:
    """A TOML literal for a bool, number, string, list or table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, Section):
        return toml_value(value.to_dict())
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def check_fields(config: Any, section: str) -> None:
    """Check a config dataclass's ``option`` fields on construction (types, ranges,
    choices): the same rules and the same one-line ``InputError`` as ``parse_section``, so
    a config built in Python is held to what a TOML table is."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        if f.metadata:
            _convert(_dotted(section, f.name), getattr(config, f.name), hints[f.name], f.metadata)
