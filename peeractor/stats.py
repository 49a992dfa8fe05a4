"""Runtime counters: messages sent, delivered, dropped (by reason), rejected, by message tag.

A *rejected* message is one a node refused: a frame the codec refused, a message whose
handler raised (ThreadRuntime; SimRuntime with ``handler_errors="drop"``), or one dropped
because the node's receive queue was full. ``RuntimeStats.rejected`` counts them by
``(service, message type, cause)``; runtimes with a trace emit a ``runtime.rejected``
event (``rejected_event``) at the 1st, 2nd, 4th, 8th... rejection of each key, so a flood
of bad frames cannot flood the trace.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from peeractor.message import message_tag

__all__ = ["DROP_REASONS", "REJECT_CAUSES", "RuntimeStats", "message_type", "rejected_event"]

DROP_REASONS = (
    "crashed",  # the destination (or the sender) node is crashed
    "stopped",  # the destination node was stopped cleanly
    "lost",  # the network model lost it
    "cut",  # the link between the two nodes is cut
    "unknown-node",  # no such node in this runtime and no route to it
    "no-service",  # the destination node hosts no such service
    "queue-full",  # a bounded transport queue was full (ZeroMQ high-water mark)
    "malformed",  # a frame that does not decode
    "unauthorised",  # rejected by CURVE authentication
    "oversize",  # a frame longer than the codec's max_frame_bytes
    "handler",  # the receiving behaviour raised on it (the node goes on)
    "inbox-full",  # the destination node's receive queue was full (newest dropped)
    "disconnected",  # a connection closed (a peer went away, or a frame above the socket cap)
)
"""The reasons counted in ``RuntimeStats.dropped`` (others may be added by transports)."""

REJECT_CAUSES = (
    "oversize",  # the codec's causes (peeractor.codec.CAUSES)...
    "depth",
    "malformed",
    "unknown-tag",
    "fields",
    "type",
    "frame",  # not [node, service, payload] or not utf-8 names
    "handler",  # the behaviour raised
    "inbox-full",  # the node's receive queue was full
)
"""The causes of ``RuntimeStats.rejected`` keys."""


def message_type(message: object) -> str:
    """The tag of a message (the class name for unregistered classes)."""
    try:
        return message_tag(message.__class__)
    except KeyError:
        return message.__class__.__qualname__


def rejected_event(
    node: str, service: str, type_: str, cause: str, n: int, error: str = ""
) -> dict[str, Any] | None:
    """The trace fields of the ``n``-th rejection of a key, or None (only at powers of two)."""
    if n & (n - 1):
        return None
    return {"type": "runtime.rejected", "node": node, "service": service, "message": type_,
            "cause": cause, "n": n, "error": error[:200]}


class RuntimeStats:
    """What a runtime counts. ``sent``: messages behaviours sent; ``injected``: messages put
    in from outside the actors (``inject``); ``delivered``: messages handed to a behaviour
    (sent or injected; timers excluded); ``dropped``: Counter by reason (see DROP_REASONS);
    ``by_type``: Counter of sent messages by message tag; ``rejected``: Counter by
    ``(service, message type, cause)`` (see the module doc).
    """

    __slots__ = ("_by_class", "delivered", "dropped", "injected", "rejected", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.injected = 0
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        self._by_class: dict[type, int] = {}
        self.rejected: Counter[tuple[str, str, str]] = Counter()

    def count_rejected(self, service: str, type_: str, cause: str) -> int:
        """Count one rejected message; returns how many of that key so far."""
        key = (service, type_, cause)
        self.rejected[key] += 1
        return self.rejected[key]

    def count_sent(self, message: object) -> None:
        """Count one message sent by a behaviour (the runtimes inline this on hot paths)."""
        self.sent += 1
        cls = message.__class__
        self._by_class[cls] = self._by_class.get(cls, 0) + 1

    @property
    def by_type(self) -> Counter[str]:
        """Sent messages by message tag (the class name for unregistered classes)."""
        out: Counter[str] = Counter()
        for cls, n in self._by_class.items():
            try:
                tag = message_tag(cls)
            except KeyError:
                tag = cls.__qualname__
            out[tag] += n
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures, keys sorted."""
        return {
            "sent": self.sent,
            "injected": self.injected,
            "delivered": self.delivered,
            "dropped": dict(sorted(self.dropped.items())),
            "by_type": dict(sorted(self.by_type.items())),
            "rejected": [
                {"service": s, "type": t, "cause": c, "n": n}
                for (s, t, c), n in sorted(self.rejected.items())
            ],
        }

    def __repr__(self) -> str:
        return (
            f"RuntimeStats(sent={self.sent}, injected={self.injected}, "
            f"delivered={self.delivered}, dropped={dict(self.dropped)})"
        )
