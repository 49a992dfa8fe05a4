"""The wire format of messages: msgpack, one frame per message.

A message is packed as the array ``[tag, {field: value}]``; a message nested in a
field is a msgpack extension (code ``EXT_MESSAGE``) holding the same array. Arrays
decode as tuples (messages are frozen: their sequences are tuples). ``decode`` rejects
an unknown tag, a malformed frame, missing or extra fields and a bad nested payload with
``CodecError``, whose message says what was wrong.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from peeractor.errors import CodecError
from peeractor.message import message_class, message_tag

__all__ = ["EXT_MESSAGE", "decode", "encode"]

EXT_MESSAGE = 1
"""msgpack extension code of a message nested in another message's field."""

_FIELDS: dict[type, tuple[str, ...]] = {}
_TAGS: dict[type, str] = {}


def _describe(cls: type) -> tuple[str, tuple[str, ...]] | None:
    """(tag, field names) of a registered message class, cached; None if not a message."""
    tag = _TAGS.get(cls)
    if tag is None:
        try:
            tag = message_tag(cls)
        except KeyError:
            return None
        _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
        _TAGS[cls] = tag
    return tag, _FIELDS[cls]


def _as_array(message: object) -> list[Any]:
    described = _describe(type(message))
    if described is None:
        raise CodecError(f"cannot encode {type(message).__qualname__}: not a registered message")
    tag, names = described
    return [tag, {name: getattr(message, name) for name in names}]


def _default(value: object) -> msgpack.ExtType:
    if _describe(type(value)) is None:
        raise TypeError(f"cannot encode a value of type {type(value).__qualname__}")
    return msgpack.ExtType(EXT_MESSAGE, _pack(_as_array(value)))


def _pack(obj: object) -> bytes:
    packed: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return packed


def encode(message: object) -> bytes:
    """The frame of a registered message; ``CodecError`` if something in it cannot travel."""
    try:
        return _pack(_as_array(message))
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(message).__qualname__}: {exc}") from None


def _ext_hook(code: int, data: bytes) -> object:
    if code != EXT_MESSAGE:
        raise CodecError(f"unknown msgpack extension code {code}")
    return _build(_unpack(data), nested=True)


def _unpack(data: bytes) -> object:
    return msgpack.unpackb(
        data, use_list=False, raw=False, ext_hook=_ext_hook, strict_map_key=True
    )


def _build(frame: object, *, nested: bool = False) -> object:
    where = "nested message" if nested else "frame"
    if not (isinstance(frame, tuple) and len(frame) == 2):
        raise CodecError(f"malformed {where}: expected [tag, fields], got {_short(frame)}")
    tag, fields = frame
    if not isinstance(tag, str):
        raise CodecError(f"malformed {where}: tag must be a str, got {_short(tag)}")
    if not isinstance(fields, dict):
        raise CodecError(f"malformed {where} {tag!r}: fields must be a map, got {_short(fields)}")
    cls = message_class(tag)
    if cls is None:
        raise CodecError(f"unknown message tag {tag!r}")
    _, names = _describe(cls) or (tag, ())
    missing = [n for n in names if n not in fields]
    extra = sorted(str(n) for n in fields if n not in names)
    if missing or extra:
        raise CodecError(f"message {tag!r}: missing fields {missing}, unexpected fields {extra}")
    try:
        return cls(**fields)
    except Exception as exc:  # a __post_init__ check, say
        raise CodecError(f"message {tag!r} rejected its fields: {exc}") from None


def decode(data: bytes) -> object:
    """The message in ``data``; ``CodecError`` if it is not a valid frame of a known message."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"a frame must be bytes, got {type(data).__qualname__}")
    try:
        frame = _unpack(data)
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises several types (ExtraData, ValueError, ...)
        raise CodecError(f"malformed frame: {type(exc).__name__}: {exc}") from None
    return _build(frame)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
