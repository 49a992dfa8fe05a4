"""The ring overlay: Chord-like successors on a ring of random ids (the original DVMS).

``build_ring(nodes, rng, successors=k)`` draws a random 64-bit id per node, orders the ring
by id, and gives each node the ``k`` nodes following it. ``next_outside`` walks this node's
successor list and returns the first that is neither a member nor dead: partitions grow
along the ring, regardless of where the nodes are.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Sequence

from dvms.overlay.base import CloseNode
from dvms.vivaldi import Coordinate
from peeractor import NodeId

__all__ = ["RingOverlay", "build_ring"]


def build_ring(
    nodes: Iterable[NodeId], rng: random.Random, successors: int = 8
) -> dict[NodeId, list[NodeId]]:
    """Each node's successor list (``successors`` long, at most n−1) on a random-id ring."""
    if successors < 1:
        raise ValueError(f"successors must be >= 1, got {successors}")
    names = sorted(set(nodes))
    ids = {n: rng.getrandbits(64) for n in names}
    ring = sorted(names, key=lambda n: (ids[n], n))
    k = min(successors, len(ring) - 1)
    return {
        node: [ring[(i + j) % len(ring)] for j in range(1, k + 1)] for i, node in enumerate(ring)
    }


class RingOverlay:
    """The first live successor outside the partition."""

    name = "ring"
    keeps_close_table = False

    def __init__(self, node: NodeId, successors: Sequence[NodeId]) -> None:
        self.node = node
        self.successors = [s for s in successors if s != node]
        self.dead: set[NodeId] = set()

    def observe(
        self,
        node: NodeId,
        coordinate: Coordinate | None = None,
        *,
        direct: bool = False,
        heard_at: float | None = None,
    ) -> None:
        """Only clears a dead mark (when direct): the ring ignores coordinates."""
        if direct:
            self.dead.discard(node)

    def mark_dead(self, node: NodeId) -> None:
        self.dead.add(node)

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        excluded = set(members)
        for successor in self.successors:
            if successor not in excluded and successor not in self.dead:
                return successor
        return None

    def coordinate_of(self, node: NodeId) -> Coordinate | None:
        """None: this overlay keeps no coordinates."""
        return None

    def close_nodes(self, k: int | None = None) -> list[NodeId]:
        """Empty: this overlay keeps no close-node table."""
        return []

    def fresh_close_nodes(self, k: int, since: float = -math.inf) -> list[CloseNode]:
        """Empty: this overlay keeps no close-node table."""
        return []
