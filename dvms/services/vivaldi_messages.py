"""Messages of the Vivaldi service (tags ``vivaldi.*``): probes, gossip, timers.

Coordinates travel as ``WireCoordinate`` (``dvms.overlay.base``), the one coordinate type
on the wire, shared with the DVMS protocol.
"""

from __future__ import annotations

from dvms.overlay.base import WireCoordinate
from peeractor import message

__all__ = ["ROUND", "Ping", "Pong", "Round", "SampleEntry", "TraceTick", "WireCoordinate"]


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


ROUND = Round()  # messages are immutable: one instance serves every timer


@message("vivaldi.TraceTick")
class TraceTick:
    """Timer: time to emit a ``vivaldi.coord`` trace event."""
