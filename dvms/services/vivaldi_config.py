"""``VivaldiServiceConfig``: how the Vivaldi service probes and gossips."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["VivaldiServiceConfig"]


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
