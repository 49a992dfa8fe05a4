"""Live runs: a thread-safe hand-off of trace events from a producer to the dashboard.

A producer (a simulation on simpy's RealtimeEnvironment, or a real deployment's event
collector) calls ``feed.publish(event)`` — or passes the feed itself as the runtime's
``trace`` callable, alone or next to the trace writer via :func:`tee` — from any thread.
The dashboard's :class:`LiveSource` drains the feed at its frame rate.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from dvms.dashboard.state import InfraState

__all__ = ["LiveFeed", "LiveSource", "tee"]


class LiveFeed:
    """Events published by a producer thread, drained by the dashboard."""

    def __init__(self) -> None:
        self._events: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.closed = False
        """Set by :meth:`close` when the producer is done."""
        self.error: str | None = None
        """Why the producer stopped, if it failed."""
        self.published = 0
        self.clock: float | None = None
        """The producer's current run time, if it reports one (:meth:`set_clock`)."""

    def publish(self, event: Mapping[str, Any]) -> None:
        """Hand one trace event (``{"t", "type", "node", ...}``) to the dashboard."""
        with self._lock:
            self._events.append(dict(event))
            self.published += 1

    __call__ = publish

    def set_clock(self, t: float) -> None:
        """Report the run's current time (shown between events; optional)."""
        self.clock = t

    def close(self, error: str | None = None) -> None:
        """The producer is finished (``error``: why it stopped early, if it did)."""
        with self._lock:
            self.closed = True
            self.error = error

    def drain(self) -> list[dict[str, Any]]:
        """Every event published since the last drain, in order."""
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events


def tee(*sinks: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """One trace callable that forwards each event to every sink (e.g. writer and feed)."""

    def trace(event: dict[str, Any]) -> None:
        for sink in sinks:
            sink(event)

    return trace


class LiveSource:
    """The dashboard's view of a live run: applies what the feed delivers.

    ``pause`` freezes the view (events keep accumulating and are applied on ``play``);
    a live run cannot be seeked.
    """

    def __init__(
        self,
        feed: LiveFeed,
        state: InfraState | None = None,
        *,
        speed: float = 1.0,
        t_end: float | None = None,
    ) -> None:
        self.feed = feed
        self.state = state or InfraState()
        self.playing = True
        self.speed = speed
        """Simulated seconds per wall second (1 for a real deployment)."""
        self.t_end = t_end
        self._held: list[dict[str, Any]] = []

    def advance(self, wall: float) -> None:
        events = self.feed.drain()
        if not self.playing:
            self._held.extend(events)
            return
        if self._held:
            events, self._held = self._held + events, []
        for event in events:
            self.state.apply(event)

    def control(self, command: Mapping[str, Any]) -> None:
        cmd = command.get("cmd")
        if cmd == "play":
            self.playing = True
        elif cmd == "pause":
            self.playing = False
        elif cmd in ("seek", "speed"):
            raise ValueError(f"a live run cannot {cmd}")
        else:
            raise ValueError(f"unknown command {cmd!r}; allowed: play, pause")

    def now(self) -> float:
        """Run time shown: the producer's clock while running, else the last event's."""
        clock = self.feed.clock
        if self.feed.closed or not self.playing or clock is None:
            return self.state.t
        return max(self.state.t, clock)

    def status(self) -> dict[str, Any]:
        return {
            "mode": "live",
            "playing": self.playing and not self.feed.closed,
            "finished": self.feed.closed,
            "error": self.feed.error,
            "seekable": False,
            "speed": self.speed,
            "t": round(self.now(), 3),
            "t_end": self.t_end,
        }
