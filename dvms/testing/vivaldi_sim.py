"""Simulate and evaluate Vivaldi clients against a truth RTT matrix (Serf's harness).

    truth = topology.sites(1000)                    # 1,000 nodes on Grid'5000's sites
    clients = generate_clients(len(truth), VivaldiConfig(), random.Random(1))
    simulate(clients, truth, cycles=200, rng=random.Random(1))
    evaluate(clients, truth)   # VivaldiStats(error_avg=..., error_max=..., error_median=...)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from dvms.vivaldi import VivaldiClient, VivaldiConfig
from dvms.vivaldi.batch import pack, pairwise_distances

__all__ = ["VivaldiStats", "evaluate", "generate_clients", "relative_errors", "simulate"]

TruthMatrix = npt.NDArray[np.float64] | Sequence[Sequence[float]]


class VivaldiStats(NamedTuple):
    """Relative RTT error |estimate − truth| / truth over all pairs (i < j)."""

    error_avg: float
    error_max: float
    error_median: float


def generate_clients(
    nodes: int, config: VivaldiConfig | None = None, rng: random.Random | None = None
) -> list[VivaldiClient]:
    """``nodes`` fresh clients sharing ``config``, each with its own rng drawn from ``rng``."""
    rng = rng if rng is not None else random.Random(1)
    return [VivaldiClient(config, random.Random(rng.getrandbits(64))) for _ in range(nodes)]


def simulate(
    clients: Sequence[VivaldiClient],
    truth: TruthMatrix,
    cycles: int,
    rng: random.Random,
) -> None:
    """Run ``cycles`` rounds: in each, every client i in turn observes one uniformly drawn
    node j ≠ i (its current coordinate and the truth RTT ``truth[i][j]``; the peer id is
    ``"node_j"``). As Serf's ``Simulate``, a draw of i itself is skipped."""
    n = len(clients)
    rows = np.asarray(truth, dtype=np.float64).tolist()
    if len(rows) != n or any(len(r) != n for r in rows):
        raise ValueError(f"truth must be {n}×{n} for {n} clients")
    names = [f"node_{j}" for j in range(n)]
    for _ in range(cycles):
        for i in range(n):
            j = rng.randrange(n)
            if j != i:
                clients[i].update(names[j], clients[j].coordinate, rows[i][j])


def relative_errors(
    clients: Sequence[VivaldiClient], truth: TruthMatrix
) -> npt.NDArray[np.float64]:
    """The relative error of every pair i < j (estimates from the clients' coordinates)."""
    actual = np.asarray(truth, dtype=np.float64)
    estimate = pairwise_distances(pack([c.coordinate for c in clients]))
    iu = np.triu_indices(len(clients), k=1)
    errors: npt.NDArray[np.float64] = np.abs(estimate[iu] - actual[iu]) / actual[iu]
    return errors


def evaluate(clients: Sequence[VivaldiClient], truth: TruthMatrix) -> VivaldiStats:
    """Average, maximum and median relative RTT error over all pairs."""
    if len(clients) < 2:
        return VivaldiStats(0.0, 0.0, 0.0)
    errors = relative_errors(clients, truth)
    return VivaldiStats(float(errors.mean()), float(errors.max()), float(np.median(errors)))
