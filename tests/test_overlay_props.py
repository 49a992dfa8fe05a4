"""Property tests: whatever an overlay has seen, ``next_outside`` never returns a member,
itself or a node marked dead, and answers None only when it knows no other candidate."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dvms.overlay import LboOverlay, RandomOverlay, RingOverlay, build_ring
from dvms.vivaldi import Coordinate

NODES = [f"n{i}" for i in range(12)]
node = st.sampled_from(NODES)
coordinate = st.builds(
    lambda x, y, h: Coordinate((x, y), h, 0.3, 0.0),
    st.floats(min_value=-0.1, max_value=0.1),
    st.floats(min_value=-0.1, max_value=0.1),
    st.floats(min_value=1e-5, max_value=1e-3),
)
event = st.one_of(
    st.tuples(st.just("observe"), node, coordinate, st.booleans()),
    st.tuples(st.just("dead"), node, st.none(), st.booleans()),
)
query = st.tuples(st.lists(node, max_size=8), node)


def replay(overlay: LboOverlay | RingOverlay | RandomOverlay, events: list) -> set[str]:  # type: ignore[type-arg]
    """Apply the events; return the nodes currently marked dead (by the same rules)."""
    dead: set[str] = set()
    for kind, who, coord, direct in events:
        if kind == "dead":
            overlay.mark_dead(who)
            dead.add(who)
        else:
            overlay.observe(who, coord, direct=direct)
            if direct:
                dead.discard(who)
    return dead


@settings(max_examples=200, deadline=None)
@given(st.lists(event, max_size=40), st.lists(query, min_size=1, max_size=5), st.integers(0, 9))
def test_lbo_never_returns_a_member_itself_or_dead(
    events: list, queries: list, table_size: int  # type: ignore[type-arg]
) -> None:
    overlay = LboOverlay("n0", table_size=table_size + 1)
    dead = replay(overlay, events)
    for members, initiator in queries:
        got = overlay.next_outside(members, initiator)
        if got is not None:
            assert got not in members and got != "n0" and got not in dead
        else:
            known = set(overlay.table()) | set(overlay._recent)
            assert not (known - set(members) - dead - {"n0"})


@settings(max_examples=200, deadline=None)
@given(st.lists(event, max_size=40), st.lists(query, min_size=1, max_size=5), st.integers(0, 99))
def test_ring_never_returns_a_member_itself_or_dead(
    events: list, queries: list, seed: int  # type: ignore[type-arg]
) -> None:
    ring = build_ring(NODES, random.Random(seed), successors=4)
    overlay = RingOverlay("n0", ring["n0"])
    dead = replay(overlay, events)
    for members, initiator in queries:
        got = overlay.next_outside(members, initiator)
        candidates = [s for s in ring["n0"] if s not in members and s not in dead]
        assert got == (candidates[0] if candidates else None)


@settings(max_examples=200, deadline=None)
@given(st.lists(event, max_size=40), st.lists(query, min_size=1, max_size=5), st.integers(0, 99))
def test_random_never_returns_a_member_itself_or_dead(
    events: list, queries: list, seed: int  # type: ignore[type-arg]
) -> None:
    overlay = RandomOverlay("n0", random.Random(seed), bootstrap=NODES[:3])
    dead = replay(overlay, events)
    for members, initiator in queries:
        got = overlay.next_outside(members, initiator)
        candidates = set(overlay.known) - set(members) - dead - {"n0"}
        if candidates:
            assert got in candidates
        else:
            assert got is None
