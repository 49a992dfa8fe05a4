"""The overlay interface: who is next when a partition grows."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from dvms.vivaldi import Coordinate
from peeractor import NodeId

__all__ = ["Overlay"]


class Overlay(Protocol):
    """A node's local view of the overlay (one per node, shared by its services).

    No implementation ever returns a member, this node itself, or a node marked dead.
    """

    name: str

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        """The next live node outside ``members`` for a partition started by ``initiator``.

        None when this node knows no such node.
        """
        ...

    def mark_dead(self, node: NodeId) -> None:
        """Stop proposing ``node`` (it failed to answer) until heard from directly again."""
        ...

    def observe(
        self, node: NodeId, coordinate: Coordinate | None = None, *, direct: bool = False
    ) -> None:
        """Learn of ``node`` (and its latest Vivaldi coordinate, if known).

        ``direct``: the information comes from ``node`` itself (a message it sent), which
        also clears a dead mark; second-hand (gossiped) observations never do. This node's
        own coordinate is published with ``observe(self_node, coordinate)``.
        """
        ...
