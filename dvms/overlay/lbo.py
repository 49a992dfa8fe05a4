"""LBO: the Locality-Based Overlay — the closest node to the initiator, by Vivaldi.

Each node keeps a close-node table: the ``table_size`` (default 100, as DVMS) nodes closest
to itself by estimated RTT among every coordinate it observed (its own pings, gossiped peer
samples). ``next_outside(members, initiator)`` returns the table entry closest to the
*initiator*'s coordinate that is not a member and not dead. The initiator's coordinate must
have been observed (the DVMS protocol carries it in the partition and calls
``observe(initiator, coordinate)`` first); unknown, this node's own coordinate is used.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection

import numpy as np

from dvms.vivaldi import Coordinate
from dvms.vivaldi.batch import PackedCoordinates, distances
from peeractor import NodeId

__all__ = ["LboOverlay"]


class LboOverlay:
    """Closest node to the initiator outside the partition, from a close-node table."""

    name = "lbo"

    def __init__(
        self,
        node: NodeId,
        *,
        table_size: int = 100,
        recent_size: int = 8,
        stale_after_s: float | None = 120.0,
    ) -> None:
        """``recent_size``: how many other observed coordinates (not in the table) are kept
        for initiator look-ups and as a fallback. ``stale_after_s``: table entries not
        known alive (``heard_at``) within this long of the latest time observed are
        proposed only when no fresher entry qualifies (None: never)."""
        if table_size < 1:
            raise ValueError(f"table_size must be >= 1, got {table_size}")
        if recent_size < 0:
            raise ValueError(f"recent_size must be >= 0, got {recent_size}")
        self.node = node
        self.table_size = table_size
        self.recent_size = recent_size
        self.stale_after_s = stale_after_s
        self._latest = -math.inf  # the latest heard_at seen: this overlay's idea of "now"
        self.own: Coordinate | None = None
        self.dead: set[NodeId] = set()
        self._slots: list[NodeId | None] = []
        self._slot_of: dict[NodeId, int] = {}
        self._data = np.zeros((0, 4))
        self._errors = np.zeros(0)
        self._heard = np.zeros(0)
        self._heard_col = 3
        self._vecs = np.zeros((0, 0))
        self._heights = np.zeros(0)
        self._adjust = np.zeros(0)
        self._dist = np.zeros(0)
        self._stale = False
        self._close_cache: list[NodeId] | None = None
        self._close_cut = math.inf
        self._own_ref: Coordinate | None = None
        self._empty = np.zeros(0, dtype=bool)
        self._far: int | None = None  # slot of the farthest entry, when known
        self._recent: OrderedDict[NodeId, Coordinate] = OrderedDict()

    def table(self) -> dict[NodeId, Coordinate]:
        """The close-node table: node → last observed coordinate (sorted by node)."""
        return {n: self._coordinate_at(self._slot_of[n]) for n in sorted(self._slot_of)}

    def close_nodes(self, k: int | None = None) -> list[NodeId]:
        """The ``k`` (default all) live table entries closest to this node, closest first."""
        self._refresh()
        cache = self._close_cache
        want = len(self._slot_of) if k is None else min(k, len(self._slot_of))
        if cache is None or len(cache) < want:
            cache = self._close_cache = self._closest(max(want, 16))
            self._close_cut = float(self._dist[self._slot_of[cache[-1]]]) if cache else math.inf
        return cache[:want]

    def _closest(self, k: int) -> list[NodeId]:
        slots, dist = self._slots, self._dist
        k = min(k, len(self._slot_of))
        if k <= 0:
            return []
        if k < len(dist):
            index = np.argpartition(dist, k - 1)[:k].tolist()
        else:
            index = list(range(len(dist)))
        index.sort(key=dist.item)
        return [n for n in (slots[i] for i in index) if n is not None]

    def coordinate_of(self, node: NodeId) -> Coordinate | None:
        """The last coordinate observed for ``node``, if still remembered."""
        if node == self.node:
            return self.own
        slot = self._slot_of.get(node)
        if slot is not None:
            return self._coordinate_at(slot)
        return self._recent.get(node)

    def heard_at(self, node: NodeId) -> float | None:
        """When ``node`` was last known alive (``observe(..., heard_at=)``), if in the table."""
        slot = self._slot_of.get(node)
        if slot is None:
            return None
        value = float(self._heard[slot])
        return None if value == -math.inf else value

    def observe(
        self,
        node: NodeId,
        coordinate: Coordinate | None = None,
        *,
        direct: bool = False,
        heard_at: float | None = None,
    ) -> None:
        """Learn ``node``'s coordinate; keep it in the table if it is among the closest.

        ``heard_at``: when ``node`` was last known alive (the caller's clock); the table
        keeps the latest such time per entry (see ``heard_at()``).
        """
        if direct:
            self.dead.discard(node)
        if coordinate is None:
            return
        if node == self.node:
            self.own = coordinate
            ref = self._own_ref
            # Cached distances rank the table; only this node's vec changes that ranking.
            # Recompute them once it moved by 5 % of the 16th-closest distance.
            if (
                ref is None
                or not math.isfinite(self._close_cut)
                or len(ref.vec) != len(coordinate.vec)
                or math.dist(ref.vec, coordinate.vec) > 0.05 * self._close_cut
            ):
                self._stale = True
            return
        if self.recent_size:
            self._recent[node] = coordinate
            self._recent.move_to_end(node)
            if len(self._recent) > self.recent_size:
                self._recent.popitem(last=False)
        if node in self.dead:
            return
        self._ensure_arrays(len(coordinate.vec))
        slot = self._slot_of.get(node)
        if slot is None:
            slot = self._free_slot()
            if slot is None:
                self._refresh()
                far = self._far
                if far is None:
                    far = self._far = int(np.argmax(self._dist))
                if self._distance_from_own(coordinate) >= self._dist[far]:
                    return
                self._evict(far)
                slot = far
        self._put(slot, node, coordinate)
        if heard_at is not None:
            if heard_at > self._heard[slot]:
                self._heard[slot] = heard_at
            if heard_at > self._latest:
                self._latest = heard_at

    def mark_dead(self, node: NodeId) -> None:
        """Forget ``node`` in the table and never propose it until heard from directly."""
        self.dead.add(node)
        slot = self._slot_of.get(node)
        if slot is not None:
            self._evict(slot)

    def next_outside(self, members: Collection[NodeId], initiator: NodeId) -> NodeId | None:
        """The live table entry closest to the initiator, outside ``members``."""
        excluded = set(members)
        excluded.add(self.node)
        origin = self.coordinate_of(initiator) or self.own
        mask = np.array(
            [n is None or n in excluded or n in self.dead for n in self._slots], dtype=bool
        )
        if self.stale_after_s is not None and math.isfinite(self._latest):
            fresh = mask | (self._heard < self._latest - self.stale_after_s)
            if not fresh.all():
                mask = fresh  # prefer entries known alive recently
        if not mask.all():
            if origin is None:
                return min(n for n, m in zip(self._slots, mask, strict=True) if not m and n)
            packed = PackedCoordinates(self._vecs, self._heights, self._adjust)
            dist = distances(origin, packed)
            dist[mask] = np.inf
            best = float(dist.min())
            return min(n for n, d in zip(self._slots, dist, strict=True) if d == best and n)
        # fall back on recently observed nodes outside the table
        fallback = [
            (origin.distance_to(c) if origin is not None else 0.0, n)
            for n, c in self._recent.items()
            if n not in excluded and n not in self.dead
        ]
        return min(fallback)[1] if fallback else None

    # -- table storage -------------------------------------------------------------
    def _ensure_arrays(self, dims: int) -> None:
        if self._vecs.shape[1] == dims:
            return
        if self._slot_of:
            raise ValueError(f"coordinate of {dims} dimensions, table has {self._vecs.shape[1]}")
        n = self.table_size
        # one row per slot: vec..., height, adjustment, error, heard_at (one write per update)
        self._data = np.zeros((n, dims + 4))
        self._vecs = self._data[:, :dims]
        self._heights = self._data[:, dims]
        self._adjust = self._data[:, dims + 1]
        self._errors = self._data[:, dims + 2]
        self._heard = self._data[:, dims + 3]
        self._heard[:] = -math.inf
        self._heard_col = dims + 3
        self._dist = np.full(n, np.inf)
        self._empty = np.ones(n, dtype=bool)
        self._slots = [None] * n

    def _free_slot(self) -> int | None:
        if len(self._slot_of) >= self.table_size:
            return None
        return self._slots.index(None)

    def _put(self, slot: int, node: NodeId, coordinate: Coordinate) -> None:
        distance = self._distance_from_own(coordinate)
        cache = self._close_cache
        # A new node closer than the cached cut invalidates the cached closest list; an
        # update of a listed node only re-orders it (tolerated until the next refresh).
        if cache is not None and node not in cache and distance <= self._close_cut:
            self._close_cache = None
        if self._slots[slot] != node:
            self._heard[slot] = -math.inf
        self._slots[slot] = node
        self._slot_of[node] = slot
        self._data[slot, : self._heard_col] = (
            *coordinate.vec,
            coordinate.height,
            coordinate.adjustment,
            coordinate.error,
        )
        self._dist[slot] = distance
        self._empty[slot] = False
        self._far = None

    def _evict(self, slot: int) -> None:
        if self._close_cache is not None and self._slots[slot] in self._close_cache:
            self._close_cache = None
        node = self._slots[slot]
        if node is not None:
            del self._slot_of[node]
        self._slots[slot] = None
        self._dist[slot] = np.inf
        self._empty[slot] = True
        self._far = None

    def _coordinate_at(self, slot: int) -> Coordinate:
        return Coordinate(
            tuple(self._vecs[slot].tolist()),
            float(self._heights[slot]),
            float(self._errors[slot]),
            float(self._adjust[slot]),
        )

    def _distance_from_own(self, coordinate: Coordinate) -> float:
        return np.inf if self.own is None else self.own.distance_to(coordinate)

    def _refresh(self) -> None:
        """Recompute cached distances from this node after its own coordinate moved."""
        if not self._stale or self.own is None or not self._slots:
            return
        self._stale = False
        self._close_cache = None
        self._own_ref = self.own
        packed = PackedCoordinates(self._vecs, self._heights, self._adjust)
        dist = distances(self.own, packed)
        dist[self._empty] = np.inf
        self._dist = dist
        self._far = None
