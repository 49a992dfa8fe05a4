"""Network models for ``SimRuntime``: how long a message takes, and whether it is lost.

A model is any object with ``latency(src, dst, rng) -> float | None`` (one-way delay in
seconds, ``None`` = lost). The runtime calls it once per message between two different
nodes with its own seeded ``rng``, so a seed gives one history. Messages between services
of one node never reach the model (zero delay).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Protocol

from peeractor.behaviour import NodeId

__all__ = [
    "ConstantLatency",
    "NetworkModel",
    "SiteLatency",
    "UniformLatency",
]


class NetworkModel(Protocol):
    """Decides each message's one-way delay (seconds) or its loss (``None``)."""

    def latency(self, src: NodeId, dst: NodeId, rng: random.Random) -> float | None: ...


def _check_loss(loss: float) -> float:
    if not 0.0 <= loss < 1.0:
        raise ValueError(f"loss must be in [0, 1), got {loss!r}")
    return float(loss)


class ConstantLatency:
    """Every message takes ``delay_s``; each is lost with probability ``loss``."""

    __slots__ = ("delay_s", "loss")

    def __init__(self, delay_s: float, loss: float = 0.0) -> None:
        if not delay_s >= 0.0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s!r}")
        self.delay_s = float(delay_s)
        self.loss = _check_loss(loss)

    def latency(self, src: NodeId, dst: NodeId, rng: random.Random) -> float | None:
        if self.loss and rng.random() < self.loss:
            return None
        return self.delay_s


class UniformLatency:
    """Delay drawn uniformly in ``[low_s, high_s]``; loss probability ``loss``."""

    __slots__ = ("high_s", "loss", "low_s")

    def __init__(self, low_s: float, high_s: float, loss: float = 0.0) -> None:
        if not 0.0 <= low_s <= high_s:
            raise ValueError(f"need 0 <= low_s <= high_s, got low_s={low_s!r} high_s={high_s!r}")
        self.low_s = float(low_s)
        self.high_s = float(high_s)
        self.loss = _check_loss(loss)

    def latency(self, src: NodeId, dst: NodeId, rng: random.Random) -> float | None:
        if self.loss and rng.random() < self.loss:
            return None
        return self.low_s + (self.high_s - self.low_s) * rng.random()


class SiteLatency:
    """Nodes grouped in sites; the delay depends on the pair of sites, times a jitter
    factor ``1 + jitter * U(0, 1)``; loss probability ``loss``.

    ``site_of`` maps every node to its site; ``one_way_s`` maps every ordered pair of sites
    (including ``(s, s)``) to a one-way delay in seconds (from real geography:
    ``dvms.geo.one_way_delays``; the runtime knows no geography).
    """

    __slots__ = ("_index", "_table", "jitter", "loss")

    def __init__(
        self,
        site_of: Mapping[NodeId, str],
        one_way_s: Mapping[tuple[str, str], float],
        *,
        jitter: float = 0.0,
        loss: float = 0.0,
    ) -> None:
        sites = sorted(set(site_of.values()))
        number = {s: i for i, s in enumerate(sites)}
        table: list[list[float]] = []
        for a in sites:
            row = []
            for b in sites:
                delay = one_way_s.get((a, b))
                if delay is None or not delay >= 0.0:
                    raise ValueError(f"one_way_s[{(a, b)!r}] must be a delay >= 0, got {delay!r}")
                row.append(float(delay))
            table.append(row)
        if not jitter >= 0.0:
            raise ValueError(f"jitter must be >= 0, got {jitter!r}")
        self._index = {node: number[site] for node, site in site_of.items()}
        self._table = table
        self.jitter = float(jitter)
        self.loss = _check_loss(loss)

    def site_delay(self, src: NodeId, dst: NodeId) -> float:
        """The jitter-free one-way delay between two nodes."""
        return self._table[self._index[src]][self._index[dst]]

    def latency(self, src: NodeId, dst: NodeId, rng: random.Random) -> float | None:
        index = self._index
        delay = self._table[index[src]][index[dst]]
        if self.loss and rng.random() < self.loss:
            return None
        if self.jitter:
            delay *= 1.0 + self.jitter * rng.random()
        return delay
