"""The overlay interface: who is next when a partition grows."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from peeractor import NodeId

__all__ = ["Overlay"]


class Overlay(Protocol):
    """A node's local view of the overlay (one per node, shared by its services)."""

    name: str

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        """The next live node outside ``members`` for a partition started by ``initiator``.

        None when this node knows no such node.
        """
        ...

    def mark_dead(self, node: NodeId) -> None:
        """Stop proposing ``node`` (it failed to answer); it may come back via gossip."""
        ...
