"""``LboOverlay``'s close-table upkeep with a small, full table (evictions on every beaten
entry): the farthest slot it keeps incrementally is numpy's argmax of the cached distances
(first slot among ties), and the close-node cache's slots follow its nodes.

Coordinates sit on a coarse grid so that equal distances (ties) are common.
"""

from __future__ import annotations

import random

import pytest

from dvms.overlay import LboOverlay
from dvms.vivaldi import Coordinate

NODES = [f"n{i}" for i in range(7)]
GRID = 2.0**-8


def _grid_coordinate(rng: random.Random) -> Coordinate:
    x, y, h = rng.randint(-2, 2), rng.randint(-2, 2), rng.randint(0, 1)
    return Coordinate((x * GRID, y * GRID), (1 + h) * GRID, 0.5, 0.0)


def _check(lbo: LboOverlay) -> bool:
    """The invariants; True when the farthest slot was known (so it was checked)."""
    far = lbo._far
    if far is not None:
        assert far == int(lbo._distv.argmax())
    if lbo._close_cache is not None:
        assert lbo._close_cache == [lbo._slots[s] for s in lbo._close_slots]
    assert len(lbo._slot_of) <= lbo.table_size
    return far is not None


@pytest.mark.parametrize("refresh_fraction", [0.0, 0.5])
def test_farthest_slot_and_close_cache_stay_exact(refresh_fraction: float) -> None:
    """Random walks (seeded) of observations, own moves, deaths and close-node queries."""
    checked = 0
    for seed in range(300):
        rng = random.Random(seed)
        lbo = LboOverlay(NODES[0], table_size=4, refresh_fraction=refresh_fraction)
        lbo.observe(NODES[0], _grid_coordinate(rng))
        for t in range(80):
            kind, node = rng.random(), rng.choice(NODES[1:])
            if kind < 0.55:
                lbo.observe(node, _grid_coordinate(rng), direct=True, heard_at=float(t))
            elif kind < 0.75:
                lbo.observe(NODES[0], _grid_coordinate(rng))
            elif kind < 0.85:
                lbo.mark_dead(node)
            else:
                lbo.close_nodes(2)
            checked += _check(lbo)
    assert checked > 1000  # the farthest slot was known (and checked) often


def test_a_full_table_evicts_its_farthest_entry() -> None:
    """Not trivially satisfied: a closer node replaces the farthest, a farther one is left
    out, and ties keep the first slot as the farthest."""
    lbo = LboOverlay("me", table_size=2, refresh_fraction=0.0)
    lbo.observe("me", Coordinate((0.0,), GRID, 0.5, 0.0))
    lbo.observe("a", Coordinate((4 * GRID,), GRID, 0.5, 0.0), heard_at=0.0)
    lbo.observe("b", Coordinate((4 * GRID,), GRID, 0.5, 0.0), heard_at=0.0)
    lbo.observe("c", Coordinate((8 * GRID,), GRID, 0.5, 0.0), heard_at=0.0)  # farther
    assert sorted(lbo.table()) == ["a", "b"]
    lbo.observe("d", Coordinate((1 * GRID,), GRID, 0.5, 0.0), heard_at=0.0)  # closer
    assert sorted(lbo.table()) == ["b", "d"]  # "a" (the first of the tied) went
    assert lbo.close_nodes() == ["d", "b"]
    lbo.observe("b", Coordinate((0.5 * GRID,), GRID, 0.5, 0.0), heard_at=1.0)  # moves in
    lbo.observe("e", Coordinate((0.75 * GRID,), GRID, 0.5, 0.0), heard_at=1.0)
    assert sorted(lbo.table()) == ["b", "e"]  # now "d" was the farthest
