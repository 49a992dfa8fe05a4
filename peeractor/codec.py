"""The wire format of messages: msgpack, one frame per message, bounded and type-checked.

A message is packed as the array ``[tag, {field: value}]``; a message nested in a
field is a msgpack extension (code ``EXT_MESSAGE``) holding the same array. Arrays
decode as tuples (messages are frozen: their sequences are tuples).

Limits (``CodecLimits``; the transport takes them, see docs/transport.md):

- ``max_frame_bytes`` (default 1 MiB): a longer frame is refused unread;
- ``max_depth`` (default 32, at most 64): the deepest nesting of containers and messages
  in a frame (a message counts one, each array or map one). Nested messages are decoded
  by a recursive extension hook, so the bound is what keeps a nesting bomb from
  exhausting the C stack.

Every field value is checked against the message's declared type (``peeractor.fieldtypes``)
on decode *and* on encode, so what one side refuses the other refuses too, and a message
that cannot travel fails at the sender naming the field. Every refusal is a
``CodecError`` whose ``cause`` is one of ``CAUSES`` and whose ``tag`` names the message
type when it was read; no frame makes ``decode`` raise anything else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from peeractor.errors import CodecError
from peeractor.fieldtypes import FieldError, check_field, field_types, message_depth
from peeractor.message import message_class, message_tag

__all__ = [
    "CAUSES",
    "DEFAULT_LIMITS",
    "EXT_MESSAGE",
    "MAX_DEPTH_CEILING",
    "CodecLimits",
    "decode",
    "encode",
]

EXT_MESSAGE = 1
"""msgpack extension code of a message nested in another message's field."""

MAX_DEPTH_CEILING = 64
"""The largest ``max_depth`` allowed: deeper nested extensions risk the C stack of a thread."""

CAUSES = (
    "oversize",  # longer than max_frame_bytes
    "depth",  # nested deeper than max_depth
    "malformed",  # not msgpack, or not [tag, fields]
    "unknown-tag",  # no message registered under that tag
    "fields",  # missing or unexpected fields, or the class refused them (__post_init__)
    "type",  # a field value of the wrong type
)
"""The ``CodecError.cause`` values."""


@dataclasses.dataclass(frozen=True, slots=True)
class CodecLimits:
    """Bounds on one frame (see the module doc)."""

    max_frame_bytes: int = 1 << 20
    max_depth: int = 32

    def __post_init__(self) -> None:
        if not 16 <= self.max_frame_bytes <= 1 << 30:
            raise ValueError(f"max_frame_bytes must be in [16, 2**30], got {self.max_frame_bytes}")
        if not 2 <= self.max_depth <= MAX_DEPTH_CEILING:
            raise ValueError(
                f"max_depth must be in [2, {MAX_DEPTH_CEILING}], got {self.max_depth}"
            )


DEFAULT_LIMITS = CodecLimits()

_TAGS: dict[type, str] = {}


def _tag_of(cls: type) -> str | None:
    tag = _TAGS.get(cls)
    if tag is None:
        try:
            tag = _TAGS[cls] = message_tag(cls)
        except KeyError:
            return None
    return tag


def _default(value: object) -> msgpack.ExtType:
    tag = _tag_of(type(value))
    if tag is None:
        raise TypeError(f"cannot encode a value of type {type(value).__qualname__}")
    return msgpack.ExtType(EXT_MESSAGE, _pack(_as_array(value, tag)))


def _as_array(message: object, tag: str) -> list[Any]:
    return [tag, {name: getattr(message, name) for name, _ in field_types(type(message))}]


def _pack(obj: object) -> bytes:
    packed: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return packed


def encode(message: object, limits: CodecLimits = DEFAULT_LIMITS) -> bytes:
    """The frame of a registered message; ``CodecError`` if it cannot travel (naming why)."""
    name = type(message).__qualname__
    tag = _tag_of(type(message))
    if tag is None:
        raise CodecError(f"cannot encode {name}: not a registered message", cause="malformed")
    try:
        message_depth(message, tag, limits.max_depth, None)
    except FieldError as exc:
        raise CodecError(f"cannot encode {tag}: {exc}", cause=exc.cause, tag=tag) from None
    try:
        frame = _pack(_as_array(message, tag))
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {name}: {exc}", cause="type", tag=tag) from None
    if len(frame) > limits.max_frame_bytes:
        raise CodecError(
            f"cannot encode {tag}: {len(frame)} bytes, more than max_frame_bytes "
            f"({limits.max_frame_bytes})",
            cause="oversize",
            tag=tag,
        )
    return frame


class _Decoder:
    """One decode: the nesting level of extension hooks and the depth of built messages."""

    __slots__ = ("built", "level", "limits", "outer_tag")

    def __init__(self, limits: CodecLimits) -> None:
        self.limits = limits
        self.level = 0
        self.built: dict[int, int] = {}
        self.outer_tag = ""

    def unpack(self, data: bytes) -> object:
        return msgpack.unpackb(
            data, use_list=False, raw=False, ext_hook=self.ext_hook, strict_map_key=True
        )

    def ext_hook(self, code: int, data: bytes) -> object:
        if code != EXT_MESSAGE:
            raise CodecError(f"unknown msgpack extension code {code}", tag=self.outer_tag)
        self.level += 1
        try:
            if self.level >= self.limits.max_depth:
                raise CodecError(
                    f"nested deeper than max_depth ({self.limits.max_depth})",
                    cause="depth",
                    tag=self.outer_tag,
                )
            return self.build(self.unpack(data), nested=True)
        finally:
            self.level -= 1

    def build(self, frame: object, *, nested: bool = False) -> object:
        where = "nested message" if nested else "frame"
        if not (isinstance(frame, tuple) and len(frame) == 2):
            raise CodecError(f"malformed {where}: expected [tag, fields], got {_short(frame)}")
        tag, fields = frame
        if not isinstance(tag, str):
            raise CodecError(f"malformed {where}: tag must be a str, got {_short(tag)}")
        cls = message_class(tag)
        if cls is None:
            raise CodecError(f"unknown message tag {_short(tag)}", cause="unknown-tag")
        if not isinstance(fields, dict):
            raise CodecError(
                f"malformed {where} {tag!r}: fields must be a map, got {_short(fields)}", tag=tag
            )
        declared = field_types(cls)
        names = [n for n, _ in declared]
        missing = [n for n in names if n not in fields]
        extra = sorted(str(n) for n in fields if n not in names)
        if missing or extra:
            raise CodecError(
                f"message {tag!r}: missing fields {missing}, unexpected fields {extra}",
                cause="fields",
                tag=tag,
            )
        budget = self.limits.max_depth - self.level - 1
        deepest = 0
        try:
            for name, tp in declared:
                inner = check_field(fields[name], tp, f"{tag}.{name}", budget, self.built)
                deepest = max(deepest, inner)
        except FieldError as exc:
            raise CodecError(f"message {tag!r}: {exc}", cause=exc.cause, tag=tag) from None
        try:
            built = cls(**fields)
        except Exception as exc:  # a __post_init__ check, say
            raise CodecError(
                f"message {tag!r} rejected its fields: {exc}", cause="fields", tag=tag
            ) from None
        self.built[id(built)] = 1 + deepest
        return built


def decode(data: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> object:
    """The message in ``data``; ``CodecError`` if it is not a valid frame of a known message."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"a frame must be bytes, got {type(data).__qualname__}")
    decoder = _Decoder(limits)
    decoder.outer_tag = _peek_tag(data)
    if len(data) > limits.max_frame_bytes:
        raise CodecError(
            f"frame of {len(data)} bytes, more than max_frame_bytes ({limits.max_frame_bytes})",
            cause="oversize",
            tag=decoder.outer_tag,
        )
    try:
        frame = decoder.unpack(bytes(data))
    except CodecError as exc:
        exc.tag = decoder.outer_tag or exc.tag  # counted under the frame's type
        raise
    except msgpack.StackError:
        raise CodecError(
            "malformed frame: nested deeper than msgpack's stack", cause="depth",
            tag=decoder.outer_tag,
        ) from None
    except RecursionError:
        raise CodecError("nested too deeply", cause="depth", tag=decoder.outer_tag) from None
    except Exception as exc:  # msgpack raises several types (ExtraData, ValueError, ...)
        raise CodecError(
            f"malformed frame: {type(exc).__name__}: {_short(str(exc))}", tag=decoder.outer_tag
        ) from None
    try:
        return decoder.build(frame)
    except RecursionError:
        raise CodecError("nested too deeply", cause="depth", tag=decoder.outer_tag) from None


def _peek_tag(data: bytes | bytearray | memoryview) -> str:
    """The tag of a frame that starts like ``[tag, fields]`` (to count refusals), or ""."""
    if len(data) < 2 or data[0] != 0x92:  # a msgpack array of two
        return ""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(bytes(data[1:258]))
    try:
        tag = unpacker.unpack()
    except Exception:
        return ""
    return tag if isinstance(tag, str) and message_class(tag) is not None else ""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
