"""Every overlay implements the whole ``Overlay`` protocol: the coordinate capabilities the
Vivaldi service and the protocol use are trivial, not missing, on ``ring`` and ``random``."""

from __future__ import annotations

import random

import pytest

from dvms.overlay import OVERLAYS, make_overlay
from dvms.overlay.base import CloseNode, Overlay
from dvms.vivaldi import Coordinate

NEAR = Coordinate((0.001, 0.0), 1e-5, 0.2)


def build(name: str) -> Overlay:
    return make_overlay(
        name, "n0", rng=random.Random(1), bootstrap=["n1", "n2"], successors=["n1", "n2"]
    )


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_capability_is_callable(name: str) -> None:
    overlay = build(name)
    overlay.observe("n0", Coordinate((0.0, 0.0), 1e-5, 0.2))
    overlay.observe("n1", NEAR, direct=True, heard_at=5.0)
    overlay.mark_dead("n2")
    overlay.observe("n2", NEAR, direct=True, heard_at=6.0)  # heard directly: alive again
    assert overlay.next_outside(["n1"], "n0") == "n2"
    if overlay.keeps_close_table:
        assert overlay.coordinate_of("n1") == NEAR
        assert overlay.close_nodes(1) in (["n1"], ["n2"])
        fresh = overlay.fresh_close_nodes(2, since=5.5)
        assert fresh == [CloseNode("n2", NEAR, 6.0)]
    else:
        assert overlay.coordinate_of("n1") is None and overlay.coordinate_of("n0") is None
        assert overlay.close_nodes(4) == [] and overlay.fresh_close_nodes(4) == []


def test_only_lbo_keeps_a_close_table() -> None:
    assert {name: build(name).keeps_close_table for name in OVERLAYS} == {
        "lbo": True,
        "ring": False,
        "random": False,
    }
