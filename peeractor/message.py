"""Messages: frozen slotted dataclasses registered under a stable type tag.

    @message("vivaldi.Ping")
    class Ping:
        sender: str
        sent_at: float

The tag, not the Python class name, identifies a message on the wire (see
``peeractor.codec``), so classes can be renamed or moved without breaking peers.
Field values are restricted to what the codec carries: None, bool, int, float,
str, bytes, tuples/lists, dicts with str keys, and other registered messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

__all__ = ["message", "message_class", "message_tag", "registered_tags"]

T = TypeVar("T")

_BY_TAG: dict[str, type[Any]] = {}
_TAG_OF: dict[type[Any], str] = {}


@dataclass_transform(frozen_default=True)
def message(tag: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: turn ``cls`` into a frozen slotted dataclass registered as ``tag``."""
    if not tag or not isinstance(tag, str):
        raise ValueError(f"message tag must be a non-empty str, got {tag!r}")

    def register(cls: type[T]) -> type[T]:
        made = dataclasses.dataclass(frozen=True, slots=True)(cls)
        _fast_init(made)
        known = _BY_TAG.get(tag)
        if known is not None and known.__qualname__ != made.__qualname__:
            raise ValueError(f"message tag {tag!r} already registered by {known.__qualname__}")
        _BY_TAG[tag] = made
        _TAG_OF[made] = tag
        return made

    return register


def _fast_init(cls: type[Any]) -> None:
    """Give a plain message class an ``__init__`` that stores through its slots' descriptors.

    A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (a lookup
    of the name, then the descriptor): messages are made on every send, and storing through
    the slot descriptors directly takes half the time. Same parameters, defaults and
    result; classes with ``__post_init__``, init-only, keyword-only or factory fields keep
    the dataclass's own ``__init__``.
    """
    fields = dataclasses.fields(cls)
    if (
        hasattr(cls, "__post_init__")
        or len(fields) != len(cls.__dataclass_fields__)  # InitVar pseudo-fields
        or any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING
               for f in fields)
    ):  # fmt: skip
        return
    scope: dict[str, Any] = {}
    params, body = ["self"], []
    for f in fields:
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in vars(k))
        scope[f"_set_{f.name}"] = slot.__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__({', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    made: dict[str, Any] = {}
    exec(source, scope, made)  # the source is built from field names only
    init = made["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init


def message_tag(cls: type[Any]) -> str:
    """The tag ``cls`` was registered under; ``KeyError`` if it is not a message."""
    return _TAG_OF[cls]


def message_class(tag: str) -> type[Any] | None:
    """The class registered under ``tag``, or None."""
    return _BY_TAG.get(tag)


def registered_tags() -> dict[str, type[Any]]:
    """A copy of the tag → class registry."""
    return dict(_BY_TAG)
