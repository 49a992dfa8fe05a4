"""Runtime counters: messages sent, delivered, dropped (by reason) and by message tag."""

from __future__ import annotations

from collections import Counter
from typing import Any

from peeractor.message import message_tag

__all__ = ["DROP_REASONS", "RuntimeStats"]

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
)
"""The reasons counted in ``RuntimeStats.dropped`` (others may be added by transports)."""


class RuntimeStats:
    """What a runtime counts. ``sent``: messages behaviours sent; ``injected``: messages put
    in from outside the actors (``inject``); ``delivered``: messages handed to a behaviour
    (sent or injected; timers excluded); ``dropped``: Counter by reason (see DROP_REASONS);
    ``by_type``: Counter of sent messages by message tag.
    """

    __slots__ = ("_by_class", "delivered", "dropped", "injected", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.injected = 0
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        self._by_class: dict[type, int] = {}

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
        }

    def __repr__(self) -> str:
        return (
            f"RuntimeStats(sent={self.sent}, injected={self.injected}, "
            f"delivered={self.delivered}, dropped={dict(self.dropped)})"
        )
