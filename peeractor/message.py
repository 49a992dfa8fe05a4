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
        known = _BY_TAG.get(tag)
        if known is not None and known.__qualname__ != made.__qualname__:
            raise ValueError(f"message tag {tag!r} already registered by {known.__qualname__}")
        _BY_TAG[tag] = made
        _TAG_OF[made] = tag
        return made

    return register


def message_tag(cls: type[Any]) -> str:
    """The tag ``cls`` was registered under; ``KeyError`` if it is not a message."""
    return _TAG_OF[cls]


def message_class(tag: str) -> type[Any] | None:
    """The class registered under ``tag``, or None."""
    return _BY_TAG.get(tag)


def registered_tags() -> dict[str, type[Any]]:
    """A copy of the tag → class registry."""
    return dict(_BY_TAG)
