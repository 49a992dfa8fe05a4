"""Truth RTT matrices for evaluating Vivaldi (seconds, symmetric, zero diagonal).

Serf's accuracy-test topologies (``line``, ``grid``, ``split``, ``circle``, ``random``) and
``sites``: nodes on real city sites with the RTT model of ``dvms.geo`` (the same model as
the simulator's network). Each returns an (n, n) ``numpy`` array.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dvms.geo import DEFAULT_RTT_MODEL, GRID5000_SITES, RttModel, Site, site_rtt_s

__all__ = ["circle", "grid", "line", "random_normal", "site_labels", "sites", "split"]

Matrix = npt.NDArray[np.float64]


def _check(nodes: int, minimum: int = 2) -> None:
    if nodes < minimum:
        raise ValueError(f"nodes must be >= {minimum}, got {nodes}")


def line(nodes: int, spacing_s: float) -> Matrix:
    """Nodes on a straight line, ``spacing_s`` apart."""
    _check(nodes)
    idx = np.arange(nodes, dtype=np.float64)
    out: Matrix = np.abs(idx[:, None] - idx[None, :]) * spacing_s
    return out


def grid(nodes: int, spacing_s: float) -> Matrix:
    """Nodes on a square grid ``floor(sqrt(n))`` wide, ``spacing_s`` apart."""
    _check(nodes)
    n = math.isqrt(nodes)
    idx = np.arange(nodes)
    x, y = (idx % n).astype(np.float64), (idx // n).astype(np.float64)
    out: Matrix = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) * spacing_s
    return out


def split(nodes: int, lan_s: float, wan_s: float) -> Matrix:
    """Two LANs (nodes 0..n//2 and the rest, as Serf): ``lan_s`` apart, plus ``wan_s``
    between the sides."""
    _check(nodes)
    side = np.arange(nodes) > nodes // 2
    out: Matrix = np.where(side[:, None] != side[None, :], lan_s + wan_s, lan_s)
    np.fill_diagonal(out, 0.0)
    return out


def circle(nodes: int, radius_s: float) -> Matrix:
    """Nodes 1.. evenly on a circle of ``radius_s``; node 0 is ``2·radius_s`` from all of
    them (a centre node "above" the plane: its height should come out ≈ radius)."""
    _check(nodes)
    t = 2.0 * math.pi * np.arange(nodes) / nodes
    x, y = np.cos(t), np.sin(t)
    out: Matrix = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) * radius_s
    out[0, :] = out[:, 0] = 2.0 * radius_s
    out[0, 0] = 0.0
    return out


def random_normal(nodes: int, mean_s: float, deviation_s: float, rng: random.Random) -> Matrix:
    """Independent normally distributed RTTs per pair (not a metric: the hardest case)."""
    _check(nodes)
    out = np.zeros((nodes, nodes))
    for i in range(nodes):
        for j in range(i + 1, nodes):
            out[i, j] = out[j, i] = rng.gauss(mean_s, deviation_s)
    return out


def sites(
    nodes: int,
    site_list: Sequence[Site] = GRID5000_SITES,
    rng: random.Random | None = None,
    model: RttModel = DEFAULT_RTT_MODEL,
) -> Matrix:
    """``nodes`` nodes spread over the sites in contiguous blocks of (almost) equal size
    (node ``i`` on site ``i·k // nodes``, see ``site_labels``).

    RTT = site-to-site RTT (great-circle fibre distance × route factor + LAN) + both hosts'
    access delays, drawn uniformly in the model's [access_min_s, access_max_s] from ``rng``
    (default ``random.Random(1)``).
    """
    _check(nodes, 1)
    if not site_list:
        raise ValueError("site_list must not be empty")
    rng = rng if rng is not None else random.Random(1)
    k = len(site_list)
    base = np.array([[site_rtt_s(a, b, model) for b in site_list] for a in site_list])
    label = np.arange(nodes) * k // nodes
    access = np.array([rng.uniform(model.access_min_s, model.access_max_s) for _ in range(nodes)])
    out: Matrix = base[label[:, None], label[None, :]] + access[:, None] + access[None, :]
    np.fill_diagonal(out, 0.0)
    return out


def site_labels(nodes: int, site_list: Sequence[Site] = GRID5000_SITES) -> list[str]:
    """The site name of each node of ``sites(nodes, site_list)``."""
    k = len(site_list)
    return [site_list[i * k // nodes].name for i in range(nodes)]
