"""The msgpack codec: every registered message round-trips; bad frames give CodecError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from peeractor import CodecError, PeerActorError, message
from peeractor.codec import EXT_MESSAGE, decode, encode


@message("test.codec.Coord")
class Coord:
    vec: tuple[float, ...]
    height: float
    error: float


@message("test.codec.Sample")
class Sample:
    node: str
    coord: Coord
    peers: tuple[str, ...]
    meta: dict[str, int]
    blob: bytes
    note: str | None
    ok: bool
    n: int


@message("test.codec.Batch")
class Batch:
    samples: tuple[Sample, ...]


@message("test.codec.Empty")
class Empty:
    pass


@message("test.codec.Positive")
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be > 0, got {self.n}")


def sample(i: int = 1) -> Sample:
    return Sample(
        node=f"h{i:04d}",
        coord=Coord((0.5, -1.25, 3.0), height=1e-5, error=1.5),
        peers=("a", "b"),
        meta={"x": 1, "y": -2},
        blob=b"\x00\xff",
        note=None,
        ok=True,
        n=2**40,
    )


def test_round_trip_with_nested_messages_and_tuples() -> None:
    msg = Batch((sample(1), sample(2)))
    back = decode(encode(msg))
    assert back == msg
    assert isinstance(back, Batch) and isinstance(back.samples, tuple)
    assert isinstance(back.samples[0].coord, Coord) and isinstance(back.samples[0].peers, tuple)
    assert decode(encode(Empty())) == Empty()


def test_frame_is_tag_and_field_map() -> None:
    assert msgpack.unpackb(encode(Coord((1.0,), 2.0, 0.5))) == [
        "test.codec.Coord",
        {"vec": [1.0], "height": 2.0, "error": 0.5},
    ]


@given(
    node=st.text(max_size=20),
    vec=st.lists(st.floats(allow_nan=False), max_size=8).map(tuple),
    peers=st.lists(st.text(max_size=5), max_size=5).map(tuple),
    meta=st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=4),
    blob=st.binary(max_size=32),
    note=st.none() | st.text(max_size=10),
    ok=st.booleans(),
    n=st.integers(-(2**63), 2**64 - 1),
)
def test_round_trip_property(
    node: str, vec: tuple[float, ...], peers: tuple[str, ...], meta: dict[str, int],
    blob: bytes, note: str | None, ok: bool, n: int,
) -> None:  # fmt: skip
    msg = Sample(node, Coord(vec, 0.0, 1.0), peers, meta, blob, note, ok, n)
    assert decode(encode(msg)) == msg


def bad(frame: object) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bad(["test.codec.Nope", {}]), "unknown message tag 'test.codec.Nope'"),
        (b"\xc1", "malformed frame"),
        (b"", "malformed frame"),
        (bad(["test.codec.Empty", {}]) + b"\x00", "malformed frame: ExtraData"),
        (bad({"tag": 1}), r"malformed frame: expected \[tag, fields\]"),
        (bad(["test.codec.Empty"]), r"malformed frame: expected \[tag, fields\]"),
        (bad([3, {}]), "tag must be a str"),
        (bad(["test.codec.Empty", [1]]), "fields must be a map"),
        (bad(["test.codec.Coord", {"vec": [], "height": 1.0}]), r"missing fields \['error'\]"),
        (
            bad(["test.codec.Empty", {"x": 1}]),
            r"missing fields \[\], unexpected fields \['x'\]",
        ),
        (bad(["test.codec.Positive", {"n": 0}]), "rejected its fields: n must be > 0"),
        (
            bad(["test.codec.Batch", {"samples": [msgpack.ExtType(EXT_MESSAGE, b"\x93")]}]),
            "malformed frame",
        ),
        (
            bad(["test.codec.Batch", {"samples": [msgpack.ExtType(EXT_MESSAGE, bad([1, 2, 3]))]}]),
            r"malformed nested message: expected \[tag, fields\]",
        ),
        (
            bad(["test.codec.Batch", {"samples": [msgpack.ExtType(EXT_MESSAGE, bad(["x", {}]))]}]),
            "unknown message tag 'x'",
        ),
        (bad(["test.codec.Empty", {}, msgpack.ExtType(9, b"")]), "unknown msgpack extension"),
    ],
)
def test_bad_frames_raise_codec_error(data: bytes, why: str) -> None:
    with pytest.raises(CodecError, match=why):
        decode(data)


def test_non_bytes_frame_is_rejected() -> None:
    with pytest.raises(CodecError, match="must be bytes, got str"):
        decode("not bytes")  # type: ignore[arg-type]


def test_encode_rejects_unregistered_messages_and_values() -> None:
    class Plain:
        pass

    with pytest.raises(CodecError, match="Plain: not a registered message"):
        encode(Plain())
    with pytest.raises(CodecError, match=r"Coord.vec: expected a sequence, got \{1.0\}"):
        encode(Coord({1.0}, 0.0, 0.0))  # type: ignore[arg-type]


def test_codec_error_is_a_peeractor_error() -> None:
    assert issubclass(CodecError, PeerActorError)
