"""``make_overlay(name, node, ...)``: build a node's overlay by name."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from dvms.errors import InputError
from dvms.overlay.base import Overlay
from dvms.overlay.lbo import LboOverlay
from dvms.overlay.random_overlay import RandomOverlay
from dvms.overlay.ring import RingOverlay
from peeractor import NodeId

__all__ = ["OVERLAYS", "make_overlay"]

OVERLAYS = ("lbo", "ring", "random")
"""The overlay names ``make_overlay`` accepts."""


def make_overlay(
    name: str,
    node: NodeId,
    *,
    rng: random.Random | None = None,
    bootstrap: Iterable[NodeId] = (),
    successors: Sequence[NodeId] = (),
    table_size: int = 100,
) -> Overlay:
    """The overlay ``name`` for ``node``.

    ``lbo`` uses ``table_size``; ``ring`` needs ``successors`` (see ``build_ring``);
    ``random`` draws from ``rng`` (required) among ``bootstrap`` and observed nodes.
    Raises ``InputError`` for an unknown name.
    """
    if name == "lbo":
        return LboOverlay(node, table_size=table_size)
    if name == "ring":
        return RingOverlay(node, successors)
    if name == "random":
        if rng is None:
            raise ValueError("the random overlay needs an rng")
        return RandomOverlay(node, rng, bootstrap)
    raise InputError(f"overlay: unknown overlay {name!r}; allowed: {', '.join(OVERLAYS)}")
