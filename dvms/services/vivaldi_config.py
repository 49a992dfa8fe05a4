"""``VivaldiServiceConfig``: how the Vivaldi service probes and gossips."""

from __future__ import annotations

from dataclasses import dataclass

from dvms.config import check_fields, option

__all__ = ["VivaldiServiceConfig"]


@dataclass(frozen=True, slots=True)
class VivaldiServiceConfig:
    """How the Vivaldi service probes (all periods in seconds of the runtime's clock).

    The defaults follow the DVMS prototype (rounds every 1 s for 6 s, then every 2 s, a
    100-entry peer sample) with one peer per round, which keeps the message volume per
    round small; large simulations may set a longer ``period_s``.
    """

    fast_period_s: float = option(
        1.0,
        "Period of the first ``fast_rounds`` rounds (s; default 1, DVMS prototype).",
        lo=0,
        lo_open=True,
    )
    fast_rounds: int = option(
        6,
        "Number of fast rounds after start (default 6, DVMS prototype).",
        lo=0,
    )
    period_s: float = option(
        2.0,
        "Period of the rounds after the fast ones (s; default 2, DVMS prototype).",
        lo=0,
        lo_open=True,
    )
    peers_per_round: int = option(
        1,
        "Pings sent per round (default 1; the prototype used 10).",
        lo=1,
    )
    sample_size: int = option(
        100,
        "Capacity of the peer sample (nodes; default 100, DVMS prototype).",
        lo=1,
    )
    gossip_size: int = option(
        3,
        "Random peer-sample entries piggybacked on each ping and pong (default 3).",
        lo=0,
    )
    gossip_close: int = option(
        2,
        "Close-node entries (with coordinates) piggybacked on each pong, when the overlay "
        "keeps a close-node table (default 2): the prober, often a close node itself, learns "
        "the responder's neighbourhood.",
        lo=0,
    )
    close_ping_probability: float = option(
        0.5,
        "Probability a ping goes to one of the overlay's ``close_candidates`` closest nodes "
        "rather than a random sample member (default 0.5: Dabek et al. show a mix of close "
        "and far neighbours gives good local and global accuracy).",
        lo=0,
        hi=1,
    )
    close_candidates: int = option(
        8,
        "How many of the closest nodes a close ping draws from (default 8).",
        lo=1,
    )
    gossip_max_age_s: float = option(
        60.0,
        "Only close nodes known alive within this long are gossiped (each entry carries the "
        "age of that knowledge, first-hand or relayed), so a crashed node's last coordinate "
        "stops spreading (s; default 60).",
        lo=0,
        lo_open=True,
    )
    ping_timeout_s: float = option(
        1.0,
        "A ping unanswered after this long is a miss (s; checked each round; default 1).",
        lo=0,
        lo_open=True,
    )
    max_misses: int = option(
        3,
        "Consecutive misses after which a peer is marked dead (default 3).",
        lo=1,
    )
    trace_period_s: float = option(
        300.0,
        "Period of ``vivaldi.coord`` trace events (s; default 300; 0 disables).",
        lo=0,
    )
    start_spread_s: float = option(
        1.0,
        "The first round starts at a uniform random time in [0, start_spread_s) so nodes do "
        "not probe in lockstep (s; default 1).",
        lo=0,
    )

    def __post_init__(self) -> None:
        check_fields(self, "vivaldi")
