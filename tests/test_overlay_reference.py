"""``LboOverlay`` against a naive reference: with ``spread_s=0`` and ``refresh_fraction=0``
(and a table large enough to hold every node), ``next_outside`` is the brute-force argmin,
over the observed live coordinates, of the distance from the initiator (ties by node id).

The reference keeps a plain dict of coordinates and scans it; the overlay keeps numpy rows,
cached distances, free lists and caches. Coordinates sit on a grid of powers of two, so
distances are exact and ties are real ties (broken by node id on both sides).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection

from hypothesis import given, settings
from hypothesis import strategies as st

from dvms.overlay import LboOverlay
from dvms.vivaldi import Coordinate

NODES = [f"n{i}" for i in range(10)]
OWN = "n0"
STALE_AFTER_S = 10.0
RECENT = 3
GRID = 2.0**-10


class NaiveLbo:
    """The overlay's contract, written as plainly as possible."""

    def __init__(self) -> None:
        self.own: Coordinate | None = None
        self.table: dict[str, Coordinate] = {}
        self.heard: dict[str, float] = {}
        self.latest = -math.inf
        self.dead: set[str] = set()
        self.recent: OrderedDict[str, Coordinate] = OrderedDict()

    def observe(
        self, node: str, coordinate: Coordinate | None, direct: bool, heard_at: float | None
    ) -> None:
        if direct:
            self.dead.discard(node)
        if coordinate is None:
            return
        if node == OWN:
            self.own = coordinate
            return
        if node in self.dead:
            if heard_at is None:  # handed in, not heard: kept among the recent ones
                self.recent[node] = coordinate
                self.recent.move_to_end(node)
                if len(self.recent) > RECENT:
                    self.recent.popitem(last=False)
            return
        if node not in self.table:
            self.recent.pop(node, None)
            self.heard[node] = -math.inf
        self.table[node] = coordinate
        if heard_at is not None:
            self.heard[node] = max(self.heard[node], heard_at)
            self.latest = max(self.latest, heard_at)

    def mark_dead(self, node: str) -> None:
        self.dead.add(node)
        self.table.pop(node, None)
        self.heard.pop(node, None)

    def coordinate_of(self, node: str) -> Coordinate | None:
        if node == OWN:
            return self.own
        return self.table.get(node) or self.recent.get(node)

    def next_outside(self, members: Collection[str], initiator: str) -> str | None:
        excluded = {*members, OWN}
        live = [n for n in self.table if n not in excluded and n not in self.dead]
        if math.isfinite(self.latest):
            fresh = [n for n in live if self.heard[n] >= self.latest - STALE_AFTER_S]
            live = fresh or live
        origin = self.coordinate_of(initiator) or self.own
        if live:
            if origin is None:
                return min(live)
            return min(live, key=lambda n: (distance(origin, self.table[n]), n))
        fallback = [
            (origin.distance_to(c) if origin is not None else 0.0, n)
            for n, c in self.recent.items()
            if n not in excluded and n not in self.dead
        ]
        return min(fallback)[1] if fallback else None


def distance(a: Coordinate, b: Coordinate) -> float:
    """The estimated RTT, summed in the order the overlay's batch computation sums it."""
    dx, dy = b.vec[0] - a.vec[0], b.vec[1] - a.vec[1]
    raw = math.sqrt(dx * dx + dy * dy) + b.height + a.height
    adjusted = raw + b.adjustment + a.adjustment
    return adjusted if adjusted > 0.0 else raw


on_grid = st.integers(-6, 6).map(lambda k: k * GRID)
coordinate = st.builds(
    lambda x, y, h, adj: Coordinate((x, y), h, 0.5, adj),
    on_grid,
    on_grid,
    st.integers(1, 4).map(lambda k: k * GRID),
    st.integers(-2, 2).map(lambda k: k * GRID),
)
node = st.sampled_from(NODES)
event = st.one_of(
    st.tuples(
        st.just("observe"),
        node,
        st.one_of(st.none(), coordinate),
        st.booleans(),
        st.one_of(st.none(), st.integers(0, 24).map(float)),
    ),
    st.tuples(st.just("dead"), node, st.none(), st.just(False), st.none()),
)
query = st.tuples(st.lists(node, max_size=6), node)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.lists(event, max_size=12), st.lists(query, max_size=3)), max_size=6))
def test_lbo_next_outside_is_the_brute_force_argmin(
    steps: list,  # type: ignore[type-arg]
) -> None:
    overlay = LboOverlay(
        OWN,
        table_size=len(NODES),
        recent_size=RECENT,
        stale_after_s=STALE_AFTER_S,
        refresh_fraction=0.0,
        spread_s=0.0,
    )
    naive = NaiveLbo()
    for events, queries in steps:
        for kind, who, coord, direct, heard_at in events:
            if kind == "dead":
                overlay.mark_dead(who)
                naive.mark_dead(who)
            else:
                overlay.observe(who, coord, direct=direct, heard_at=heard_at)
                naive.observe(who, coord, direct, heard_at)
        for members, initiator in queries:
            assert overlay.next_outside(members, initiator) == naive.next_outside(
                members, initiator
            ), (members, initiator)
        assert overlay.coordinate_of("n1") == naive.coordinate_of("n1")


def test_the_reference_is_not_trivially_satisfied() -> None:
    """A hand-made case where closeness to the initiator, not to this node, decides."""
    overlay = LboOverlay(OWN, refresh_fraction=0.0, spread_s=0.0)
    overlay.observe(OWN, Coordinate((0.0, 0.0), GRID, 0.5))
    overlay.observe("n1", Coordinate((GRID, 0.0), GRID, 0.5))
    overlay.observe("n2", Coordinate((6 * GRID, 0.0), GRID, 0.5))
    overlay.observe("n3", Coordinate((7 * GRID, 0.0), GRID, 0.5))
    assert overlay.next_outside([], OWN) == "n1"
    assert overlay.next_outside(["n3"], "n3") == "n2"
    assert overlay.next_outside(["n3", "n2"], "n3") == "n1"
