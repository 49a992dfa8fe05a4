"""The random overlay: a seeded random live known node (VMPlaceS's SimpleOverlay)."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable

from dvms.overlay.base import CloseNode
from dvms.vivaldi import Coordinate
from peeractor import NodeId

__all__ = ["RandomOverlay"]


class RandomOverlay:
    """A uniformly random known live node outside the partition.

    Known nodes: the bootstrap list and every node observed since (in that order, so a
    seed gives one history).
    """

    name = "random"
    keeps_close_table = False

    def __init__(
        self, node: NodeId, rng: random.Random, bootstrap: Iterable[NodeId] = ()
    ) -> None:
        self.node = node
        self.rng = rng
        self.known: list[NodeId] = []
        self._known: set[NodeId] = set()
        self.dead: set[NodeId] = set()
        for peer in bootstrap:
            self._learn(peer)

    def _learn(self, node: NodeId) -> None:
        if node != self.node and node not in self._known:
            self._known.add(node)
            self.known.append(node)

    def observe(
        self,
        node: NodeId,
        coordinate: Coordinate | None = None,
        *,
        direct: bool = False,
        heard_at: float | None = None,
    ) -> None:
        if direct:
            self.dead.discard(node)
        self._learn(node)

    def mark_dead(self, node: NodeId) -> None:
        self.dead.add(node)

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        excluded = members if isinstance(members, set | frozenset) else set(members)
        # a few rejection-sampling draws (cheap when the partition is small) ...
        for _ in range(8):
            if not self.known:
                return None
            pick = self.known[self.rng.randrange(len(self.known))]
            if pick not in excluded and pick not in self.dead:
                return pick
        # ... then an exact draw among the remaining candidates
        candidates = [n for n in self.known if n not in excluded and n not in self.dead]
        return self.rng.choice(candidates) if candidates else None

    def coordinate_of(self, node: NodeId) -> Coordinate | None:
        """None: this overlay keeps no coordinates."""
        return None

    def close_nodes(self, k: int | None = None) -> list[NodeId]:
        """Empty: this overlay keeps no close-node table."""
        return []

    def fresh_close_nodes(self, k: int, since: float = -math.inf) -> list[CloseNode]:
        """Empty: this overlay keeps no close-node table."""
        return []
