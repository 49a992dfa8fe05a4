"""The Vivaldi service: pings peers, measures RTTs on its own clock, feeds its client.

Each round (fast rounds first, then slower; ``VivaldiServiceConfig``) the service pings
``peers_per_round`` peers: with probability ``close_ping_probability`` one of the
overlay's closest nodes (when the overlay keeps a close-node table, as ``lbo`` does),
otherwise a uniformly drawn member of its peer sample. A ping carries ``sent_at`` (this
node's clock) and its coordinate; the pong echoes ``sent_at``, so the RTT is measured on
one clock. Both carry a few gossip entries: random peer-sample members and, when the
overlay has them, close nodes with their coordinates. That is how the peer sample mixes and
how close-node tables discover their neighbourhood.

Every coordinate heard is published to the node's overlay (``overlay.observe``; direct
when it comes from the node itself), and this node's own coordinate after each update.
A peer that misses ``max_misses`` pings in a row is marked dead in the overlay and dropped
from the sample until it is heard from directly again. A ``vivaldi.coord`` trace event
(vec, height, error) is emitted every ``trace_period_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from dvms import events
from dvms.events import emit_event
from dvms.overlay.base import Overlay
from dvms.services.peer_sample import PeerSample
from dvms.services.vivaldi_config import VivaldiServiceConfig
from dvms.services.vivaldi_messages import (
    ROUND,
    Ping,
    Pong,
    Round,
    SampleEntry,
    TraceTick,
    WireCoordinate,
)
from dvms.vivaldi import Coordinate, VivaldiClient, VivaldiConfig, VivaldiError
from peeractor import Behaviour, NodeId

__all__ = [
    "Ping",
    "Pong",
    "Round",
    "SampleEntry",
    "ServiceStats",
    "TraceTick",
    "VivaldiService",
    "VivaldiServiceConfig",
    "WireCoordinate",
]


@dataclass(slots=True)
class ServiceStats:
    """Counters of one node's Vivaldi service."""

    rounds: int = 0
    pings: int = 0
    pongs: int = 0
    misses: int = 0
    marked_dead: int = 0
    rejected: int = 0
    """Observations the client rejected (RTT out of range, bad peer coordinate)."""


class VivaldiService(Behaviour):
    """Keeps this node's Vivaldi coordinate and publishes it to the node's overlay."""

    name = "vivaldi"

    def __init__(
        self,
        overlay: Overlay,
        bootstrap: Iterable[NodeId] = (),
        config: VivaldiServiceConfig | None = None,
        vivaldi: VivaldiConfig | None = None,
    ) -> None:
        self.overlay = overlay
        self.config = config or VivaldiServiceConfig()
        self.vivaldi_config = vivaldi or VivaldiConfig()
        self.stats = ServiceStats()
        self.sample = PeerSample("", self.config.sample_size)
        """The peer sample (its ``own`` id is set at start)."""
        self._bootstrap = list(bootstrap)
        self._suspects: set[NodeId] = set()
        self._misses: dict[NodeId, int] = {}
        self._pending: dict[int, tuple[NodeId, float]] = {}
        self._seq = 0
        self.client: VivaldiClient | None = None
        self._wired: tuple[Coordinate, WireCoordinate] | None = None

    # -- public -----------------------------------------------------------------------
    @property
    def coordinate(self) -> Coordinate:
        """This node's current coordinate."""
        if self.client is None:
            return Coordinate.origin(self.vivaldi_config)
        return self.client.coordinate

    # -- behaviour hooks --------------------------------------------------------------
    def on_start(self) -> None:
        self.client = VivaldiClient(self.vivaldi_config, self.rng)
        self.sample.own = self.node
        for peer in self._bootstrap:
            self.sample.add(peer, self.rng)
        self.overlay.observe(self.node, self.client.coordinate)
        self.schedule(self.rng.uniform(0.0, self.config.start_spread_s), ROUND)
        if self.config.trace_period_s > 0:
            self.schedule(self.config.trace_period_s, TraceTick())

    def on_receive(self, message: object) -> None:
        if isinstance(message, Pong):
            self._on_pong(message)
        elif isinstance(message, Ping):
            self._on_ping(message)
        elif isinstance(message, Round):
            self._on_round()
        elif isinstance(message, TraceTick):
            c = self.coordinate
            emit_event(
                self.emit,
                events.vivaldi_coord(
                    self.now(), self.node, vec=list(c.vec), height=c.height, error=c.error
                ),
            )
            self.schedule(self.config.trace_period_s, message)

    # -- rounds -----------------------------------------------------------------------
    def _on_round(self) -> None:
        cfg = self.config
        self.stats.rounds += 1
        self._expire_pings()
        for _ in range(cfg.peers_per_round):
            peer = self._pick_peer()
            if peer is not None:
                self._ping(peer)
        fast = self.stats.rounds < cfg.fast_rounds
        self.schedule(cfg.fast_period_s if fast else cfg.period_s, ROUND)

    def _pick_peer(self) -> NodeId | None:
        cfg = self.config
        overlay = self.overlay
        if overlay.keeps_close_table and self.rng.random() < cfg.close_ping_probability:
            close = overlay.close_nodes(cfg.close_candidates)
            if close:
                return close[int(self.rng.random() * len(close))]
        return self.sample.pick(self.rng)

    def _ping(self, peer: NodeId) -> None:
        self._seq += 1
        now = self.now()
        self._pending[self._seq] = (peer, now)
        self.stats.pings += 1
        ping = Ping(self.node, self._seq, now, self._wire(), self._peers())
        self.send((peer, self.name), ping)

    def _expire_pings(self) -> None:
        now, timeout = self.now(), self.config.ping_timeout_s
        expired = [s for s, (_, sent) in self._pending.items() if now - sent >= timeout]
        for seq in expired:
            peer, _ = self._pending.pop(seq)
            self.stats.misses += 1
            misses = self._misses.get(peer, 0) + 1
            if misses < self.config.max_misses:
                self._misses[peer] = misses
                continue
            self._misses.pop(peer, None)
            self.stats.marked_dead += 1
            self._suspects.add(peer)
            self.overlay.mark_dead(peer)
            self.sample.remove(peer)
            if self.client is not None:
                self.client.forget(peer)

    # -- messages ---------------------------------------------------------------------
    def _on_ping(self, ping: Ping) -> None:
        sender, sample, rng = ping.sender, self.sample, self.rng
        self._heard_from(sender, ping.coordinate)
        sample.merge(ping.peers, self._suspects, rng)
        peers = sample.draw(self.config.gossip_size, rng)
        pong = Pong(self.node, ping.seq, ping.sent_at, self._wire(), peers, self._close_gossip())
        self.send((sender, self.name), pong)

    def _on_pong(self, pong: Pong) -> None:
        pending = self._pending.pop(pong.seq, None)
        coordinate = self._heard_from(pong.sender, pong.coordinate)
        self.sample.merge(pong.peers, self._suspects, self.rng)
        if pong.close:
            self._learn_close(pong.close)
        if pending is None or pending[0] != pong.sender or self.client is None:
            return  # late (already counted as a miss) or unsolicited
        self.stats.pongs += 1
        self._misses.pop(pong.sender, None)
        if coordinate is None:
            return
        try:
            own = self.client.update(
                pong.sender, coordinate, self.now() - pong.sent_at, checked=True
            )  # ``_heard_from`` checked the coordinate
        except VivaldiError:
            self.stats.rejected += 1
            return
        self.overlay.observe(self.node, own)

    def _heard_from(self, node: NodeId, wire: WireCoordinate) -> Coordinate | None:
        """A message from ``node`` itself: it is alive; learn its coordinate."""
        self._suspects.discard(node)
        sample = self.sample
        if node not in sample:
            sample.add(node, self.rng)
        vec = wire.vec
        if len(vec) != self.vivaldi_config.dimensionality or not (
            # ``wire.is_valid()``'s fast path inlined: a finite sum means finite parts
            math.isfinite(sum(vec) + wire.height + wire.error + wire.adjustment)
            or wire.is_valid()
        ):
            self.stats.rejected += 1
            self.overlay.observe(node, None, direct=True)
            return None
        self.overlay.observe(node, wire, direct=True, heard_at=self.now())
        return wire

    def _learn_close(self, close: tuple[SampleEntry, ...]) -> None:
        """Gossiped close nodes with their coordinates and freshness: to the overlay."""
        dims = self.vivaldi_config.dimensionality
        now, observe = self.now(), self.overlay.observe
        me, suspects = self.node, self._suspects
        for entry in close:
            node, coordinate = entry.node, entry.coordinate
            if node == me or node in suspects:
                continue
            if coordinate is not None and len(coordinate.vec) == dims and coordinate.is_valid():
                observe(node, coordinate, heard_at=now - entry.age_s)

    def _wire(self) -> WireCoordinate:
        """This node's coordinate on the wire (rebuilt only after it changed)."""
        client, wired = self.client, self._wired
        coordinate = self.coordinate if client is None else client.coordinate
        if wired is None or wired[0] is not coordinate:
            wired = self._wired = (coordinate, WireCoordinate.of(coordinate))
        return wired[1]

    def _peers(self) -> tuple[str, ...]:
        """A few random sample members (drawn with replacement: duplicates are harmless)."""
        return self.sample.draw(self.config.gossip_size, self.rng)

    def _close_gossip(self) -> tuple[SampleEntry, ...]:
        """A few of the overlay's close nodes known alive recently, with coordinates."""
        cfg = self.config
        if not cfg.gossip_close:
            return ()
        now, rng = self.now(), self.rng
        fresh = self.overlay.fresh_close_nodes(cfg.close_candidates, now - cfg.gossip_max_age_s)
        entries: list[SampleEntry] = []
        for _ in range(min(cfg.gossip_close, len(fresh))):
            node, coordinate, at = fresh[int(rng.random() * len(fresh))]
            entries.append(SampleEntry(node, WireCoordinate.of(coordinate), now - at))
        return tuple(entries)

    def describe(self) -> dict[str, Any]:
        """A snapshot for debugging and dashboards."""
        c = self.coordinate
        return {
            "node": self.node,
            "coordinate": {"vec": list(c.vec), "height": c.height, "error": c.error},
            "sample": len(self.sample),
            "stats": {f.name: getattr(self.stats, f.name) for f in fields(ServiceStats)},
        }
