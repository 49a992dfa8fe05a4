"""Overlays: exact behaviour of lbo, ring and random on hand-made views."""

from __future__ import annotations

import random

import pytest

from dvms.errors import InputError
from dvms.overlay import (
    LboOverlay,
    RandomOverlay,
    RingOverlay,
    build_ring,
    make_overlay,
)
from dvms.vivaldi import Coordinate


def at(x: float, y: float = 0.0, height: float = 1e-5) -> Coordinate:
    return Coordinate((x, y), height, 0.1, 0.0)


def lbo_line(table_size: int = 100) -> LboOverlay:
    """Node "n0" at x=0, peers "n1".."n9" at x = 1..9 ms (closer = smaller index); exact
    closest (no spread among near-equal candidates)."""
    overlay = LboOverlay("n0", table_size=table_size, spread_s=0.0)
    overlay.observe("n0", at(0.0))
    for i in (5, 3, 9, 1, 7, 2, 8, 4, 6):
        overlay.observe(f"n{i}", at(i * 1e-3))
    return overlay


def test_lbo_returns_the_closest_node_to_the_initiator_outside_members() -> None:
    overlay = lbo_line()
    assert overlay.next_outside(["n0"], "n0") == "n1"
    assert overlay.next_outside(["n0", "n1", "n2"], "n0") == "n3"
    # the initiator's coordinate decides, not this node's
    overlay.observe("n7", at(7e-3))
    assert overlay.next_outside(["n0", "n7"], "n7") == "n6"  # n6/n8 tie: by name
    overlay.observe("m", at(7.6e-3))
    assert overlay.next_outside(["n0", "n7"], "n7") == "m"


def test_lbo_table_keeps_the_closest_table_size_nodes() -> None:
    overlay = lbo_line(table_size=3)
    assert sorted(overlay.table()) == ["n1", "n2", "n3"]
    assert overlay.close_nodes() == ["n1", "n2", "n3"]
    overlay.observe("n0", at(9e-3))  # this node moved next to n9: distances are refreshed
    overlay.observe("n10", at(10e-3))
    overlay.observe("n9", at(9e-3))
    assert overlay.close_nodes() == ["n9", "n10", "n3"]


def test_lbo_skips_dead_nodes_until_heard_from_directly() -> None:
    overlay = lbo_line()
    overlay.mark_dead("n1")
    assert overlay.next_outside(["n0"], "n0") == "n2"
    overlay.observe("n1", at(1e-3))  # gossiped: still dead
    assert overlay.next_outside(["n0"], "n0") == "n2"
    overlay.observe("n1", at(1e-3), direct=True)
    assert overlay.next_outside(["n0"], "n0") == "n1"


def test_lbo_prefers_entries_known_alive_recently() -> None:
    overlay = LboOverlay("n0", stale_after_s=120.0)
    overlay.observe("n0", at(0.0))
    overlay.observe("n1", at(1e-3), heard_at=100.0)
    overlay.observe("n2", at(2e-3), heard_at=300.0)
    overlay.observe("n3", at(3e-3), heard_at=250.0)
    assert overlay.heard_at("n1") == 100.0 and overlay.heard_at("zz") is None
    # latest known time 300: n1 (200 s old) is stale, n2 and n3 are fresh
    assert overlay.next_outside(["n0"], "n0") == "n2"
    assert overlay.next_outside(["n0", "n2"], "n0") == "n3"
    # with no fresh candidate left, a stale one is still better than nothing
    assert overlay.next_outside(["n0", "n2", "n3"], "n0") == "n1"
    overlay.observe("n1", at(1e-3), heard_at=290.0)  # relayed news: n1 is alive
    assert overlay.next_outside(["n0"], "n0") == "n1"
    overlay.observe("n1", at(1e-3), heard_at=50.0)  # older news never rolls it back
    assert overlay.heard_at("n1") == 290.0
    assert LboOverlay("n0", stale_after_s=None).stale_after_s is None


def test_lbo_spreads_partitions_over_equally_close_nodes() -> None:
    """Hosts of one site within ``spread_s`` of each other: each initiator gets its own
    deterministic pick among them, never a farther node; spread_s=0 gives the closest."""
    overlay = LboOverlay("me", spread_s=0.5e-3)
    overlay.observe("me", at(0.0))
    site = [f"s{i}" for i in range(20)]
    for i, node in enumerate(site):
        overlay.observe(node, at(1e-3 + i * 1e-5))  # 1.00–1.19 ms away: one site
    overlay.observe("far", at(3e-3))
    initiators = [f"init{i}" for i in range(40)]
    for init in initiators:
        overlay.observe(init, at(0.0))
    busy = ["me", *initiators]  # the initiators are all in partitions of their own
    picks = [overlay.next_outside(busy, init) for init in initiators]
    assert set(picks) <= set(site)
    assert len(set(picks)) >= 10  # spread, not all the same host
    assert picks == [overlay.next_outside(busy, i) for i in initiators]  # deterministic
    # a partition already holding the whole site grows to the next site
    assert overlay.next_outside([*busy, *site], "init0") == "far"
    exact = LboOverlay("me", spread_s=0.0)
    exact.observe("me", at(0.0))
    for i, node in enumerate(site):
        exact.observe(node, at(1e-3 + i * 1e-5))
    assert {exact.next_outside(["me"], init) for init in initiators} == {"s0"}
    with pytest.raises(ValueError, match="spread_s"):
        LboOverlay("me", spread_s=-1.0)


def test_lbo_never_returns_itself_and_none_when_nothing_is_left() -> None:
    overlay = lbo_line()
    everyone = [f"n{i}" for i in range(1, 10)]
    assert overlay.next_outside(everyone, "n1") is None
    assert LboOverlay("a").next_outside([], "a") is None


def test_lbo_without_coordinates_of_its_own_still_answers_deterministically() -> None:
    overlay = LboOverlay("a")
    overlay.observe("c", at(1.0))
    overlay.observe("b", at(2.0))
    assert overlay.next_outside(["a"], "a") == "b"  # no distances known: by name


def test_lbo_falls_back_on_recent_coordinates_outside_the_table() -> None:
    overlay = LboOverlay("a", table_size=1)
    overlay.observe("a", at(0.0))
    overlay.observe("b", at(1e-3))
    overlay.observe("c", at(2e-3))  # not kept in the table (farther than b)
    assert overlay.table().keys() == {"b"}
    assert overlay.next_outside(["a", "b"], "a") == "c"


def test_build_ring_gives_consistent_successor_lists() -> None:
    nodes = [f"h{i}" for i in range(10)]
    ring = build_ring(nodes, random.Random(4), successors=3)
    assert ring == build_ring(reversed(nodes), random.Random(4), successors=3)
    assert sorted(ring) == nodes
    # following first successors visits every node once: one ring
    seen, node = [], "h0"
    for _ in range(10):
        seen.append(node)
        node = ring[node][0]
    assert sorted(seen) == nodes and node == "h0"
    for n, succ in ring.items():
        assert len(succ) == 3 and n not in succ
        assert succ[1] == ring[succ[0]][0] and succ[2] == ring[succ[1]][0]
    assert build_ring(["a", "b"], random.Random(1), successors=5) == {"a": ["b"], "b": ["a"]}


def test_ring_walks_successors_skipping_members_and_dead() -> None:
    ring = RingOverlay("a", ["b", "c", "d", "e"])
    assert ring.next_outside(["a"], "a") == "b"
    assert ring.next_outside(["a", "b", "c"], "x") == "d"
    ring.mark_dead("d")
    assert ring.next_outside(["a", "b", "c"], "x") == "e"
    assert ring.next_outside(["a", "b", "c", "e"], "x") is None
    ring.observe("d", None, direct=True)
    assert ring.next_outside(["a", "b", "c"], "x") == "d"


def test_random_overlay_is_seeded_uniform_and_skips_members_and_dead() -> None:
    nodes = [f"n{i}" for i in range(6)]
    overlay = RandomOverlay("n0", random.Random(11), bootstrap=nodes)
    assert overlay.known == nodes[1:]
    picks = [overlay.next_outside(["n0", "n1"], "n0") for _ in range(4000)]
    counts = {n: picks.count(n) for n in nodes}
    assert counts["n0"] == counts["n1"] == 0
    assert all(900 < counts[n] < 1100 for n in nodes[2:])
    again = RandomOverlay("n0", random.Random(11), bootstrap=nodes)
    assert [again.next_outside(["n0", "n1"], "n0") for _ in range(4000)] == picks
    overlay.mark_dead("n2")
    overlay.mark_dead("n3")
    assert {overlay.next_outside(["n1", "n4"], "n0") for _ in range(200)} == {"n5"}
    assert overlay.next_outside(["n1", "n4", "n5"], "n0") is None
    overlay.observe("n9")
    assert overlay.next_outside(["n1", "n4", "n5"], "n0") == "n9"


def test_make_overlay_by_name() -> None:
    assert make_overlay("lbo", "a").name == "lbo"
    assert make_overlay("ring", "a", successors=["b"]).next_outside([], "a") == "b"
    assert make_overlay("random", "a", rng=random.Random(1), bootstrap=["b"]).name == "random"
    with pytest.raises(InputError, match="unknown overlay 'chord'; allowed: lbo, ring, random"):
        make_overlay("chord", "a")
