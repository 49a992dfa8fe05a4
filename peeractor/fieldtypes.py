"""What a value must be to travel in a message field: checked on encode and on decode.

A field's declared type (its annotation) is checked structurally: ``bool``, ``int``
(msgpack's range, bools refused), ``float`` (ints accepted), ``str``, ``bytes``, ``None``,
``Literal[...]`` (one of its values), unions (``X | None``), ``tuple[X, ...]``,
``tuple[X, Y]``, ``list[X]``, ``dict[K, V]`` and registered messages (an instance of that
class). ``Any``, ``object`` and annotations the checker does not model accept any *plain*
value: None, bool, int, float, str, bytes, tuples/lists and dicts (str or bytes keys) of
plain values, registered messages.

Every walk is bounded by a depth budget (containers and messages), so no value, however
deep, makes the checker recurse without bound. A refusal is a ``FieldError`` naming the
path of the value (``coord.vec[3]``) and what was expected.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any

from peeractor.message import message_tag

__all__ = ["INT_MAX", "INT_MIN", "FieldError", "check_field", "field_types", "message_depth"]

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""The integers msgpack carries."""

_SEQUENCES = (tuple, list, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)
_TYPES: dict[type, tuple[tuple[str, Any], ...]] = {}


class FieldError(Exception):
    """A value that may not travel: ``where`` (a path), ``cause`` ("type" or "depth")."""

    def __init__(self, where: str, what: str, cause: str = "type") -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.cause = cause


def field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, declared type) of a message class's fields, cached; unresolved → ``Any``."""
    known = _TYPES.get(cls)
    if known is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # a forward reference that does not resolve: accept plain values
            hints = {}
        known = tuple((f.name, hints.get(f.name, Any)) for f in dataclasses.fields(cls))
        _TYPES[cls] = known
    return known


def _is_message(cls: type) -> bool:
    try:
        message_tag(cls)
    except KeyError:
        return False
    return True


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def message_depth(
    value: object, where: str, budget: int, built: dict[int, int] | None
) -> int:
    """The depth of a registered message (1 + its deepest field), within ``budget``.

    ``built`` maps ``id()`` of messages already checked (when decoding, nested messages
    are built and checked first) to their depth; others are walked field by field.
    """
    if budget <= 0:
        raise FieldError(where, "nested too deeply", "depth")
    if built is not None:
        depth = built.get(id(value))
        if depth is not None:
            if depth > budget:
                raise FieldError(where, "nested too deeply", "depth")
            return depth
    deepest = 0
    for name, tp in field_types(type(value)):
        inner = check_field(getattr(value, name), tp, f"{where}.{name}", budget - 1, built)
        deepest = max(deepest, inner)
    return 1 + deepest


def check_field(
    value: object, tp: Any, where: str, budget: int, built: dict[int, int] | None = None
) -> int:
    """Check ``value`` against the declared type ``tp``; returns its depth (0: a scalar)."""
    if tp is Any or tp is object:
        return _plain(value, where, budget, built)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        reasons = []
        for arm in typing.get_args(tp):
            try:
                return check_field(value, arm, where, budget, built)
            except FieldError as exc:
                if exc.cause == "depth":
                    raise
                reasons.append(_name(arm))
        raise FieldError(where, f"expected {' | '.join(reasons)}, got {_short(value)}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            raise FieldError(where, f"expected one of {list(choices)!r}, got {_short(value)}")
        return 0
    if tp is None or tp is type(None):
        if value is not None:
            raise FieldError(where, f"expected None, got {_short(value)}")
        return 0
    if tp in (bool, int, float, str, bytes):
        _scalar(value, tp, where)
        return 0
    if origin in _SEQUENCES:
        return _sequence(value, typing.get_args(tp), where, budget, built)
    if origin in _MAPPINGS:
        args = typing.get_args(tp) or (Any, Any)
        return _mapping(value, args[0], args[1], where, budget, built)
    if isinstance(tp, type) and _is_message(tp):
        if type(value) is not tp:
            raise FieldError(where, f"expected a {tp.__qualname__}, got {_short(value)}")
        return message_depth(value, where, budget, built)
    return _plain(value, where, budget, built)


def _name(tp: Any) -> str:
    if tp is type(None) or tp is None:
        return "None"
    return tp.__qualname__ if isinstance(tp, type) else str(tp)


def _scalar(value: object, tp: type, where: str) -> None:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise FieldError(where, f"expected {tp.__name__}, got {_short(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise FieldError(where, "integer out of msgpack's range [-2**63, 2**64 - 1]")


def _sequence(
    value: object, args: tuple[Any, ...], where: str, budget: int, built: dict[int, int] | None
) -> int:
    if not isinstance(value, tuple | list):
        raise FieldError(where, f"expected a sequence, got {_short(value)}")
    if budget <= 0:
        raise FieldError(where, "nested too deeply", "depth")
    if (len(args) == 2 and args[1] is Ellipsis) or len(args) == 1:
        items = [(v, args[0]) for v in value]
    elif not args:
        items = [(v, Any) for v in value]
    else:
        if len(value) != len(args):
            raise FieldError(where, f"expected {len(args)} items, got {len(value)}")
        items = list(zip(value, args, strict=True))
    deepest = 0
    for i, (item, tp) in enumerate(items):
        deepest = max(deepest, check_field(item, tp, f"{where}[{i}]", budget - 1, built))
    return 1 + deepest


def _mapping(
    value: object, key_tp: Any, value_tp: Any, where: str, budget: int,
    built: dict[int, int] | None,
) -> int:  # fmt: skip
    if not isinstance(value, dict):
        raise FieldError(where, f"expected a map, got {_short(value)}")
    if budget <= 0:
        raise FieldError(where, "nested too deeply", "depth")
    deepest = 0
    for key, item in value.items():
        if not isinstance(key, str | bytes):
            raise FieldError(where, f"map key {_short(key)} is not a str")
        if key_tp is not Any:
            check_field(key, key_tp, f"{where} key", budget - 1, built)
        deepest = max(deepest, check_field(item, value_tp, f"{where}[{key!r}]", budget - 1, built))
    return 1 + deepest


def _plain(value: object, where: str, budget: int, built: dict[int, int] | None) -> int:
    if value is None or isinstance(value, bool | float | str | bytes):
        return 0
    if isinstance(value, int):
        _scalar(value, int, where)
        return 0
    if isinstance(value, tuple | list):
        return _sequence(value, (), where, budget, built)
    if isinstance(value, dict):
        return _mapping(value, Any, Any, where, budget, built)
    if _is_message(type(value)):
        return message_depth(value, where, budget, built)
    raise FieldError(where, f"cannot travel: a value of type {type(value).__qualname__}")
