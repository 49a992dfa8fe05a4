"""The Vivaldi accuracy figure of a simulated run: ``median_error``.

The median over sampled pairs (each live host against ``ERROR_SAMPLE`` random live others)
of ``|estimated − true RTT| / true RTT``, estimated from the hosts' current coordinates,
true from the world's network model.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Mapping

from dvms.vivaldi import Coordinate
from peeractor import NodeId, stable_seed

__all__ = ["ERROR_SAMPLE", "median_error"]

ERROR_SAMPLE = 16
"""Peers per host in the accuracy sample."""


def median_error(
    coordinates: Mapping[NodeId, Coordinate], rtt: Callable[[NodeId, NodeId], float], seed: int
) -> float | None:
    """Median relative RTT error over sampled pairs of the given (live) hosts."""
    alive = list(coordinates)
    if len(alive) < 2:
        return None
    rng = random.Random(stable_seed(seed, "vivaldi-error"))
    errors: list[float] = []
    for node in alive:
        for _ in range(min(ERROR_SAMPLE, len(alive) - 1)):
            peer = alive[rng.randrange(len(alive))]
            if peer == node:
                continue
            truth = rtt(node, peer)
            estimate = coordinates[node].distance_to(coordinates[peer])
            errors.append(abs(estimate - truth) / truth)
    return statistics.median(errors) if errors else None
