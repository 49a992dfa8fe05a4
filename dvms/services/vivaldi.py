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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dvms.overlay.base import Overlay
from dvms.vivaldi import Coordinate, VivaldiClient, VivaldiConfig, VivaldiError
from peeractor import Behaviour, NodeId, message

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


@dataclass(frozen=True, slots=True)
class VivaldiServiceConfig:
    """How the Vivaldi service probes (all periods in seconds of the runtime's clock).

    The defaults follow the DVMS prototype (rounds every 1 s for 6 s, then every 2 s, a
    100-entry peer sample) with one peer per round, which keeps the message volume per
    round small; large simulations may set a longer ``period_s``.
    """

    fast_period_s: float = 1.0
    """Period of the first ``fast_rounds`` rounds (s; default 1, DVMS prototype)."""
    fast_rounds: int = 6
    """Number of fast rounds after start (default 6, DVMS prototype)."""
    period_s: float = 2.0
    """Period of the rounds after the fast ones (s; default 2, DVMS prototype)."""
    peers_per_round: int = 1
    """Pings sent per round (default 1; the prototype used 10)."""
    sample_size: int = 100
    """Capacity of the peer sample (nodes; default 100, DVMS prototype)."""
    gossip_size: int = 3
    """Random peer-sample entries piggybacked on each ping and pong (default 3)."""
    gossip_close: int = 2
    """Close-node entries (with coordinates) piggybacked on each pong, when the overlay
    keeps a close-node table (default 2): the prober, often a close node itself, learns
    the responder's neighbourhood."""
    close_ping_probability: float = 0.5
    """Probability a ping goes to one of the overlay's ``close_candidates`` closest nodes
    rather than a random sample member (default 0.5: Dabek et al. show a mix of close and
    far neighbours gives good local and global accuracy)."""
    close_candidates: int = 8
    """How many of the closest nodes a close ping draws from (default 8)."""
    gossip_max_age_s: float = 60.0
    """Only close nodes known alive within this long are gossiped (each entry carries the
    age of that knowledge, first-hand or relayed), so a crashed node's last coordinate
    stops spreading (s; default 60)."""
    ping_timeout_s: float = 1.0
    """A ping unanswered after this long is a miss (s; checked each round; default 1)."""
    max_misses: int = 3
    """Consecutive misses after which a peer is marked dead (default 3)."""
    trace_period_s: float = 300.0
    """Period of ``vivaldi.coord`` trace events (s; default 300; 0 disables)."""
    start_spread_s: float = 1.0
    """The first round starts at a uniform random time in [0, start_spread_s) so nodes do
    not probe in lockstep (s; default 1)."""

    def __post_init__(self) -> None:
        def fail(field: str, allowed: str) -> ValueError:
            value = getattr(self, field)
            return ValueError(f"VivaldiServiceConfig.{field}: {value!r} is invalid; {allowed}")

        for field in ("fast_period_s", "period_s", "ping_timeout_s", "gossip_max_age_s"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise fail(field, "must be a number > 0 seconds")
        for field in ("trace_period_s", "start_spread_s"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise fail(field, "must be a number >= 0 seconds")
        for field, low in (
            ("fast_rounds", 0),
            ("peers_per_round", 1),
            ("sample_size", 1),
            ("gossip_size", 0),
            ("gossip_close", 0),
            ("close_candidates", 1),
            ("max_misses", 1),
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise fail(field, f"must be an int >= {low}")
        p = self.close_ping_probability
        if not isinstance(p, int | float) or not 0 <= p <= 1:
            raise fail("close_ping_probability", "must be in [0, 1]")


@message("vivaldi.Coordinate")
class WireCoordinate(Coordinate):
    """A ``Coordinate`` on the wire: the same fields, registered as a message, so that a
    received one is used as is (seconds; ``error`` dimensionless)."""

    @staticmethod
    def of(c: Coordinate) -> WireCoordinate:
        if isinstance(c, WireCoordinate):
            return c
        return WireCoordinate(c.vec, c.height, c.error, c.adjustment)

    def to_coordinate(self) -> Coordinate:
        return self


@message("vivaldi.Entry")
class SampleEntry:
    """A gossiped close node: its node id, its last coordinate and how fresh that is."""

    node: str
    coordinate: WireCoordinate
    age_s: float = 0.0
    """How long ago ``node`` was last known alive, as the sender knows (seconds)."""


@message("vivaldi.Ping")
class Ping:
    """A probe. ``sent_at``: the sender's clock when sent (echoed by the pong);
    ``peers``: a few ids of the sender's peer sample."""

    sender: str
    seq: int
    sent_at: float
    coordinate: WireCoordinate
    peers: tuple[str, ...]


@message("vivaldi.Pong")
class Pong:
    """The answer to a ``Ping``: its ``seq`` and ``sent_at``, the responder's coordinate,
    a few ids of its peer sample and (with a close-node overlay) a few close nodes."""

    sender: str
    seq: int
    sent_at: float
    coordinate: WireCoordinate
    peers: tuple[str, ...]
    close: tuple[SampleEntry, ...] = ()


@message("vivaldi.Round")
class Round:
    """Timer: time to probe."""


_ROUND = Round()  # messages are immutable: one instance serves every timer


@message("vivaldi.TraceTick")
class TraceTick:
    """Timer: time to emit a ``vivaldi.coord`` trace event."""


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
        self.sample: list[NodeId] = []
        self._index: dict[NodeId, int] = {}
        self._bootstrap = list(bootstrap)
        self._suspects: set[NodeId] = set()
        self._misses: dict[NodeId, int] = {}
        self._pending: dict[int, tuple[NodeId, float]] = {}
        self._seq = 0
        self.client: VivaldiClient | None = None
        self._wired: tuple[Coordinate, WireCoordinate] | None = None
        self._close: Callable[..., list[NodeId]] | None = getattr(overlay, "close_nodes", None)
        # Overlays keeping a close-node table (LBO) also keep when each entry was last
        # known alive; then gossip relays close nodes with that freshness.
        self._fresh_close: Callable[[int, float], list[tuple[NodeId, Coordinate, float]]] | None = (
            getattr(overlay, "fresh_close_nodes", None)
        )
        self._keeps_liveness = hasattr(overlay, "heard_at")
        self._observe: Callable[..., None] = overlay.observe

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
        for peer in self._bootstrap:
            self._add_to_sample(peer)
        self.overlay.observe(self.node, self.client.coordinate)
        self.schedule(self.rng.uniform(0.0, self.config.start_spread_s), _ROUND)
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
            self.emit("vivaldi.coord", vec=list(c.vec), height=c.height, error=c.error)
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
        self.schedule(cfg.fast_period_s if fast else cfg.period_s, _ROUND)

    def _pick_peer(self) -> NodeId | None:
        cfg = self.config
        if self._close is not None and self.rng.random() < cfg.close_ping_probability:
            close = self._close(cfg.close_candidates)
            if close:
                return close[int(self.rng.random() * len(close))]
        if not self.sample:
            return None
        return self.sample[int(self.rng.random() * len(self.sample))]

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
            self._remove_from_sample(peer)
            if self.client is not None:
                self.client.forget(peer)

    # -- messages ---------------------------------------------------------------------
    def _on_ping(self, ping: Ping) -> None:
        self._heard_from(ping.sender, ping.coordinate)
        self._merge(ping.peers)
        pong = Pong(
            self.node, ping.seq, ping.sent_at, self._wire(), self._peers(), self._close_gossip()
        )
        self.send((ping.sender, self.name), pong)

    def _on_pong(self, pong: Pong) -> None:
        pending = self._pending.pop(pong.seq, None)
        coordinate = self._heard_from(pong.sender, pong.coordinate)
        self._merge(pong.peers)
        if pong.close:
            self._learn_close(pong.close)
        if pending is None or pending[0] != pong.sender or self.client is None:
            return  # late (already counted as a miss) or unsolicited
        self.stats.pongs += 1
        self._misses.pop(pong.sender, None)
        if coordinate is None:
            return
        try:
            own = self.client.update(pong.sender, coordinate, self.now() - pong.sent_at)
        except VivaldiError:
            self.stats.rejected += 1
            return
        self.overlay.observe(self.node, own)

    def _heard_from(self, node: NodeId, wire: WireCoordinate) -> Coordinate | None:
        """A message from ``node`` itself: it is alive; learn its coordinate."""
        self._suspects.discard(node)
        if node not in self._index:
            self._add_to_sample(node)
        if len(wire.vec) != self.vivaldi_config.dimensionality or not wire.is_valid():
            self.stats.rejected += 1
            self.overlay.observe(node, None, direct=True)
            return None
        if self._keeps_liveness:
            self._observe(node, wire, direct=True, heard_at=self.now())
        else:
            self._observe(node, wire, direct=True)
        return wire

    def _merge(self, peers: tuple[str, ...]) -> None:
        """Learn gossiped peer ids: fill the sample, but once full replace at most one
        random member per message (enough to keep it mixing, cheap for large runs)."""
        index, suspects, me = self._index, self._suspects, self.node
        for node in peers:
            if node in index or node == me or node in suspects:
                continue
            full = len(self.sample) >= self.config.sample_size
            self._add_to_sample(node)
            if full:
                break

    def _learn_close(self, close: tuple[SampleEntry, ...]) -> None:
        """Gossiped close nodes with their coordinates and freshness: to the overlay."""
        dims = self.vivaldi_config.dimensionality
        now = self.now() if self._keeps_liveness else None
        me, suspects = self.node, self._suspects
        for entry in close:
            node, coordinate = entry.node, entry.coordinate
            if node == me or node in suspects:
                continue
            if coordinate is not None and len(coordinate.vec) == dims and coordinate.is_valid():
                if now is not None:
                    self._observe(node, coordinate, heard_at=now - entry.age_s)
                else:
                    self._observe(node, coordinate)

    def _wire(self) -> WireCoordinate:
        """This node's coordinate on the wire (rebuilt only after it changed)."""
        coordinate = self.coordinate
        if self._wired is None or self._wired[0] is not coordinate:
            self._wired = (coordinate, WireCoordinate.of(coordinate))
        return self._wired[1]

    def _peers(self) -> tuple[str, ...]:
        """A few random sample members (drawn with replacement: duplicates are harmless)."""
        sample, rng = self.sample, self.rng
        if not sample:
            return ()
        n = len(sample)
        return tuple([sample[int(rng.random() * n)] for _ in range(self.config.gossip_size)])

    def _close_gossip(self) -> tuple[SampleEntry, ...]:
        """A few of the overlay's close nodes known alive recently, with coordinates."""
        cfg = self.config
        if not cfg.gossip_close or self._fresh_close is None:
            return ()
        now, rng = self.now(), self.rng
        fresh = self._fresh_close(cfg.close_candidates, now - cfg.gossip_max_age_s)
        entries: list[SampleEntry] = []
        for _ in range(min(cfg.gossip_close, len(fresh))):
            node, coordinate, at = fresh[int(rng.random() * len(fresh))]
            entries.append(SampleEntry(node, WireCoordinate.of(coordinate), now - at))
        return tuple(entries)

    # -- peer sample ------------------------------------------------------------------
    def _add_to_sample(self, node: NodeId) -> None:
        if node in self._index or node == self.node:
            return
        if len(self.sample) >= self.config.sample_size:
            # the victim's latency filter stays: the client keeps the most recently
            # observed peers' filters (``latency_filter_peers``) whatever the sample holds
            victim = self.sample[int(self.rng.random() * len(self.sample))]
            self._remove_from_sample(victim)
        self._index[node] = len(self.sample)
        self.sample.append(node)

    def _remove_from_sample(self, node: NodeId) -> None:
        index = self._index.pop(node, None)
        if index is None:
            return
        last = self.sample.pop()
        if last != node:
            self.sample[index] = last
            self._index[last] = index

    def describe(self) -> dict[str, Any]:
        """A snapshot for debugging and dashboards."""
        c = self.coordinate
        return {
            "node": self.node,
            "coordinate": {"vec": list(c.vec), "height": c.height, "error": c.error},
            "sample": len(self.sample),
            "stats": {k: getattr(self.stats, k) for k in ServiceStats.__slots__},
        }
