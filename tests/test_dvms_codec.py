"""Every ``dvms.*`` and ``vivaldi.*`` message crosses the wire codec unchanged.

The values are drawn from each message's own field types (hypothesis), so a message added,
or a field changed, is covered without editing this test.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dvms.protocol  # registers the dvms.* messages
import dvms.services.vivaldi  # noqa: F401  (registers the vivaldi.* messages)
from peeractor.codec import decode, encode
from peeractor.message import registered_tags

PREFIXES = ("dvms.", "vivaldi.")
TAGS = sorted(tag for tag in registered_tags() if tag.startswith(PREFIXES))


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the field type ``tp`` (only what the codec carries)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**40), 2**40)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=6)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of([strategy_for(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(tp)}
        return st.builds(tp, **fields)
    raise AssertionError(f"no strategy for field type {tp!r}")


def test_every_message_the_protocol_exports_is_covered() -> None:
    from dvms.protocol import messages

    exported = {getattr(messages, name) for name in messages.__all__}
    covered = {registered_tags()[tag] for tag in TAGS if tag.startswith("dvms.")}
    assert covered == {cls for cls in exported if isinstance(cls, type)}
    assert {"dvms.Partition", "vivaldi.Coordinate", "vivaldi.Ping"} <= set(TAGS)


@pytest.mark.parametrize("tag", TAGS)
def test_message_round_trips(tag: str) -> None:
    cls = registered_tags()[tag]

    @settings(max_examples=25, deadline=None)
    @given(strategy_for(cls))
    def round_trip(message: Any) -> None:
        back = decode(encode(message))
        assert back == message and type(back) is cls

    round_trip()


def test_a_travelling_partition_keeps_its_nested_types() -> None:
    from dvms.overlay.base import WireCoordinate
    from dvms.protocol.messages import HostSnapshot, PartitionView, TransmissionOfAnISP

    view = PartitionView(
        id="h1:1",
        initiator="h1",
        leader="h2",
        version=3,
        state="blocked",
        members=("h1", "h2"),
        started_at=1.0,
    )
    snap = HostSnapshot("h1", 700.0, 32768, (("v1", 60.0, 1024),), 1.5)
    token = TransmissionOfAnISP(
        view=view,
        snapshots=(snap,),
        visited=("h9",),
        hops=1,
        coordinate=WireCoordinate((0.01, 0.02), 1e-5, 0.2, 0.0),
        sender="h2",
        seq=7,
    )
    back = decode(encode(token))
    assert back == token
    assert type(back.view) is PartitionView and type(back.coordinate) is WireCoordinate
    assert type(back.snapshots[0]) is HostSnapshot
