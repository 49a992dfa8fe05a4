"""Live mode: run a simulation in real time in this process and feed the dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from dvms.dashboard.feed import LiveFeed, LiveSource
from dvms.dashboard.state import InfraState
from dvms.errors import InputError

__all__ = ["start_live_simulation"]


def start_live_simulation(
    argv: Sequence[str], *, speed: float = 1.0, aggregate_above: int = 1000
) -> tuple[LiveSource, str]:
    """Start ``dvms simulate ARGV`` in real time on a thread; its events feed the source."""
    feed = LiveFeed()
    _ = (argv, speed)
    raise InputError("--simulate needs the simulated world (sim.world), not available")
    return LiveSource(feed, InfraState(aggregate_above=aggregate_above)), "live simulation"
