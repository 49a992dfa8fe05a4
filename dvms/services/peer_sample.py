"""``PeerSample``: the Vivaldi service's bounded, gossip-mixed sample of peer ids.

Membership and uniform draws are O(1) (a list plus an index). Draws take the caller's rng
(the service's), so a seed gives one history.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Iterator

from peeractor import NodeId

__all__ = ["PeerSample"]


class PeerSample:
    """At most ``capacity`` peer ids, never ``own``; once full, a new peer replaces a
    uniformly drawn member."""

    def __init__(self, own: NodeId, capacity: int) -> None:
        self.own = own
        self.capacity = capacity
        self._members: list[NodeId] = []
        self._index: dict[NodeId, int] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, node: object) -> bool:
        return node in self._index

    def __iter__(self) -> Iterator[NodeId]:
        return iter(self._members)

    @property
    def full(self) -> bool:
        return len(self._members) >= self.capacity

    def add(self, node: NodeId, rng: random.Random) -> None:
        """Add ``node`` (a no-op for a member or ``own``), evicting a random member when
        full."""
        index = self._index
        if node in index or node == self.own:
            return
        members = self._members
        if len(members) >= self.capacity:
            # the victim's latency filter stays: the client keeps the most recently
            # observed peers' filters (``latency_filter_peers``) whatever the sample holds
            victim = members[int(rng.random() * len(members))]
            self.remove(victim)
        index[node] = len(members)
        members.append(node)

    def remove(self, node: NodeId) -> None:
        index = self._index.pop(node, None)
        if index is None:
            return
        last = self._members.pop()
        if last != node:
            self._members[index] = last
            self._index[last] = index

    def merge(self, peers: Iterable[NodeId], skip: Collection[NodeId], rng: random.Random) -> None:
        """Learn gossiped peer ids (except those in ``skip``): fill the sample, but once full
        replace at most one random member per call (enough to keep it mixing, cheap for
        large runs)."""
        index, me, members, capacity = self._index, self.own, self._members, self.capacity
        for node in peers:
            if node in index or node == me or node in skip:
                continue
            full = len(members) >= capacity
            self.add(node, rng)
            if full:
                break

    def pick(self, rng: random.Random) -> NodeId | None:
        """A uniformly drawn member (None when empty; no draw then)."""
        members = self._members
        if not members:
            return None
        return members[int(rng.random() * len(members))]

    def draw(self, n: int, rng: random.Random) -> tuple[NodeId, ...]:
        """``n`` members drawn with replacement (duplicates are harmless in gossip)."""
        members = self._members
        if not members:
            return ()
        size = len(members)
        return tuple([members[int(rng.random() * size)] for _ in range(n)])
