"""The overlay interface (who is next when a partition grows) and its wire coordinate.

Every capability a service uses is part of ``Overlay``: overlays without network
coordinates (``ring``, ``random``) implement the coordinate methods trivially (no
coordinate, no close nodes) and declare ``keeps_close_table = False``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import NamedTuple, Protocol

from dvms.vivaldi import Coordinate
from peeractor import NodeId, message

__all__ = ["CloseNode", "Overlay", "WireCoordinate"]


@message("vivaldi.Coordinate")
class WireCoordinate(Coordinate):
    """A ``Coordinate`` on the wire: the same fields, registered as a message, so that a
    received one is used as is (seconds; ``error`` dimensionless)."""

    @staticmethod
    def of(c: Coordinate) -> WireCoordinate:
        if isinstance(c, WireCoordinate):
            return c
        return WireCoordinate(c.vec, c.height, c.error, c.adjustment)


class CloseNode(NamedTuple):
    """A close-node table entry known alive recently (what gossip relays)."""

    node: NodeId
    coordinate: Coordinate
    heard_at: float
    """When ``node`` was last known alive (the observer's clock)."""


class Overlay(Protocol):
    """A node's local view of the overlay (one per node, shared by its services).

    No implementation ever returns a member, this node itself, or a node marked dead.
    """

    name: str
    keeps_close_table: bool
    """Whether the overlay ranks nodes by coordinate in a close-node table (``lbo``): then
    the Vivaldi service spends some pings on ``close_nodes`` and gossips
    ``fresh_close_nodes``. False: both are always empty."""

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        """The next live node outside ``members`` for a partition started by ``initiator``.

        None when this node knows no such node.
        """
        ...

    def mark_dead(self, node: NodeId) -> None:
        """Stop proposing ``node`` (it failed to answer) until heard from directly again."""
        ...

    def observe(
        self,
        node: NodeId,
        coordinate: Coordinate | None = None,
        *,
        direct: bool = False,
        heard_at: float | None = None,
    ) -> None:
        """Learn of ``node`` (and its latest Vivaldi coordinate, if known).

        ``direct``: the information comes from ``node`` itself (a message it sent), which
        also clears a dead mark; second-hand (gossiped) observations never do. This node's
        own coordinate is published with ``observe(self_node, coordinate)``.
        ``heard_at``: when ``node`` was last known alive (the caller's clock), for overlays
        that keep liveness; None when the coordinate was handed in, not heard.
        """
        ...

    def coordinate_of(self, node: NodeId) -> Coordinate | None:
        """The last coordinate observed for ``node`` (this node's own too), if known."""
        ...

    def close_nodes(self, k: int | None = None) -> list[NodeId]:
        """The ``k`` (default all) live close-node entries closest to this node, closest
        first."""
        ...

    def fresh_close_nodes(self, k: int, since: float = -math.inf) -> list[CloseNode]:
        """Of the ``k`` closest live entries, those known alive at or after ``since``,
        closest first."""
        ...
