"""Codec properties: hostile bytes never crash the decoder; every message type round-trips;
encode refuses exactly what decode refuses.

The hostile frames are decoded in a **child process** (``serve`` below, fed over a pipe),
so a crash (a nesting bomb overflowing the C stack was one) shows as a dead child, not a
dead test run; each answer must be "ok" or a ``CodecError``, and the child must stay alive.
"""

from __future__ import annotations

import dataclasses
import importlib
import struct
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.zmq_node  # noqa: F401  (its messages are covered too)
from peeractor.codec import DEFAULT_LIMITS, EXT_MESSAGE, decode, encode
from peeractor.errors import CodecError
from peeractor.fieldtypes import INT_MAX, INT_MIN, field_types
from peeractor.message import registered_tags

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "dvms").rglob("*.py") if "@message(" in path.read_text(encoding="utf-8"))
"""Every dvms module registering messages (found in the source; imported here and in the
child), so a new message type is covered without editing this test."""
for _name in MESSAGE_MODULES:
    importlib.import_module(_name)
PROJECT_TAGS = sorted(tag for tag, cls in registered_tags().items()
                      if cls.__module__ in {*MESSAGE_MODULES, "tests.zmq_node"})
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the child decoder -----------------------------------------------------------------

def serve() -> None:
    """Child: read length-prefixed frames on stdin, answer one line per frame on stdout."""
    assert MESSAGE_MODULES  # imported with this module
    stdin, out = sys.stdin.buffer, sys.stdout
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        data = stdin.read(struct.unpack(">I", head)[0])
        try:
            decode(data)
            answer = "ok"
        except CodecError as exc:
            answer = f"codec {exc.cause}"
        except BaseException as exc:  # what the property forbids
            answer = f"other {type(exc).__name__}: {exc}"[:200].replace("\n", " ")
        out.write(answer + "\n")
        out.flush()


class ChildDecoder:
    """The child process and its pipe."""

    def __init__(self) -> None:
        code = "from tests.test_codec_props import serve; serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def decode(self, data: bytes) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().decode()
        assert line, f"the decoder process died (exit {self.proc.wait(5)})"
        return line.strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        assert self.proc.wait(10) == 0


@pytest.fixture(scope="module")
def child() -> Iterator[ChildDecoder]:
    c = ChildDecoder()
    yield c
    c.close()


def assert_codec_only(child: ChildDecoder, data: bytes) -> str:
    answer = child.decode(data)
    assert answer == "ok" or answer.startswith("codec "), answer
    assert child.proc.poll() is None
    return answer


# -- values of declared types ----------------------------------------------------------

def values_of(tp: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of a declared field type (what a correct sender puts there)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return plain(depth)
    if origin is typing.Union or origin is __import__("types").UnionType:
        return st.one_of(*(values_of(a, depth) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if tp is type(None) or tp is None:
        return st.none()
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(), int: st.integers(INT_MIN, INT_MAX),
        float: st.floats(allow_nan=False), str: st.text(max_size=8),
        bytes: st.binary(max_size=8),
    }
    if tp in simple:
        return simple[tp]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values_of(args[0], depth + 1), max_size=3).map(tuple)
        return st.tuples(*(values_of(a, depth + 1) for a in args))
    if origin is dict:
        return st.dictionaries(st.text(max_size=4), values_of(args[1], depth + 1), max_size=3)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return messages_of(tp, depth + 1)
    raise AssertionError(f"no strategy for {tp!r}: extend values_of")


def plain(depth: int) -> st.SearchStrategy[Any]:
    scalars = (st.none() | st.booleans() | st.integers(INT_MIN, INT_MAX)
               | st.floats(allow_nan=False) | st.text(max_size=6) | st.binary(max_size=6))
    if depth > 3:
        return scalars
    return scalars | st.lists(scalars, max_size=3).map(tuple)


def messages_of(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    fields = {name: values_of(tp, depth) for name, tp in field_types(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


ANY_MESSAGE = st.sampled_from(PROJECT_TAGS).flatmap(
    lambda tag: messages_of(registered_tags()[tag]))


def test_every_project_message_type_is_covered() -> None:
    assert len(PROJECT_TAGS) >= 30, PROJECT_TAGS


@PROPS
@given(msg=ANY_MESSAGE)
def test_every_registered_message_round_trips(msg: object) -> None:
    assert decode(encode(msg)) == msg


# -- hostile frames, in the child --------------------------------------------------------

def test_hostile_frames_give_codec_error_only(child: ChildDecoder) -> None:
    # the frames of the issue: a deep ext chain (a SIGSEGV before), deep arrays and maps
    chain = msgpack.packb(None)
    for _ in range(400):
        chain = msgpack.packb(["dvms.MergeProposal", {"x": msgpack.ExtType(EXT_MESSAGE, chain)}])
    assert assert_codec_only(child, chain) in ("codec depth", "codec fields")
    raw_chain = msgpack.packb(None)
    for _ in range(3000):
        raw_chain = msgpack.packb(msgpack.ExtType(EXT_MESSAGE, raw_chain))
    assert assert_codec_only(child, raw_chain) == "codec depth"
    assert assert_codec_only(child, b"\x91" * 200_000 + b"\xc0") == "codec depth"
    assert assert_codec_only(child, b"\x81\xa1k" * 100_000 + b"\xc0") == "codec depth"
    big = b"\x92\xa4test" + b"\xc6" + struct.pack(">I", 2 << 20) + b"\0" * (2 << 20)
    assert assert_codec_only(child, big) == "codec oversize"
    assert assert_codec_only(child, b"\xc6\xff\xff\xff\xff") == "codec malformed"


@PROPS
@given(data=st.binary(max_size=512))
def test_random_bytes(child: ChildDecoder, data: bytes) -> None:
    assert_codec_only(child, data)


@PROPS
@given(msg=ANY_MESSAGE, data=st.data())
def test_truncated_and_mutated_valid_frames(
    child: ChildDecoder, msg: object, data: st.DataObject
) -> None:
    frame = encode(msg)
    cut = data.draw(st.integers(0, len(frame) - 1))
    assert_codec_only(child, frame[:cut])
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    assert_codec_only(child, bytes(mutated))
    at = data.draw(st.integers(0, len(frame)))
    inserted = frame[:at] + data.draw(st.binary(min_size=1, max_size=8)) + frame[at:]
    assert_codec_only(child, inserted)


@PROPS
@given(depth=st.integers(1, 300), tag=st.sampled_from(PROJECT_TAGS), data=st.data())
def test_nesting_bombs(child: ChildDecoder, depth: int, tag: str, data: st.DataObject) -> None:
    cls = registered_tags()[tag]
    names = [n for n, _ in field_types(cls)] or ["x"]
    field = data.draw(st.sampled_from(names))
    inner: Any = None
    for _ in range(depth):
        kind = data.draw(st.sampled_from(["ext", "array", "map"]))
        if kind == "ext":
            fields = {n: None for n in names}
            fields[field] = inner
            inner = msgpack.ExtType(EXT_MESSAGE, msgpack.packb([tag, fields]))
        else:
            inner = [inner] if kind == "array" else {"k": inner}
    answer = assert_codec_only(child, msgpack.packb([tag, {field: inner}]))
    if depth > DEFAULT_LIMITS.max_depth:
        assert answer != "ok"


@settings(max_examples=10, deadline=None)
@given(extra=st.integers(1, 4096), tag=st.sampled_from(PROJECT_TAGS))
def test_oversize_frames(child: ChildDecoder, extra: int, tag: str) -> None:
    size = DEFAULT_LIMITS.max_frame_bytes + extra
    frame = msgpack.packb([tag, {"blob": b"\0" * size}])
    assert assert_codec_only(child, frame) == "codec oversize"


# -- encode refuses what decode refuses ------------------------------------------------

def hostile_value() -> st.SearchStrategy[Any]:
    """Values that may or may not fit a field: wrong scalars, int-keyed maps, huge ints."""
    scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
               | st.text(max_size=4) | st.binary(max_size=4))
    return st.recursive(scalars, lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.integers(0, 3) | st.text(max_size=2), inner, max_size=2)
        | ANY_MESSAGE), max_leaves=6)


def _ext(value: object) -> msgpack.ExtType:
    cls = type(value)
    tag = next((t for t, c in registered_tags().items() if c is cls), None)
    if tag is None:
        raise TypeError(f"not a message: {cls}")
    return msgpack.ExtType(EXT_MESSAGE, _raw(value, tag))


def _raw(msg: object, tag: str) -> bytes:
    """The frame a sender without checks would send (what receivers must judge)."""
    fields = {name: getattr(msg, name) for name, _ in field_types(type(msg))}
    packed: bytes = msgpack.packb([tag, fields], default=_ext, use_bin_type=True)
    return packed


@PROPS
@given(msg=ANY_MESSAGE, data=st.data())
def test_encode_refuses_exactly_what_decode_refuses(msg: object, data: st.DataObject) -> None:
    names = [n for n, _ in field_types(type(msg))]
    if names:
        name = data.draw(st.sampled_from(names))
        msg = dataclasses.replace(msg, **{name: data.draw(hostile_value())})  # type: ignore[type-var]
    tag = next(t for t, c in registered_tags().items() if c is type(msg))
    try:
        raw = _raw(msg, tag)
    except (TypeError, ValueError, OverflowError):
        with pytest.raises(CodecError):  # msgpack itself cannot carry it
            encode(msg)
        return
    try:
        decoded: object = decode(raw)
    except CodecError as exc:
        with pytest.raises(CodecError) as refused:
            encode(msg)
        assert refused.value.cause in (exc.cause, "type"), (refused.value, exc)
        if names and exc.cause == "type":
            assert f".{name}" in str(refused.value)
        return
    assert encode(msg) == raw
    assert decoded == msg or decoded != decoded  # NaN somewhere
