"""``dvms dashboard``: a web view of a live or recorded run (FastAPI, WebSocket frames)."""

from __future__ import annotations

from dvms.dashboard.feed import LiveFeed, LiveSource, tee
from dvms.dashboard.replay import Replay, load_replay
from dvms.dashboard.state import ClientCursor, InfraState, PowerModel

__all__ = [
    "ClientCursor",
    "InfraState",
    "LiveFeed",
    "LiveSource",
    "PowerModel",
    "Replay",
    "load_replay",
    "tee",
]
