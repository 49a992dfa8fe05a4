"""``FarTimers``: long timers kept out of simpy's heap until their time is near.

Every pop and push on simpy's binary heap costs a walk of its depth, and at 100,000 nodes
the heap holds hundreds of thousands of pending timers (Vivaldi rounds a minute ahead,
trace ticks five minutes ahead), most of them far in the future. ``SimRuntime`` hands a
timer due at least ``WIDTH_S`` from now to this store instead: it goes into the bucket of
its time (``floor(t / WIDTH_S)``), a plain list. The first timer of a bucket schedules one
simpy event at the bucket's start, ``URGENT``; when that event fires, the bucket's timers
are pushed onto the heap, where they would have been all along. The heap then holds the
next moments' events, messages in flight and one marker per pending bucket.

Order is exactly that of a single heap. Every entry keeps the (time, priority, sequence
number) it was given when scheduled, so entries of one bucket order among themselves and
with the rest as before; and no entry is needed before its bucket's marker fires: every
timer is ``NORMAL``, at or after the bucket's start, and the marker sorts before every
``NORMAL`` event at that time. A marker only moves entries, so histories do not change;
it does take a sequence number (the count of simpy events includes the markers).
The markers are simpy events like any other, so ``env.run``, ``step`` and ``peek`` (and
``RealtimeEnvironment``) see the world as it is.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any

from simpy.events import URGENT

__all__ = ["WIDTH_S", "FarTimers"]

WIDTH_S = 0.25
"""Bucket width, seconds: a power of two, so that ``k * WIDTH_S`` is exact."""

Entry = tuple[float, int, int, Any]
"""A heap entry as simpy's ``schedule`` makes it: (time, priority, sequence, event)."""


class FarTimers:
    """Timers of one simpy environment due ``WIDTH_S`` or more from now, by bucket."""

    __slots__ = ("_buckets", "_eid", "_queue")

    def __init__(self, queue: list[Any], eid: Any) -> None:
        """``queue`` and ``eid``: the environment's heap and sequence counter."""
        self._queue = queue
        self._eid = eid
        self._buckets: dict[int, list[Entry]] = {}

    def add(self, entry: Entry) -> None:
        """Keep ``entry``; its time must be at least ``WIDTH_S`` after now."""
        k = int(entry[0] // WIDTH_S)
        bucket = self._buckets.get(k)
        if bucket is None:
            bucket = self._buckets[k] = []
            heappush(self._queue, (k * WIDTH_S, URGENT, next(self._eid), _Marker(self, k)))
        bucket.append(entry)

    def pending(self) -> int:
        """How many timers wait outside the heap."""
        return sum(len(b) for b in self._buckets.values())

    def _release(self, k: int) -> None:
        queue = self._queue
        for entry in self._buckets.pop(k):
            heappush(queue, entry)


class _Marker:
    """The simpy event at a bucket's start: its callback moves the bucket onto the heap."""

    __slots__ = ("callbacks", "k", "store")
    _ok = True

    def __init__(self, store: FarTimers, k: int) -> None:
        self.store = store
        self.k = k
        self.callbacks: tuple[Any, ...] | None = _MARKER_CALLBACKS


def _on_marker(marker: _Marker) -> None:
    marker.store._release(marker.k)


_MARKER_CALLBACKS = (_on_marker,)
