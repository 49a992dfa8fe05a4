"""LBO: the Locality-Based Overlay — the closest node to the initiator, by Vivaldi.

Each node keeps a close-node table: the ``table_size`` (default 100, as DVMS) nodes closest
to itself by estimated RTT among every coordinate it observed (its own pings, gossiped peer
samples). ``next_outside(members, initiator)`` returns the table entry closest to the
*initiator*'s coordinate that is not a member and not dead. The initiator's coordinate must
have been observed (the DVMS protocol carries it in the partition and calls
``observe(initiator, coordinate)`` first); unknown, this node's own coordinate is used.

"Closest" is up to Vivaldi's precision. Entries estimated within ``spread_s`` (default
0.5 ms) plus the initiator's own relative error estimate (``Coordinate.error``, capped at
1) times the best distance are equally close: hosts of one site differ by tens of µs,
below what coordinates resolve, and before coordinates converge nothing is resolved.
Among them the pick is a fixed pseudo-random function of (initiator, node). Without it,
every partition started in a site asks the same few hosts (those whose coordinates sit
nearest the site's centre), which then stay booked and turn growing partitions away, so
partitions grow with the site's size. With ``spread_s=0`` the closest entry is returned
(ties by node id), whatever the errors.

Cost: the table keeps each entry's coordinate object and its distance from this node as of
the last *refresh*; a refresh (one numpy pass over the table) happens only once this node's
own coordinate moved by more than ``refresh_fraction`` of the distance to its 16th-closest
entry, so the ranking of close nodes is approximate by at most that much in between.
Per observation the upkeep is O(1) but for an eviction: the farthest slot (what a newcomer
must beat) is kept exactly as entries move and recomputed (one argmax) only after the
farthest entry left or a refresh; the ``_CLOSE_CACHE`` closest are re-ranked only when a
newcomer beats the last of them, one of them leaves, or a refresh happens.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Collection

import numpy as np

from dvms.overlay.base import CloseNode
from dvms.vivaldi import Coordinate
from dvms.vivaldi.batch import PackedCoordinates, distances
from peeractor import NodeId

__all__ = ["LboOverlay"]

_GOLDEN = np.uint64(0x9E3779B1)
_MASK32 = np.uint64(0xFFFFFFFF)

_CLOSE_CACHE = 16
"""How many closest entries are ranked and cached at a time."""


class LboOverlay:
    """Closest node to the initiator outside the partition, from a close-node table."""

    name = "lbo"
    keeps_close_table = True

    def __init__(
        self,
        node: NodeId,
        *,
        table_size: int = 100,
        recent_size: int = 8,
        stale_after_s: float | None = 120.0,
        refresh_fraction: float = 0.5,
        spread_s: float = 0.5e-3,
    ) -> None:
        """``recent_size``: how many coordinates observed without ``heard_at`` (handed in by
        the overlay's user, e.g. a partition's initiator, not relayed by gossip) and left out
        of the table are kept, for initiator look-ups and as a fallback. ``stale_after_s``:
        table entries not known alive (``heard_at``) within this long of the latest time
        observed are proposed only when no fresher entry qualifies (None: never).
        ``refresh_fraction``: see the module docstring (0: recompute distances after every
        own move).
        ``spread_s``: see the module docstring (seconds, >= 0)."""
        if table_size < 1:
            raise ValueError(f"table_size must be >= 1, got {table_size}")
        if recent_size < 0:
            raise ValueError(f"recent_size must be >= 0, got {recent_size}")
        if not refresh_fraction >= 0:
            raise ValueError(f"refresh_fraction must be >= 0, got {refresh_fraction}")
        self.node = node
        self.table_size = table_size
        self.recent_size = recent_size
        self.stale_after_s = stale_after_s
        self.refresh_fraction = refresh_fraction
        if not spread_s >= 0:
            raise ValueError(f"spread_s must be >= 0, got {spread_s}")
        self.spread_s = spread_s
        # Per-slot scalars live in ``array``s (a Python float in and out, no numpy scalar
        # boxing on the hot path) with numpy views over the same memory for batch work.
        self._key_of = array("Q", bytes(8 * table_size))  # crc32 of each slot's node
        self._keys = np.frombuffer(self._key_of, dtype=np.uint64)
        self._latest = -math.inf  # the latest heard_at seen: this overlay's idea of "now"
        self.own: Coordinate | None = None
        self.dead: set[NodeId] = set()
        self._slots: list[NodeId | None] = [None] * table_size
        self._slot_of: dict[NodeId, int] = {}
        self._coords: list[Coordinate | None] = [None] * table_size
        self._heard = array("d", [-math.inf]) * table_size  # when each slot was heard from
        self._heardv = np.frombuffer(self._heard, dtype=np.float64)
        self._free: list[int] = list(range(table_size - 1, -1, -1))  # lowest slot last
        # numpy mirror of the coordinates (rows written lazily, before a batch query)
        # one row per slot: vec..., height, adjustment (one write per dirty row)
        self._data = np.zeros((table_size, 2))
        self._view = PackedCoordinates(self._data[:, :0], self._data[:, 0], self._data[:, 1])
        self._dirty: set[int] = set()
        # distances from ``_own_ref`` (inf for empty slots): an ``array`` (a list of floats
        # would cost ~3 KiB more per host, 30 MiB at 10,000 hosts); ``_distv`` views it
        self._dist = array("d", [math.inf]) * table_size
        self._distv = np.frombuffer(self._dist, dtype=np.float64)
        self._is_empty = bytearray(b"\x01") * table_size
        self._empty = np.frombuffer(self._is_empty, dtype=bool)
        self._stale = False
        self._close_cache: list[NodeId] | None = None
        self._close_slots: list[int] = []  # the cache's slots, in its order
        self._close_cut = math.inf
        self._own_ref: Coordinate | None = None
        self._far: int | None = None  # slot of the farthest entry, when known
        self._recent: OrderedDict[NodeId, Coordinate] = OrderedDict()

    def table(self) -> dict[NodeId, Coordinate]:
        """The close-node table: node → last observed coordinate (sorted by node)."""
        coords = self._coords
        return {n: c for n in sorted(self._slot_of) if (c := coords[self._slot_of[n]])}

    def close_nodes(self, k: int | None = None) -> list[NodeId]:
        """The ``k`` (default all) live table entries closest to this node, closest first."""
        if self._stale:
            self._refresh()
        cache = self._close_cache
        want = len(self._slot_of) if k is None else min(k, len(self._slot_of))
        if cache is None or len(cache) < want:
            cache, self._close_slots = self._closest(max(want, _CLOSE_CACHE))
            self._close_cache = cache
            self._close_cut = float(self._dist[self._slot_of[cache[-1]]]) if cache else math.inf
        return cache[:want]

    def fresh_close_nodes(self, k: int, since: float = -math.inf) -> list[CloseNode]:
        """Of the ``k`` closest live entries, those known alive at or after ``since``, as
        (node, coordinate, heard_at), closest first (what gossip relays)."""
        nodes = self.close_nodes(k)
        coords, heard = self._coords, self._heard
        new = tuple.__new__  # CloseNode(...) without its Python-level __new__ (hot path)
        out: list[CloseNode] = []
        for node, slot in zip(nodes, self._close_slots, strict=False):  # cached together
            at = heard[slot]
            coordinate = coords[slot]
            if at >= since and coordinate is not None:
                out.append(new(CloseNode, (node, coordinate, at)))
        return out

    def _closest(self, k: int) -> tuple[list[NodeId], list[int]]:
        """The ``k`` closest entries, closest first: their nodes and their slots."""
        slots, dist = self._slots, self._dist
        k = min(k, len(self._slot_of))
        if k <= 0:
            return [], []
        if k < len(dist):
            index = self._distv.argpartition(k - 1)[:k].tolist()
        else:
            index = list(range(len(dist)))
        index.sort(key=dist.__getitem__)
        index = [i for i in index if slots[i] is not None]
        nodes = [n for n in (slots[i] for i in index) if n is not None]  # (all of them)
        return nodes, index

    def coordinate_of(self, node: NodeId) -> Coordinate | None:
        """The last coordinate observed for ``node``, if still remembered."""
        if node == self.node:
            return self.own
        slot = self._slot_of.get(node)
        if slot is not None:
            return self._coords[slot]
        return self._recent.get(node)

    def heard_at(self, node: NodeId) -> float | None:
        """When ``node`` was last known alive (``observe(..., heard_at=)``), if in the table."""
        slot = self._slot_of.get(node)
        if slot is None:
            return None
        value = self._heard[slot]
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
            self._observe_own(coordinate)
            return
        remember = heard_at is None  # handed in by a user (e.g. an initiator), not gossip
        if node in self.dead:
            if remember:
                self._remember(node, coordinate)
            return
        own = self.own
        if own is None:
            distance = math.inf
        elif len(own.vec) == len(coordinate.vec):  # Coordinate.distance_to, inlined
            raw = math.dist(own.vec, coordinate.vec) + own.height + coordinate.height
            adjusted = raw + own.adjustment + coordinate.adjustment
            distance = adjusted if adjusted > 0.0 else raw
        else:
            distance = own.distance_to(coordinate)  # raises InvalidCoordinate
        slot = self._slot_of.get(node)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                if self._stale:
                    self._refresh()
                dist = self._dist
                far = self._far
                if far is None:
                    far = self._far = int(self._distv.argmax())
                if distance >= dist[far]:
                    if remember:
                        self._remember(node, coordinate)
                    return
                self._evict(far)
                slot = self._free.pop()
            self._recent.pop(node, None)
            self._slots[slot] = node
            self._slot_of[node] = slot
            self._heard[slot] = -math.inf
            self._is_empty[slot] = 0
            self._key_of[slot] = zlib.crc32(node.encode())
            if self._close_cache is not None and distance <= self._close_cut:
                self._close_cache = None  # a new node among the closest
        # an update of a listed node only re-orders it (tolerated until the next refresh)
        self._coords[slot] = coordinate
        self._dirty.add(slot)
        dist = self._dist
        far = self._far  # kept exact: the first slot of the largest distance, or None
        if far is not None:
            if slot == far:
                if distance < dist[slot]:
                    self._far = None
            else:
                farthest = dist[far]
                if distance > farthest or (distance == farthest and slot < far):
                    self._far = slot
        dist[slot] = distance
        if heard_at is not None:
            if heard_at > self._heard[slot]:
                self._heard[slot] = heard_at
            if heard_at > self._latest:
                self._latest = heard_at

    def _remember(self, node: NodeId, coordinate: Coordinate) -> None:
        """Keep a coordinate left out of the table among the recent ones."""
        if self.recent_size:
            recent = self._recent
            recent[node] = coordinate
            recent.move_to_end(node)
            if len(recent) > self.recent_size:
                recent.popitem(last=False)

    def _observe_own(self, coordinate: Coordinate) -> None:
        self.own = coordinate
        ref = self._own_ref
        # Cached distances rank the table; only this node's coordinate changes that ranking.
        # A distance from this node changes by at most how far it moved (vector, height
        # and adjustment): refresh once that exceeds a fraction of the close cut.
        if (
            ref is None
            or not math.isfinite(self._close_cut)
            or len(ref.vec) != len(coordinate.vec)
            or math.dist(ref.vec, coordinate.vec)
            + abs(ref.height - coordinate.height)
            + abs(ref.adjustment - coordinate.adjustment)
            > self.refresh_fraction * self._close_cut
        ):
            self._stale = True

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
        dead = self.dead
        origin = self.coordinate_of(initiator) or self.own
        slot_of = self._slot_of
        mask = self._empty.copy()
        for group in (excluded, dead):
            for n in group:
                slot = slot_of.get(n)
                if slot is not None:
                    mask[slot] = True
        if self.stale_after_s is not None and math.isfinite(self._latest):
            fresh = mask | (self._heardv < self._latest - self.stale_after_s)
            if not fresh.all():
                mask = fresh  # prefer entries known alive recently
        if not mask.all():
            if origin is None:  # no distances at all: the first by node id
                return self._first_by_id(np.flatnonzero(~mask))
            dist = distances(origin, self._packed())
            dist[mask] = np.inf
            best = float(dist.min())
            # equally close: within spread_s, widened by the origin's own relative error
            # estimate (large until coordinates converge)
            limit = best
            if self.spread_s > 0:
                limit += self.spread_s + best * min(origin.error, 1.0)
            return self._pick(np.flatnonzero(dist <= limit), initiator)
        # fall back on recently observed nodes outside the table
        fallback = [
            (origin.distance_to(c) if origin is not None else 0.0, n)
            for n, c in self._recent.items()
            if n not in excluded and n not in dead
        ]
        return min(fallback)[1] if fallback else None

    def _pick(self, candidates: np.ndarray, initiator: NodeId) -> NodeId:
        """Among equally close ``candidates`` (slots), the one ranked first for
        ``initiator``: a multiplicative hash of (node crc32 xor initiator crc32)."""
        if self.spread_s == 0 or len(candidates) == 1:
            return self._first_by_id(candidates)
        salt = np.uint64(zlib.crc32(initiator.encode()))
        ranks = ((self._keys[candidates] ^ salt) * _GOLDEN) & _MASK32
        return self._first_by_id(candidates[ranks == ranks.min()])

    def _first_by_id(self, candidates: np.ndarray) -> NodeId:
        """The smallest node id among ``candidates`` (slots, at least one occupied)."""
        slots = self._slots
        return min(n for n in (slots[int(i)] for i in candidates) if n is not None)

    # -- table storage -------------------------------------------------------------
    def _packed(self) -> PackedCoordinates:
        """The table as arrays (empty slots hold stale rows: mask them)."""
        dirty = self._dirty
        if dirty:
            coords = self._coords
            dims = len(next(c for c in coords if c is not None).vec)
            data = self._data
            if data.shape[1] != dims + 2:
                data = self._data = np.zeros((self.table_size, dims + 2))
                self._view = PackedCoordinates(data[:, :dims], data[:, dims], data[:, dims + 1])
            for slot in dirty:
                c = coords[slot]
                if c is not None:
                    data[slot] = (*c.vec, c.height, c.adjustment)
            dirty.clear()
        return self._view

    def _evict(self, slot: int) -> None:
        node = self._slots[slot]
        if node is None:
            return
        cache = self._close_cache
        if cache is not None and node in cache:
            self._close_cache = None
        del self._slot_of[node]
        self._slots[slot] = None
        self._coords[slot] = None
        self._dist[slot] = math.inf
        self._is_empty[slot] = 1
        self._free.append(slot)
        self._far = None

    def _refresh(self) -> None:
        """Recompute cached distances from this node after its own coordinate moved."""
        own = self.own
        self._stale = False
        if own is None or not self._slot_of:
            return
        self._close_cache = None
        self._own_ref = own
        dist = distances(own, self._packed())
        dist[self._empty] = np.inf
        self._distv[:] = dist
        self._far = None
